"""Writes on a full disk or at a file size limit: the real reason, naming the file; nothing half.

A disk is filled without privileges by a file size limit (``RLIMIT_FSIZE``) in a child
process: past it, ``write`` fails as on a full disk (with ``EFBIG``). ``ENOSPC`` itself is
injected through a file object.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from iem.io.write import TEMP_SUFFIX, WriteCancelled, atomic_write, cancel_writes_on

resource = pytest.importorskip("resource", reason="file size limits need the resource module (POSIX)")

ROOT = Path(__file__).resolve().parents[2]


def _limited(code: str, limit: int, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a child Python whose files cannot grow past ``limit`` bytes."""
    prelude = f"import resource\nresource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_at_a_size_limit_logs_keep_whole_lines_and_checkpoints_name_the_cause(tmp_path: Path):
    """One child process (importing PyTorch is the slow part) for both writers: log lines that
    do not fit are undone, not cut; PyTorch reports a failed write as its own RuntimeError
    ("unexpected pos"), but the user is told the cause, and no temporary is left."""
    done = _limited(
        """
        import torch
        from iem.io.write import append_line
        from iem.segnet.checkpoint import save_checkpoint
        for i in range(100):
            try:
                append_line("log.txt", f"{i:03d} " + "x" * 296)
            except OSError as err:
                print(err.errno, err.filename)
                break
        try:
            save_checkpoint("model.pt", {"weights": torch.zeros(100_000)})
        except OSError as err:
            print(type(err).__name__, err.errno, err.filename)
        """,
        1000,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(errno.EFBIG), "log.txt", "OSError", str(errno.EFBIG), "model.pt"]
    data = (tmp_path / "log.txt").read_bytes()
    assert len(data) == 3 * 301 and data.endswith(b"\n")  # three whole lines; the fourth undone
    assert [line[:3] for line in data.splitlines()] == [b"000", b"001", b"002"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.txt"]


class _FullDisk(io.FileIO):
    """The temporary file, on a disk that has ``room`` bytes left, then fails with ENOSPC."""

    room = 10

    def write(self, data) -> int:
        size = len(memoryview(data))
        if size > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= size
        return super().write(data)


@pytest.fixture
def full_disk(monkeypatch):
    """``atomic_write``'s temporary file opened on a nearly full disk (injected ENOSPC)."""
    monkeypatch.setattr("iem.io.write.os.fdopen", lambda fd, mode: io.BufferedWriter(_FullDisk(fd, "wb")))


def test_an_error_a_library_makes_of_enospc_is_reported_as_enospc(tmp_path: Path, full_disk):
    """Whatever the writer raises after the disk said ENOSPC, ENOSPC is reported."""

    def library_writer(handle) -> None:
        try:
            handle.write(b"x" * 100)
            handle.flush()
        except OSError:
            raise RuntimeError("writer failed at position 0") from None

    with pytest.raises(OSError) as caught:
        atomic_write(tmp_path / "out.bin", library_writer)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "out.bin")
    assert list(tmp_path.iterdir()) == []


def test_a_library_that_swallows_the_error_does_not_leave_a_truncated_file(tmp_path: Path, full_disk):
    def careless_writer(handle) -> None:
        try:
            handle.write(b"x" * 100)
            handle.flush()
        except OSError:
            pass

    with pytest.raises(OSError, match="No space left"):
        atomic_write(tmp_path / "out.bin", careless_writer)
    assert list(tmp_path.iterdir()) == []


def test_a_cancelled_write_stops_at_the_next_chunk_and_leaves_nothing(tmp_path: Path):
    stop = threading.Event()
    chunks = []

    def slow_writer(handle) -> None:
        for i in range(1000):
            handle.write(b"x" * (1 << 16))
            chunks.append(i)
            if i == 10:
                stop.set()

    with cancel_writes_on(stop), pytest.raises(WriteCancelled):
        atomic_write(tmp_path / "big.bin", slow_writer)
    assert len(chunks) < 20
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(TEMP_SUFFIX) or p.name == "big.bin"]
    # Outside the block, the same event does not cancel anything.
    atomic_write(tmp_path / "small.bin", lambda handle: handle.write(b"ok"))
    assert (tmp_path / "small.bin").read_bytes() == b"ok"
