"""Find the images named on a command line: files, folders (recursive) and glob patterns.

Everything is lazy and in a fixed order: each folder is listed (and sorted) only when the walk
reaches it, so the walk starts at once and holds one folder listing at a time, whatever the
size of the tree. Each image comes with its place in the output tree, which mirrors the input.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Iterable, Iterator, List, Optional, Sequence, Set, Tuple, Union

from PIL import Image

PathLike = Union[str, os.PathLike]

_GLOB_MAGIC = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class InputFile:
    """One image to process.

    Attributes:
        path: where to read it.
        relative: its place in the output tree (the file name, or its path below the folder or
            the fixed part of the glob pattern it was found through).
    """

    path: Path
    relative: PurePath


@dataclass(frozen=True)
class InputProblem:
    """An argument or folder that cannot be walked; ``reason`` is one line."""

    path: str
    reason: str


def image_extensions() -> frozenset:
    """Lower-case file extensions (with the dot) that Pillow can open."""
    Image.init()
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def iter_inputs(
    inputs: Iterable[PathLike],
    exclude: Optional[PathLike] = None,
    extensions: Optional[Sequence[str]] = None,
    output_suffixes: Sequence[str] = (),
) -> Iterator[Union[InputFile, InputProblem]]:
    """Yield the images named by ``inputs``, in order, lazily.

    * A file is taken whatever its extension (the user named it).
    * A folder is walked recursively in sorted order; only files with an image extension are
      taken; hidden entries (name starting with ``.``) and symbolic links to folders are
      skipped. A link to a file is followed, and a broken one is yielded so that it is
      reported.
    * A pattern with ``*``, ``?`` or ``[`` that is not an existing path is a glob (``**``
      spans folders); its matches are taken like the arguments above.

    Args:
        inputs: paths, folders or glob patterns.
        exclude: the output folder. It is never entered when met inside an input; when it is
            an input itself (``iem segment photos -o photos``) it is walked, but the files in
            it whose names end with one of ``output_suffixes`` are left out.
        extensions: extensions taken from folders; :func:`image_extensions` by default.
        output_suffixes: the name endings of outputs (``.mask.png``, ...): such files inside
            ``exclude`` were written by iem and are never read back as inputs.

    Yields:
        :class:`InputFile` per image, :class:`InputProblem` per argument that names nothing
        or folder that cannot be listed. A file reached twice (named twice, named and inside a
        named folder, or through a symbolic link or another relative path to the same place:
        the same :func:`os.path.realpath`) is yielded once, the first time.
    """
    seen: Set[str] = set()
    suffixes = tuple(output_suffixes)
    output_folder = os.path.join(os.path.realpath(exclude), "") if exclude is not None else None
    for item in _iter_all(inputs, exclude, extensions):
        if isinstance(item, InputFile):
            resolved = os.path.realpath(item.path)
            if resolved in seen:
                continue
            seen.add(resolved)
            if output_folder and item.path.name.endswith(suffixes) and resolved.startswith(output_folder):
                continue
        yield item


def _iter_all(
    inputs: Iterable[PathLike], exclude: Optional[PathLike], extensions: Optional[Sequence[str]]
) -> Iterator[Union[InputFile, InputProblem]]:
    exts = frozenset(e.lower() for e in (extensions or image_extensions()))
    excluded = _identity(Path(exclude)) if exclude is not None else None
    for arg in inputs:
        text = os.fspath(arg)
        path = Path(text)
        if os.path.lexists(path) or not _GLOB_MAGIC.search(text):
            yield from _walk_argument(path, PurePath(path.name), exts, excluded, explicit=True, root=True)
            continue
        base, parts = _split_pattern(text)
        found = False
        for match in _glob(base, parts):
            found = True
            relative = PurePath(os.path.relpath(match, base))
            root = relative == PurePath(".")  # a trailing ** names the fixed folder itself
            yield from _walk_argument(match, relative, exts, excluded, explicit=False, root=root)
        if not found:
            yield InputProblem(text, "no file matches this pattern")


def _walk_argument(
    path: Path,
    relative: PurePath,
    exts: frozenset,
    excluded: Optional[Tuple[int, int]],
    explicit: bool,
    root: bool = False,
) -> Iterator[Union[InputFile, InputProblem]]:
    if path.is_dir() and not (path.is_symlink() and not explicit):
        # The output folder named as an input is walked (its outputs are left out by name);
        # met any other way it is not entered.
        if not root and excluded is not None and _identity(path) == excluded:
            return
        found = False
        for item in _walk_folder(path, exts, excluded):
            found = found or isinstance(item, InputFile)
            if isinstance(item, InputFile):
                yield InputFile(item.path, item.relative if explicit else relative / item.relative)
            else:
                yield item
        if not found and explicit:
            yield InputProblem(str(path), "no image files found in this folder")
    elif explicit or path.suffix.lower() in exts:
        # Missing, unreadable or not-an-image files are yielded: reading them reports why.
        yield InputFile(path, relative)


def _walk_folder(
    root: Path, exts: frozenset, excluded: Optional[Tuple[int, int]]
) -> Iterator[Union[InputFile, InputProblem]]:
    """Depth-first, sorted, one listing in memory per open level."""
    stack: List[Tuple[Path, PurePath]] = [(root, PurePath())]
    while stack:
        folder, rel = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as err:
            yield InputProblem(str(folder), f"cannot list folder ({err.strerror or err})")
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
            if is_dir:
                if excluded is None or _identity(Path(entry.path)) != excluded:
                    subfolders.append((Path(entry.path), rel / entry.name))
            elif os.path.splitext(entry.name)[1].lower() in exts and not _is_link_to_folder(entry):
                yield InputFile(Path(entry.path), rel / entry.name)
        # Files of a folder come before its sub-folders, which are visited in name order.
        stack.extend(reversed(subfolders))


def _is_link_to_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_symlink() and entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def _identity(path: Path) -> Optional[Tuple[int, int]]:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _split_pattern(pattern: str) -> Tuple[Path, List[str]]:
    """Split a glob into its fixed leading folder and the remaining components."""
    parts = PurePath(pattern).parts
    fixed: List[str] = []
    for part in parts:
        if _GLOB_MAGIC.search(part):
            break
        fixed.append(part)
    rest = list(parts[len(fixed) :])
    return (Path(*fixed) if fixed else Path(".")), rest


def _glob(base: Path, parts: List[str]) -> Iterator[Path]:
    """Lazy, sorted glob: ``**`` matches zero or more folders; hidden names need a leading dot."""
    if not parts:
        if os.path.lexists(base):
            yield base
        return
    part, rest = parts[0], parts[1:]
    if part == "**":
        if not rest:
            # A trailing ** names everything below: walking the folder itself does exactly that.
            if base.is_dir():
                yield base
            return
        yield from _glob(base, rest)
        for child in _sorted_children(base):
            if child.is_dir() and not child.is_symlink() and not child.name.startswith("."):
                yield from _glob(child, parts)
        return
    if not _GLOB_MAGIC.search(part):
        yield from _glob(base / part, rest)
        return
    for child in _sorted_children(base):
        if not fnmatch.fnmatchcase(child.name, part):
            continue
        if child.name.startswith(".") and not part.startswith("."):
            continue
        if rest:
            if child.is_dir():
                yield from _glob(child, rest)
        else:
            yield child


def _sorted_children(folder: Path) -> List[Path]:
    try:
        with os.scandir(folder) as listing:
            names = sorted(e.name for e in listing)
    except OSError:
        return []
    return [folder / name for name in names]
