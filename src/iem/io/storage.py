"""Where inputs come from and outputs go: local paths or fsspec URLs (``s3://``, ``gs://``, ...).

A thin layer so that the same run reads and writes object storage as it does a local disk,
with the same guarantees:

* **Atomic writes.** A local file is written by :func:`iem.io.write.atomic_write` (temporary
  file, then rename). An object store makes an object visible only once its upload is
  complete, so one upload is atomic there; on other fsspec filesystems the data goes to a
  hidden temporary name beside the target (``.name.XXXX.iem-tmp``) and is then moved into
  place. A reader, or a resumed run, sees the whole mask or no mask, never half of one.
* **Resume.** :func:`exists` tells which outputs are there already.
* **One-line errors.** A store that cannot be reached (no network, bad credentials, no such
  bucket) raises :class:`StorageError`, whose text is one line.

fsspec is the usual way Python reaches object storage (s3fs, gcsfs, adlfs): credentials come
from its usual places (environment variables, ``~/.aws``, instance roles, fsspec's own
configuration), never from iem's options. It is imported only when a URL is used.
``file://`` URLs are turned into plain local paths.
"""

from __future__ import annotations

import os
import posixpath
import re
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Dict, Iterable, Iterator, Optional, Sequence, Tuple, Union

from iem.io.read import ImageReadError, read_file_bytes
from iem.io.walk import InputProblem, image_extensions, iter_inputs
from iem.io.write import TEMP_SUFFIX, atomic_write

PathLike = Union[str, os.PathLike]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_GLOB_MAGIC = re.compile(r"[*?\[]")
_FILE_SCHEME = "file://"


#: fsspec protocols of object stores, where an upload appears whole or not at all (S3 and
#: S3-compatible stores, Google Cloud Storage, Azure Blob Storage).
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})


class StorageError(OSError):
    """A store or folder cannot be used at all; ``str(err)`` is one line naming it."""


@dataclass(frozen=True)
class Source:
    """One image to process, local or remote.

    Attributes:
        name: a local path or a URL, as it is reported.
        relative: its place in the output tree (as :class:`iem.io.walk.InputFile.relative`).
    """

    name: str
    relative: PurePosixPath


def is_url(location: PathLike) -> bool:
    """True for ``scheme://...`` other than ``file://`` (which is a local path)."""
    text = os.fspath(location)
    return bool(_URL.match(text)) and not text.startswith(_FILE_SCHEME)


def local_form(location: PathLike) -> str:
    """``file:///x/y`` -> ``/x/y``; every other location unchanged (as a string)."""
    text = os.fspath(location)
    return text[len(_FILE_SCHEME) :] if text.startswith(_FILE_SCHEME) else text


def join(base: str, *parts: str) -> str:
    """Join path components with ``/`` on URLs and the platform's separator on local paths."""
    return posixpath.join(base, *parts) if is_url(base) else os.path.join(base, *parts)


def _filesystem(url: str) -> Tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path inside it (fsspec imported here)."""
    try:
        from fsspec.core import url_to_fs
    except ImportError:
        raise StorageError(f"{url}: reading URLs needs fsspec (pip install 'iem[distributed]')") from None
    try:
        return url_to_fs(url)
    except (ImportError, ValueError) as err:
        # An unknown scheme, or its package (s3fs, gcsfs, ...) not installed.
        raise StorageError(f"{url}: {_one_line(err)}") from None


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _unreachable(url: str, err: BaseException) -> StorageError:
    return StorageError(f"{url}: storage cannot be used ({_one_line(err)})")


def _fresh(fs: Any) -> Any:
    # fsspec caches listings per process; other workers write meanwhile, so each question about
    # what exists is asked of the store itself.
    fs.invalidate_cache()
    return fs


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def iter_sources(
    inputs: Iterable[PathLike], exclude: Optional[PathLike] = None
) -> Iterator[Union[Source, InputProblem]]:
    """Yield the images named by ``inputs`` (local paths, globs and URLs), in order.

    Local arguments are walked by :func:`iem.io.walk.iter_inputs`. A URL is taken like a
    local argument: an object is taken whatever its extension; a prefix ("folder") is listed
    recursively, in sorted order, keeping image extensions and skipping hidden names; a URL
    with ``*``, ``?`` or ``[`` is a glob (``**`` spans folders).

    Args:
        inputs: local paths, globs and URLs.
        exclude: the output location, never taken as input when it lies inside an input.

    Raises:
        StorageError: a store cannot be reached at all (network, credentials).
    """
    excluded = None if exclude is None else local_form(exclude)
    for arg in inputs:
        text = local_form(arg)
        if not is_url(text):
            for item in iter_inputs([text], exclude=None if excluded is None or is_url(excluded) else excluded):
                if isinstance(item, InputProblem):
                    yield item
                else:
                    yield Source(str(item.path), PurePosixPath(item.relative.as_posix()))
        else:
            yield from _url_sources(text, excluded if excluded is not None and is_url(excluded) else None)


def _url_sources(url: str, exclude: Optional[str]) -> Iterator[Union[Source, InputProblem]]:
    fs, path = _filesystem(url)
    fs = _fresh(fs)
    skip = None if exclude is None else _filesystem(exclude)[1].rstrip("/") + "/"
    exts = image_extensions()

    def taken(key: str, base: str) -> Optional[PurePosixPath]:
        relative = PurePosixPath(posixpath.relpath(key, base))
        if any(part.startswith(".") for part in relative.parts):
            return None
        if posixpath.splitext(key)[1].lower() not in exts:
            return None
        if skip is not None and (key + "/").startswith(skip):
            return None
        return relative

    try:
        if _GLOB_MAGIC.search(path):
            base = path[: _GLOB_MAGIC.search(path).start()].rsplit("/", 1)[0]
            matches = sorted(fs.glob(path))
            if not matches:
                yield InputProblem(url, "no file matches this pattern")
            for match in matches:
                if fs.isdir(match):
                    keys: Sequence[str] = sorted(fs.find(match))
                else:
                    keys = [match]
                for key in keys:
                    relative = taken(key, base)
                    if relative is not None:
                        yield Source(fs.unstrip_protocol(key), relative)
            return
        if fs.isfile(path):
            yield Source(url, PurePosixPath(posixpath.basename(path.rstrip("/"))))
            return
        if not fs.isdir(path):
            yield InputProblem(url, "no such file or folder")
            return
        found = False
        for key in sorted(fs.find(path)):
            relative = taken(key, path.rstrip("/"))
            if relative is not None:
                found = True
                yield Source(fs.unstrip_protocol(key), relative)
        if not found:
            yield InputProblem(url, "no image files found in this folder")
    except StorageError:
        raise
    except FileNotFoundError:
        yield InputProblem(url, "no such file or folder")
    except PermissionError as err:
        yield InputProblem(url, f"permission denied ({_one_line(err)})")
    except Exception as err:  # a store that does not answer: the whole run cannot go on
        raise _unreachable(url, err) from None


def read_bytes(name: str) -> bytes:
    """The bytes of a local file or an object.

    Raises:
        ImageReadError: with a one-line reason (missing, permission, store error).
    """
    if not is_url(name):
        return read_file_bytes(name)
    fs, path = _filesystem(name)
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        raise ImageReadError(name, "no such file") from None
    except PermissionError:
        raise ImageReadError(name, "permission denied") from None
    except Exception as err:
        raise ImageReadError(name, f"cannot read ({_one_line(err)})") from None


# --------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------


def output_locations(out: str, relative: PurePosixPath, suffixes: Dict[str, str]) -> Dict[str, str]:
    """``kind -> OUT/<relative folder>/<stem><suffix>``, like :func:`iem.io.outputs.output_paths`."""
    folder = relative.parent.as_posix()
    parts = [] if folder == "." else [folder]
    return {kind: join(out, *parts, relative.stem + suffix) for kind, suffix in suffixes.items()}


def missing(locations: Dict[str, str]) -> Dict[str, str]:
    """The entries of ``kind -> location`` whose file or object does not exist yet.

    Raises:
        StorageError: the store cannot answer.
    """
    if not locations:
        return {}
    first = next(iter(locations.values()))
    if not is_url(first):
        return {kind: path for kind, path in locations.items() if not os.path.lexists(path)}
    fs = _fresh(_filesystem(first)[0])
    try:
        return {kind: url for kind, url in locations.items() if not fs.exists(_filesystem(url)[1])}
    except Exception as err:
        raise _unreachable(first, err) from None


def publish(local_file: PathLike, target: str) -> None:
    """Copy a finished local file to ``target`` (local path or URL) atomically.

    Raises:
        OSError: the target cannot be written; nothing is left under its name.
    """
    write_bytes(target, Path(local_file).read_bytes())


def write_bytes(target: str, data: bytes) -> None:
    """Write ``data`` to a local path or URL atomically.

    On an object store (:data:`OBJECT_STORES`) one upload is already atomic: the store makes an
    object visible only once all of it has arrived, and an interrupted upload leaves nothing. On
    any other fsspec filesystem the data goes to a hidden temporary name beside the target and
    is then moved into place.

    Raises:
        OSError: the target cannot be written; nothing is left under its name.
    """
    if not is_url(target):
        atomic_write(target, lambda handle: handle.write(data))
        return
    fs, path = _filesystem(target)
    if target.split("://", 1)[0] in OBJECT_STORES:
        try:
            fs.pipe_file(path, data)
        except Exception as err:
            raise OSError(f"{target}: cannot write ({_one_line(err)})") from None
        return
    folder, name = posixpath.split(path)
    temp = posixpath.join(folder, f".{name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")
    try:
        fs.pipe_file(temp, data)
        fs.mv(temp, path)
    except Exception as err:
        try:
            fs.rm_file(temp)
        except Exception:
            pass  # a hidden temporary name never looks like an output
        raise OSError(f"{target}: cannot write ({_one_line(err)})") from None


def read_text(location: str) -> str:
    """A text file or object, or ``""`` when it does not exist."""
    if not is_url(location):
        try:
            return Path(location).read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""
    fs, path = _filesystem(location)
    try:
        return fs.cat_file(path).decode("utf-8")
    except FileNotFoundError:
        return ""
    except Exception as err:
        raise OSError(f"{location}: cannot read ({_one_line(err)})") from None


def check_output_location(out: str) -> str:
    """Make sure outputs can be written at the URL ``out`` (a probe object, removed again).

    Returns:
        ``out`` without a trailing slash.

    Raises:
        StorageError: one line naming ``out`` and why.
    """
    out = out.rstrip("/")
    fs, path = _filesystem(out)
    probe = posixpath.join(path, f".iem-probe.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")
    try:
        fs.pipe_file(probe, b"")
        fs.rm_file(probe)
    except Exception as err:
        raise StorageError(f"{out}: cannot write to the output location ({_one_line(err)})") from None
    return out


__all__ = [
    "Source",
    "StorageError",
    "check_output_location",
    "is_url",
    "iter_sources",
    "join",
    "local_form",
    "missing",
    "output_locations",
    "publish",
    "read_bytes",
    "read_text",
    "write_bytes",
]
