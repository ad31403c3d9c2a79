"""``segment_files`` against odd inputs and a failing disk: duplicates, forged names, full disk."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from iem import IEMConfig
from iem.pipeline import FAILURES_LOG, SUMMARY_JSON, segment_files
from tests.io.samples import synthetic_photo

FAST = IEMConfig.paper(iterations=5)
SIZE = 32


def _run(inputs, out: Path, **kwargs):
    return segment_files(inputs, out, FAST, size=SIZE, device="cpu", progress=False, **kwargs)


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "a.jpg"
    path.parent.mkdir()
    synthetic_photo(48, 40)[0].save(path)
    return path


def test_the_same_file_twice_is_segmented_once_without_a_clash(tmp_path: Path, photo: Path, monkeypatch):
    monkeypatch.chdir(photo.parent)
    summary = _run([photo, photo, photo.parent, "a.jpg", "./a.jpg"], tmp_path / "out")
    assert (summary.segmented, summary.failed, summary.total) == (1, 0, 1)
    assert not (tmp_path / "out" / FAILURES_LOG).exists()


def test_names_with_newlines_cannot_forge_lines_in_the_log(tmp_path: Path, photo: Path):
    forged = photo.parent / "x\n2026-01-01T00:00:00Z\tforged.jpg: planted.jpg"
    forged.write_bytes(b"not an image")
    undecodable = Path(os.fsdecode(os.fsencode(str(photo.parent)) + b"/bad\xff\x1b[2J.jpg"))
    undecodable.write_bytes(b"not an image either")
    shown = []
    summary = _run([photo.parent], tmp_path / "out", on_failure=lambda f: shown.append(f.line()))
    assert summary.failed == 2
    log = (tmp_path / "out" / FAILURES_LOG).read_text(encoding="utf-8").splitlines()
    assert len(log) == 2  # one line per failure, no planted one
    assert not any(line.startswith("2026-01-01") for line in log)
    assert all(line.isprintable() for line in shown)
    assert [line.split("\t", 1)[1] for line in log] == shown
    assert any("'" + str(photo.parent) + "/x\\n2026" in line for line in shown)


def _full_after(lines: int):
    """An ``append_line`` that takes ``lines`` lines, then finds the disk full."""
    from iem.io.write import append_line

    taken = []

    def append(path, line):
        if len(taken) >= lines:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
        taken.append(line)
        append_line(path, line)

    return append


def test_a_full_disk_marks_the_failures_log_incomplete(tmp_path: Path, photo: Path, monkeypatch):
    for i in range(4):
        (photo.parent / f"junk{i}.jpg").write_bytes(b"not an image")
    monkeypatch.setattr("iem.pipeline.append_line", _full_after(2))
    summary = _run([photo.parent], tmp_path / "out", write_summary=True)
    assert summary.failed == 4 and summary.segmented == 1 and summary.exit_code == 1
    log = (tmp_path / "out" / FAILURES_LOG).read_text().splitlines()
    assert len(log) == 2 and all("junk" in line for line in log)  # whole lines only
    (problem,) = summary.problems
    assert str(tmp_path / "out" / FAILURES_LOG) in problem
    assert "incomplete, 2 of 4 failures not recorded" in problem and "No space left on device" in problem
    data = json.loads((tmp_path / "out" / SUMMARY_JSON).read_text())
    assert data["problems"] == [problem] and len(data["failures"]) == 4


def test_the_incomplete_mark_is_written_when_it_fits(tmp_path: Path, photo: Path, monkeypatch):
    """The line that did not fit is longer than the mark: after the first refusal, one more
    line (the mark) is tried and goes in."""
    (photo.parent / "junk.jpg").write_bytes(b"not an image")
    (photo.parent / "junk2.jpg").write_bytes(b"not an image")
    calls = []
    from iem.io.write import append_line

    def append(path, line):
        calls.append(line)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
        append_line(path, line)

    monkeypatch.setattr("iem.pipeline.append_line", append)
    summary = _run([photo.parent], tmp_path / "out")
    log = (tmp_path / "out" / FAILURES_LOG).read_text().splitlines()
    assert len(log) == 1 and "# INCOMPLETE" in log[0] and "No space left on device" in log[0]
    assert len(calls) == 2  # no line is tried after the mark: the log has no silent gap
    assert "2 of 2 failures not recorded" in summary.problems[0]


def test_an_unwritable_summary_is_a_problem_not_a_crash(tmp_path: Path, photo: Path, monkeypatch):
    def full(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))

    monkeypatch.setattr("iem.pipeline.write_text", full)
    summary = _run([photo], tmp_path / "out", write_summary=True)
    assert summary.segmented == 1 and summary.exit_code == 1
    assert summary.problems == [f"{tmp_path / 'out' / SUMMARY_JSON}: cannot write (No space left on device)"]
