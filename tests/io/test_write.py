"""Atomic writes: complete files or nothing, usual permissions, stale temporaries cleaned."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from PIL import Image

from iem.io.write import TEMP_SUFFIX, StaleTemporaries, append_line, atomic_write, save_image, write_text


def test_atomic_write_creates_folders_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.txt"
    write_text(target, "one")
    write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.txt"]


def test_failed_write_leaves_nothing_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def half_then_fail(handle) -> None:
        handle.write(b"half")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_files_get_the_usual_mode_not_the_private_temporary_one(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    path = save_image(Image.new("L", (4, 4)), tmp_path / "m.png", "PNG")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    with Image.open(path) as im:
        assert im.size == (4, 4)


def test_append_line_adds_whole_lines(tmp_path: Path) -> None:
    log = tmp_path / "sub" / "failures.log"
    append_line(log, "a.jpg: broken")
    append_line(log, "b.jpg: empty file\n")
    assert log.read_text() == "a.jpg: broken\nb.jpg: empty file\n"


def test_stale_temporaries_are_removed_once_and_only_old_ones(tmp_path: Path) -> None:
    old = tmp_path / f".x.mask.png.abc123{TEMP_SUFFIX}"
    old.write_bytes(b"partial")
    past = time.time() - 60
    os.utime(old, (past, past))
    cleaner = StaleTemporaries()
    fresh = tmp_path / f".y.mask.png.def456{TEMP_SUFFIX}"
    fresh.write_bytes(b"being written now")
    keep = tmp_path / "keep.png"
    keep.write_bytes(b"x")
    assert cleaner.clean(tmp_path) == 1
    assert not old.exists() and fresh.exists() and keep.exists()
    old.write_bytes(b"again")
    os.utime(old, (past, past))
    assert cleaner.clean(tmp_path) == 0  # each folder is cleaned once per run
