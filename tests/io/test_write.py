"""Atomic writes: complete files or nothing, usual permissions, stale temporaries cleaned, and
nothing that is not a regular file ever replaced."""

from __future__ import annotations

import ast
import errno
import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

import iem
from iem.io.write import (
    TEMP_SUFFIX,
    NotAFileError,
    StaleTemporaries,
    append_line,
    atomic_write,
    save_image,
    write_text,
)

from tests.io.special import FULL_DEVICE, block_device, device_node, null_device


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


# --------------------------------------------------------------------------------------------
# Paths that are not regular files: links are followed and kept, devices and FIFOs written
# directly, folders, block devices and sockets refused; none of them is ever replaced.
# --------------------------------------------------------------------------------------------


def test_a_link_to_a_file_is_kept_and_its_target_replaced_atomically(tmp_path: Path) -> None:
    elsewhere = tmp_path / "real"
    elsewhere.mkdir()
    target = elsewhere / "scores.csv"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "out" / "link.csv"
    link.parent.mkdir()
    link.symlink_to(os.path.relpath(target, link.parent))
    chain = tmp_path / "chain.csv"
    chain.symlink_to(link)
    assert write_text(chain, "new") == chain
    assert chain.is_symlink() and link.is_symlink()
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o777 == 0o640  # a replaced file keeps its permissions
    assert sorted(p.name for p in elsewhere.iterdir()) == ["scores.csv"]
    assert sorted(p.name for p in link.parent.iterdir()) == ["link.csv"]


def test_a_dangling_link_gets_its_target_created(tmp_path: Path) -> None:
    link = tmp_path / "mask.png"
    link.symlink_to(tmp_path / "store" / "real.png")
    save_image(Image.new("L", (3, 2)), link, "PNG")
    assert link.is_symlink()
    with Image.open(tmp_path / "store" / "real.png") as im:
        assert im.size == (3, 2)


def test_a_fifo_is_written_into_not_replaced(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this system")
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    try:
        write_text(fifo, "a,b\n1,2\n")
    except BaseException:
        # The write failed, perhaps before opening: unblock the reader. O_RDWR opens a FIFO
        # at once on Linux whether or not the reader has opened it yet.
        os.close(os.open(fifo, os.O_RDWR))
        raise
    finally:
        reader.join(5)
    assert received == [b"a,b\n1,2\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_character_device_is_written_into_not_replaced(tmp_path: Path) -> None:
    null = null_device(tmp_path / "null")
    link = tmp_path / "out.csv"
    link.symlink_to(null)
    write_text(null, "discarded")
    save_image(Image.new("L", (4, 4)), link, "PNG")
    append_line(null, "a line")
    assert stat.S_ISCHR(os.lstat(null).st_mode) and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null", "out.csv"]


def test_a_full_device_gives_a_clear_error_naming_the_path(tmp_path: Path) -> None:
    full = device_node(tmp_path / "full", stat.S_IFCHR, FULL_DEVICE)
    with pytest.raises(OSError) as caught:
        write_text(full, "x" * 10)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(full)
    assert stat.S_ISCHR(os.lstat(full).st_mode)


def test_folders_block_devices_and_sockets_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    link_to_folder = tmp_path / "link"
    link_to_folder.symlink_to(folder)
    refused = [(folder, "a folder"), (link_to_folder, "a folder")]
    if hasattr(socket, "AF_UNIX"):
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(tmp_path / "sock"))
        refused.append((tmp_path / "sock", "a socket"))
    for path, what in refused:
        with pytest.raises(NotAFileError, match=f"{what}, not a file"):
            write_text(path, "x")
        with pytest.raises(NotAFileError):
            append_line(path, "x")
    block = block_device(tmp_path / "disk")
    for write in (lambda p: write_text(p, "x"), lambda p: append_line(p, "x")):
        with pytest.raises(NotAFileError) as caught:
            write(block)
        assert str(caught.value) == f"{block}: is a block device, not a file iem may write"
    assert stat.S_ISBLK(os.lstat(block).st_mode) and folder.is_dir() and link_to_folder.is_symlink()


def test_append_line_through_a_link_appends_to_the_target(tmp_path: Path) -> None:
    real = tmp_path / "real.log"
    real.write_text("first\n")
    link = tmp_path / "failures.log"
    link.symlink_to(real)
    append_line(link, "second")
    assert link.is_symlink() and real.read_text() == "first\nsecond\n"


def test_stale_temporaries_cleaning_leaves_links_alone(tmp_path: Path) -> None:
    kept = tmp_path / "precious"
    kept.write_text("x")
    link = tmp_path / f".odd{TEMP_SUFFIX}"
    link.symlink_to(kept)
    past = time.time() - 60
    os.utime(link, (past, past), follow_symlinks=False)
    assert StaleTemporaries().clean(tmp_path) == 0
    assert link.is_symlink() and kept.exists()


def test_no_module_writes_files_by_itself() -> None:
    """Every file iem writes goes through iem.io.write, the one place that enforces the rules."""
    renames = {("os", "replace"), ("os", "rename"), ("tempfile", "mkstemp")}
    savers = {"save", "savefig", "write_text", "write_bytes", "to_csv", "tofile"}
    streams = {"handle", "buffer"}  # writing into an open stream that iem.io.write handed over
    root = Path(iem.__file__).parent
    offenders = []
    for source in sorted(root.rglob("*.py")):
        if source == root / "io" / "write.py":
            continue
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if not isinstance(node, ast.Call):
                continue
            func, where = node.func, f"{source.relative_to(root)}:{node.lineno}"
            if isinstance(func, ast.Attribute):
                owner = func.value.id if isinstance(func.value, ast.Name) else None
                into_stream = any(isinstance(a, ast.Name) and a.id in streams for a in node.args)
                if (owner, func.attr) in renames or (func.attr in savers and not into_stream):
                    offenders.append(f"{where} {func.attr}")
            elif isinstance(func, ast.Name) and func.id == "open" and len(node.args) >= 2:
                mode = node.args[1]
                if isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+"):
                    offenders.append(f"{where} open")
    assert offenders == []
