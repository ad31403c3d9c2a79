"""Commands whose standard output or files cannot be written: one line, exit status 1, no traceback.

Standard output is failed for real (a full device, a closed descriptor, a pipe nobody reads)
in child processes; a full disk under the files is injected (``ENOSPC``) in-process.
"""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from iem.cli import main
from iem.pipeline import FAILURES_LOG, SETTINGS_RECORD
from tests.io.samples import synthetic_photo

REPO = Path(__file__).resolve().parents[2]
FAST = ["--size", "32", "--iterations", "3", "--device", "cpu"]


def _child(args, stdin, stdout, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "iem", *args], stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, env=env, **kwargs
    )


@pytest.fixture
def photo_file(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    synthetic_photo(48, 40)[0].save(path)
    return path


def _one_line_error(stderr: bytes, expected: str) -> None:
    text = stderr.decode()
    assert "Traceback" not in text and "Exception ignored" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines == [f"iem: cannot write to standard output ({expected})"], text


@pytest.mark.parametrize("how", ["full", "closed", "broken pipe"])
def test_stdin_mode_with_a_failing_stdout(photo_file: Path, how: str):
    with open(photo_file, "rb") as stdin:
        if how == "full":
            if not os.path.exists("/dev/full"):
                pytest.skip("no /dev/full on this system")
            with open("/dev/full", "wb") as full:
                proc = _child(["segment", "-", *FAST], stdin, full)
            expected = os.strerror(errno.ENOSPC)
        elif how == "closed":
            # The child starts with descriptor 1 closed, as after `>&-` in a shell.
            proc = _child(["segment", "-", *FAST], stdin, None, preexec_fn=lambda: os.close(1))
            expected = os.strerror(errno.EBADF)
        else:
            read_end, write_end = os.pipe()
            os.close(read_end)  # nobody will read: the first write fails with EPIPE
            proc = _child(["segment", "-", *FAST], stdin, write_end)
            os.close(write_end)
            expected = os.strerror(errno.EPIPE)
        _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1
    _one_line_error(stderr, expected)


def test_eval_printing_to_a_full_stdout(tmp_path: Path, monkeypatch):
    """Text output goes through the same check as bytes (injected in-process: it is cheap)."""
    import click

    real_echo = click.echo

    def echo(message=None, file=None, nl=True, err=False, color=None):
        if not err and file is None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_echo(message, file=file, nl=nl, err=err, color=color)

    monkeypatch.setattr(click, "echo", echo)
    for folder in ("masks", "gt"):
        (tmp_path / folder).mkdir()
        synthetic_photo(16, 16)[0].convert("L").save(tmp_path / folder / "a.png")
    args = ["eval", str(tmp_path / "masks"), str(tmp_path / "gt"), "-q", "--csv", str(tmp_path / "e.csv")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == "iem: cannot write to standard output (No space left on device)"


class _FullDisk(io.FileIO):
    """Every file iem writes atomically lands on a full disk."""

    def write(self, data) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def full_disk(monkeypatch):
    monkeypatch.setattr("iem.io.write.os.fdopen", lambda fd, mode: io.BufferedWriter(_FullDisk(fd, "wb")))


def test_segment_json_on_a_full_disk(tmp_path: Path, photo_file: Path, monkeypatch):
    # The disk fills once the run has recorded its settings, its first file.
    real, opened = os.fdopen, []

    def fdopen(fd, mode):
        opened.append(fd)
        return real(fd, mode) if len(opened) == 1 else io.BufferedWriter(_FullDisk(fd, "wb"))

    monkeypatch.setattr("iem.io.write.os.fdopen", fdopen)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["segment", str(photo_file), "-o", str(out), "--json", *FAST])
    assert result.exit_code == 1 and result.exception is None or isinstance(result.exception, SystemExit)
    data = json.loads(result.stdout)  # the summary still reaches stdout
    assert data["counts"]["failed"] == 1 and data["exit_code"] == 1
    lines = result.stderr.splitlines()
    assert f"{photo_file}: cannot write output {out / 'photo.mask.png'} (No space left on device)" in lines
    assert f"{out / 'summary.json'}: cannot write (No space left on device)" in lines
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [FAILURES_LOG, SETTINGS_RECORD]  # no temporary left


def test_segment_on_a_disk_full_from_the_start_stops_at_the_settings_record(tmp_path: Path, photo_file: Path, full_disk):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["segment", str(photo_file), "-o", str(out), "--json", *FAST])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [f"{out}: cannot write the settings record (No space left on device)"]
    assert list(out.iterdir()) == []  # nothing written, no temporary left


def test_train_checkpoint_on_a_full_disk(tmp_path: Path, full_disk):
    from tests.segnet.synthetic import write_images

    write_images(tmp_path / "imgs", 3, size=(40, 48))
    out = tmp_path / "model.pt"
    args = ["train", str(tmp_path / "imgs"), "--out", str(out), "--no-cache", "--epochs", "1", "--quiet", *FAST[2:]]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [f"{out}: cannot write (No space left on device)"]
    assert list(tmp_path.iterdir()) == [tmp_path / "imgs"]
