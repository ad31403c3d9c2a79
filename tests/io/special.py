"""Device nodes made in a temporary folder for the tests of what iem writes (skipped where the
system does not allow making them)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

#: A block device number no driver serves: even a wrong ``open`` would reach nothing.
UNSERVED_BLOCK_DEVICE = (240, 240)
#: The character devices ``/dev/null`` and ``/dev/full`` (Linux numbers).
NULL_DEVICE = (1, 3)
FULL_DEVICE = (1, 7)


def device_node(path: Path, kind: int, number: tuple) -> Path:
    """Make a device node (``kind``: ``stat.S_IFCHR`` or ``stat.S_IFBLK``) or skip the test."""
    try:
        os.mknod(path, 0o666 | kind, os.makedev(*number))
    except (PermissionError, AttributeError, OSError) as err:
        pytest.skip(f"cannot make device nodes here ({err})")
    return path


def block_device(path: Path) -> Path:
    """A block device node that no driver serves."""
    return device_node(path, stat.S_IFBLK, UNSERVED_BLOCK_DEVICE)


def null_device(path: Path) -> Path:
    """A node of the null device: every write succeeds and is discarded."""
    return device_node(path, stat.S_IFCHR, NULL_DEVICE)
