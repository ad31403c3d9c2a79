"""Write outputs atomically: a temporary file in the target's folder, then ``os.replace``.

A process killed at any moment therefore leaves either the complete previous file, the complete
new one, or nothing under the target's name, never half a file; a rerun that skips existing
outputs finishes the job. Leftover temporaries are hidden (``.name.XXXX.iem-tmp``);
:class:`StaleTemporaries` removes them when a later run writes into the same folder.

Only regular files are ever replaced. What the target path is decides how it is written
(:func:`write_plan`):

- missing or a regular file: atomically, as above (an existing file keeps its permissions);
- a symbolic link (to any depth): the link stays and its final target is written by these
  same rules, so a link to a regular file gets an atomic replacement of that file, beside it;
- a character device (``/dev/null``, a terminal) or a FIFO: streamed into it directly, since
  there is no file to replace (the whole content is prepared first, so a failing writer sends
  nothing);
- a folder, a block device, a socket: refused with :class:`NotAFileError` (an ``OSError``).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable, Iterator, NamedTuple, Optional, Set, Union

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


class NotAFileError(OSError):
    """The output path is something that must not be replaced or written (a folder, a block
    device, a socket); ``str(err)`` names the path and the reason on one line."""

    def __init__(self, path: PathLike, what: str) -> None:
        code = errno.EISDIR if what == "a folder" else errno.EINVAL
        super().__init__(code, f"is {what}, not a file iem may write", os.fspath(path))

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"


class WritePlan(NamedTuple):
    """How :func:`atomic_write` writes a path: ``atomic`` replace of ``target`` (``mode``: the
    permissions to give it) or a ``direct`` stream into a device or FIFO."""

    target: Path
    direct: bool
    mode: int


def write_plan(path: PathLike) -> WritePlan:
    """Decide where and how a write to ``path`` lands (see the module docstring).

    Raises:
        NotAFileError: ``path`` is (or links to) a folder, a block device or a socket.
        OSError: ``path`` cannot be examined (a symbolic link loop, a permission problem).
    """
    given = Path(path)
    try:
        info = os.stat(given)  # follows symbolic links to the final target
    except FileNotFoundError:
        # Missing, or a link whose target is missing: the new file goes where the link points.
        return WritePlan(Path(os.path.realpath(given)), False, _FILE_MODE)
    kind = info.st_mode
    if stat.S_ISREG(kind):
        return WritePlan(Path(os.path.realpath(given)), False, stat.S_IMODE(kind))
    if stat.S_ISCHR(kind) or stat.S_ISFIFO(kind):
        return WritePlan(given, True, 0)
    what = "a folder" if stat.S_ISDIR(kind) else "a block device" if stat.S_ISBLK(kind) else "a socket" if stat.S_ISSOCK(kind) else "a special file"
    raise NotAFileError(given, what)


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Create or replace ``path`` with what ``write(file)`` writes, atomically.

    The parent folders are created. A new file gets the usual permissions (``0o666`` less the
    umask) rather than the private mode of temporary files; a replaced one keeps its own.
    Symbolic links are followed and kept, devices and FIFOs written directly, folders, block
    devices and sockets refused (:func:`write_plan`).

    Args:
        path: the target.
        write: called with a binary file open for writing.

    Returns:
        The target path, as given.

    Raises:
        NotAFileError: ``path`` is not something a file may be written to.
        OSError: the folder cannot be created or written; no file is left behind.
    """
    write = _reporting(write, path)
    plan = write_plan(path)
    if plan.direct:
        _write_directly(plan.target, write)
        return Path(path)
    target = plan.target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), plan.mode)
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
    return Path(path)


def _write_directly(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Stream into a character device or FIFO: no temporary, nothing created or replaced."""
    buffer = io.BytesIO()  # writers may seek; devices and FIFOs cannot
    write(buffer)
    # Without O_CREAT nothing is created if the path changed since write_plan looked at it.
    fd = os.open(path, os.O_WRONLY | os.O_NOCTTY)
    try:
        kind = os.fstat(fd).st_mode
        if not (stat.S_ISCHR(kind) or stat.S_ISFIFO(kind)):
            raise NotAFileError(path, "no longer a device or FIFO")
        view = memoryview(buffer.getbuffer())
        while view:
            try:
                view = view[os.write(fd, view) :]
            except OSError as err:
                raise OSError(err.errno, err.strerror, os.fspath(path)) from None
    finally:
        os.close(fd)


class WriteCancelled(Exception):
    """A write stopped because the run is stopping (:func:`cancel_writes_on`); nothing is left."""


_cancel = threading.local()


@contextlib.contextmanager
def cancel_writes_on(event: threading.Event) -> Iterator[None]:
    """In this thread, make :func:`atomic_write` give up (removing its temporary) once ``event``
    is set: every chunk written checks it, so even a large image stops within one chunk."""
    previous = getattr(_cancel, "event", None)
    _cancel.event = event
    try:
        yield
    finally:
        _cancel.event = previous


def check_cancelled() -> None:
    """Raise :class:`WriteCancelled` if this thread's writes were cancelled (between the slow
    steps that come before a write: decoding, upsampling, rendering)."""
    event = getattr(_cancel, "event", None)
    if event is not None and event.is_set():
        raise WriteCancelled("the run is stopping")


class _Guarded(io.RawIOBase):
    """The raw file under the buffer a writer callback sees: it remembers the first ``OSError``
    (libraries such as PyTorch turn it into an error of their own that no longer says "disk
    full") and checks for cancellation on every chunk. No ``fileno``: Pillow would write to the
    descriptor directly, out of both checks."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self.raw = raw
        self.error: Optional[OSError] = None
        #: Set once the callback has failed: what its buffer still holds is dropped.
        self.discard = False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        size = len(memoryview(data))
        if self.discard:
            return size
        check_cancelled()
        try:
            written = self.raw.write(data)
        except OSError as err:
            self.error = self.error or err
            raise
        return size if written is None else written

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()


#: Buffer between writer callbacks and the file: few system calls, cancellation still prompt.
_BUFFER_SIZE = 1 << 18


def _named(err: OSError, path: PathLike) -> OSError:
    """The same error, naming the file the user asked for (not a temporary)."""
    return OSError(err.errno, err.strerror or str(err), os.fspath(path))


def _reporting(write: Callable[[IO[bytes]], Any], path: PathLike) -> Callable[[IO[bytes]], Any]:
    """``write`` made to fail with the ``OSError`` that caused its failure, naming ``path``.

    The callback writes through a buffer of its own onto the raw file, so that on failure
    nothing is left buffered to fail again (and hide the reason) when the file is closed.
    """

    def run(handle: IO[bytes]) -> None:
        guarded = _Guarded(getattr(handle, "raw", handle))
        buffered = io.BufferedWriter(guarded, _BUFFER_SIZE)  # type: ignore[arg-type]
        try:
            write(buffered)
            buffered.flush()
        except BaseException as err:
            guarded.discard = True
            if isinstance(err, (WriteCancelled, KeyboardInterrupt)) or not isinstance(err, Exception):
                raise
            cause = guarded.error or (err if isinstance(err, OSError) and err.errno is not None else None)
            if cause is None:
                raise
            raise _named(cause, path) from None
        if guarded.error is not None:  # a library swallowed the error: the file is incomplete
            raise _named(guarded.error, path)

    return run


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
    write_plan(target)  # a folder, block device or socket is refused; links are followed
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOCTTY, _FILE_MODE)
    try:
        _append_whole(fd, data, target)
    finally:
        os.close(fd)


def _append_whole(fd: int, data: bytes, path: Path) -> None:
    """Append ``data`` or nothing: a short write (disk full, file size limit) is undone.

    Raises:
        OSError: the reason the line did not fit, naming ``path``.
    """
    try:
        start = os.fstat(fd).st_size
    except OSError:
        start = None
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as err:
        if start is not None and len(view) < len(data):
            try:
                # Cut the partial line back off: the log keeps whole lines only.
                os.ftruncate(fd, start)
            except OSError:
                pass
        raise _named(err, path) from None


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
                stale = [
                    e.path
                    for e in listing
                    if e.name.startswith(".") and e.name.endswith(TEMP_SUFFIX) and e.is_file(follow_symlinks=False)
                ]
        except OSError:
            return 0
        for name in stale:
            try:
                if os.lstat(name).st_mtime < self.started:
                    os.unlink(name)
                    removed += 1
            except OSError:
                pass
        return removed
