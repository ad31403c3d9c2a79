"""Write outputs atomically: a temporary file in the target's folder, then ``os.replace``.

A process killed at any moment therefore leaves either the complete previous file, the complete
new one, or nothing under the target's name, never half a file; a rerun that skips existing
outputs finishes the job. Leftover temporaries are hidden (``.name.XXXX.iem-tmp``);
:class:`StaleTemporaries` removes them when a later run writes into the same folder.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable, Optional, Set, Union

from PIL import Image

PathLike = Union[str, os.PathLike]

#: Suffix of the temporary files; hidden names plus this suffix never look like outputs.
TEMP_SUFFIX = ".iem-tmp"


def _current_umask() -> int:
    # os.umask can only be read by setting it; done once, at import, before any thread starts.
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_current_umask()


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Create or replace ``path`` with what ``write(file)`` writes, atomically.

    The parent folders are created. The file gets the usual permissions (``0o666`` less the
    umask) rather than the private mode of temporary files.

    Args:
        path: the target.
        write: called with a binary file open for writing.

    Returns:
        The target path.

    Raises:
        OSError: the folder cannot be created or written; no file is left behind.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), _FILE_MODE)
            write(handle)
            handle.flush()
            # Data on disk before the rename makes the file visible: a crash of the machine,
            # not only of the process, cannot leave a complete name over incomplete data.
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    return target


def save_image(image: Image.Image, path: PathLike, format: str, **params: Any) -> Path:
    """Save a PIL image atomically (``format`` e.g. ``"PNG"``; ``params`` go to ``Image.save``)."""
    return atomic_write(path, lambda handle: image.save(handle, format=format, **params))


def write_text(path: PathLike, text: str) -> Path:
    """Write a UTF-8 text file atomically."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def append_line(path: PathLike, line: str) -> None:
    """Append one line to a log file with a single ``write`` on an ``O_APPEND`` descriptor.

    A log grows by whole lines: a line is written in one system call, so a killed process
    leaves every earlier line intact.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, _FILE_MODE)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


class StaleTemporaries:
    """Remove the temporaries an interrupted earlier run left, once per folder.

    Only temporaries older than this object are deleted, so files being written right now by
    this run are never touched. Thread-safe.
    """

    def __init__(self, started: Optional[float] = None) -> None:
        self.started = time.time() if started is None else started
        self._seen: Set[str] = set()
        self._lock = threading.Lock()

    def clean(self, folder: PathLike) -> int:
        """Delete stale temporaries in ``folder`` the first time it is seen; return how many."""
        key = os.fspath(folder)
        with self._lock:
            if key in self._seen:
                return 0
            self._seen.add(key)
        removed = 0
        try:
            with os.scandir(key) as listing:
                stale = [e.path for e in listing if e.name.startswith(".") and e.name.endswith(TEMP_SUFFIX)]
        except OSError:
            return 0
        for name in stale:
            try:
                if os.stat(name).st_mtime < self.started:
                    os.unlink(name)
                    removed += 1
            except OSError:
                pass
        return removed
