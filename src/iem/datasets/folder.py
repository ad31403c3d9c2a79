"""Any ``images/`` + ``masks/`` folder pair: GrabCut, Weizmann Horse, LSUN-Car-style sets.

Layout::

    root/images/<relative path>.<jpg|png|...>
    root/masks/<relative path>.<png|...|npy>     foreground > 127 (or 1 in 0/1 label files)

An image and a mask belong together when their paths relative to the two folders are equal
once the suffix is dropped (``images/cars/0001.jpg`` <-> ``masks/cars/0001.png``). Other folders
beside the two (GrabCut's ``ignore/``, say) are not read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, List, Tuple

from iem.datasets.base import IMAGE_SUFFIXES, PairDataset, PathLike, Record, require_dir
from iem.datasets.masks import NUMPY_SUFFIX, read_mask

IMAGE_DIR = "images"
MASK_DIR = "masks"

#: Mask files may also be numpy arrays (e.g. masks exported from a detector).
MASK_SUFFIXES = IMAGE_SUFFIXES | {NUMPY_SUFFIX}


def relative_stem(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` without its suffix, with forward slashes: the matching key."""
    return path.relative_to(root).with_suffix("").as_posix()


def scan_by_stem(root: PathLike, suffixes: Iterable[str] = IMAGE_SUFFIXES) -> Tuple[Dict[str, Path], List[str]]:
    """Files under ``root`` (recursively) keyed by :func:`relative_stem`.

    Hidden files and folders are skipped and suffixes compare case-insensitively. Two files with
    the same key (``a.png`` beside ``a.jpg``) are ambiguous: both are left out and reported.

    Returns:
        ``(files, problems)``: the key -> path map in sorted key order, and one-line messages.
    """
    root = Path(root)
    allowed = {s.lower() for s in suffixes}
    found: Dict[str, List[Path]] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() in allowed and path.is_file():
            found.setdefault(relative_stem(path, root), []).append(path)
    files: Dict[str, Path] = {}
    problems: List[str] = []
    for key in sorted(found):
        paths = found[key]
        if len(paths) == 1:
            files[key] = paths[0]
        else:
            names = ", ".join(p.name for p in paths)
            problems.append(f"{paths[0].parent}: ambiguous files for {key!r} ({names}); skipped")
    return files, problems


def open_folder_pair(root: PathLike, protocol: str = "paper") -> PairDataset:
    """Open an ``images/`` + ``masks/`` dataset; unmatched files are reported in ``problems``."""
    root = Path(root)
    image_dir = require_dir(root / IMAGE_DIR, "image")
    mask_dir = require_dir(root / MASK_DIR, "mask")
    images, problems = scan_by_stem(image_dir, IMAGE_SUFFIXES)
    masks, mask_problems = scan_by_stem(mask_dir, MASK_SUFFIXES)
    problems.extend(mask_problems)
    records: List[Record] = []
    for key, image_path in images.items():
        mask_path = masks.get(key)
        if mask_path is None:
            problems.append(f"{image_path}: no ground-truth mask (expected {mask_dir / key}.*)")
            continue
        records.append(Record(key, image_path, mask_path))
    problems.extend(f"{masks[key]}: mask without an image" for key in masks if key not in images)
    return PairDataset(records, read_mask, protocol=protocol, layout="folder", root=root, problems=problems)
