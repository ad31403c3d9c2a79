"""CUB-200-2011 with ReDO's train/val/test split.

Layout (the CUB release plus ReDO's split file, docs/reference.md, "Data sets of the paper")::

    root/images.txt                         "<id> <class>/<name>.jpg" per line (CUB release)
    root/train_val_test_split.txt           "<id> <flag>", flag 0 = train, 1 = val, 2 = test
    root/images/<class>/<name>.jpg
    root/segmentations/<class>/<name>.png   soft masks; foreground = first channel > 0.5

The paper evaluates on the 1,000 test images (flag 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

from iem.datasets.base import DatasetError, PairDataset, PathLike, Record, require_dir, require_file
from iem.datasets.masks import read_mask

#: ReDO's split file; its presence identifies the layout.
SPLIT_FILE = "train_val_test_split.txt"
#: CUB's list of image ids and relative paths.
IMAGES_FILE = "images.txt"
IMAGE_DIR = "images"
MASK_DIR = "segmentations"
MASK_SUFFIX = ".png"

#: Split name -> flag in the split file.
SPLIT_FLAGS: Dict[str, int] = {"train": 0, "val": 1, "test": 2}


def _read_pairs(path: Path, what: str) -> List[Tuple[str, str]]:
    """Lines of two whitespace-separated fields; blank lines are skipped."""
    pairs: List[Tuple[str, str]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: cannot read {what} ({err})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise DatasetError(f"{path}:{number}: expected two fields, got {len(fields)}")
        pairs.append((fields[0], fields[1]))
    return pairs


def open_cub(root: PathLike, split: str = "test", protocol: str = "paper") -> PairDataset:
    """Open CUB-200-2011 at ``root``; ``split`` is ``"test"`` (the paper's 1,000), ``"val"``, ``"train"`` or ``"all"``.

    Listed images whose photograph or segmentation is absent are left out and reported in
    :attr:`PairDataset.problems`.
    """
    if split != "all" and split not in SPLIT_FLAGS:
        raise ValueError(f"unknown CUB split {split!r}; choose one of test, val, train, all")
    root = Path(root)
    split_path = require_file(root / SPLIT_FILE, "CUB split file")
    images_path = require_file(root / IMAGES_FILE, "CUB image list")
    image_dir = require_dir(root / IMAGE_DIR, "CUB image")
    mask_dir = require_dir(root / MASK_DIR, "CUB segmentation")
    paths = dict(_read_pairs(images_path, "the image list"))
    records: List[Record] = []
    problems: List[str] = []
    for image_id, flag in _read_pairs(split_path, "the split file"):
        try:
            flag_value = int(flag)
        except ValueError:
            raise DatasetError(f"{split_path}: flag {flag!r} of image {image_id} is not an integer") from None
        if split != "all" and flag_value != SPLIT_FLAGS[split]:
            continue
        relative = paths.get(image_id)
        if relative is None:
            problems.append(f"{images_path}: image id {image_id} of {SPLIT_FILE} not listed")
            continue
        image_path = image_dir / relative
        mask_path = (mask_dir / relative).with_suffix(MASK_SUFFIX)
        missing = [p for p in (image_path, mask_path) if not p.is_file()]
        if missing:
            problems.extend(f"{p}: listed in {IMAGES_FILE} but missing" for p in missing)
            continue
        name = str(Path(relative).with_suffix("").as_posix())
        records.append(Record(name, image_path, mask_path))
    return PairDataset(records, read_mask, protocol=protocol, layout="cub", root=root, problems=problems)
