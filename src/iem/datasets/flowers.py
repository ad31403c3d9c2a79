"""Oxford 102 Flowers in its released layout, split as ReDO and IEM split it.

Layout (docs/reference.md, "Data sets of the paper")::

    root/jpg/image_00001.jpg ...        the photographs
    root/segmim/segmim_00001.jpg ...    the colour-coded segmentations
    root/setid.mat                      arrays trnid, valid, tstid of 1-based image ids

ReDO, and IEM after it, evaluate on the ids of ``trnid`` (1,020 images) and train on ``tstid``
(6,149): the split names here are the roles the paper gives them, so ``split="test"`` is the
1,020 evaluation images of Table 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np

from iem.datasets.base import DatasetError, PairDataset, PathLike, Record, require_dir, require_file
from iem.datasets.masks import read_segmim

#: The split file at the dataset root; its presence identifies the layout.
SETID_FILE = "setid.mat"
IMAGE_DIR = "jpg"
SEGMIM_DIR = "segmim"
IMAGE_PATTERN = "image_{:05d}.jpg"
SEGMIM_PATTERN = "segmim_{:05d}.jpg"

#: Paper role of a split -> array of ``setid.mat`` holding its ids (ReDO's assignment).
SPLIT_ARRAYS: Dict[str, str] = {"test": "trnid", "val": "valid", "train": "tstid"}


def split_ids(setid_path: PathLike, split: str) -> List[int]:
    """The 1-based image ids of ``split`` (``"test"``, ``"val"``, ``"train"`` or ``"all"``)."""
    if split != "all" and split not in SPLIT_ARRAYS:
        raise ValueError(f"unknown Flowers split {split!r}; choose one of test, val, train, all")
    try:
        from scipy.io import loadmat
        from scipy.io.matlab import MatReadError
    except ImportError as err:  # scipy is the optional "data" extra
        raise DatasetError("reading Flowers' setid.mat needs scipy: pip install 'iem[data]'") from err
    try:
        content = loadmat(str(setid_path))
    except (OSError, ValueError, MatReadError) as err:
        raise DatasetError(f"{setid_path}: not a readable MATLAB file ({err})") from None
    arrays = SPLIT_ARRAYS.values() if split == "all" else [SPLIT_ARRAYS[split]]
    ids: List[int] = []
    for key in arrays:
        if key not in content:
            raise DatasetError(f"{setid_path}: array {key!r} missing")
        ids.extend(int(i) for i in np.asarray(content[key]).ravel())
    return sorted(ids) if split == "all" else ids


def open_flowers(root: PathLike, split: str = "test", protocol: str = "paper") -> PairDataset:
    """Open Oxford Flowers at ``root``; ``split="test"`` gives the paper's 1,020 evaluation images.

    Ids listed in ``setid.mat`` whose image or segmentation file is absent are left out and
    reported in :attr:`PairDataset.problems`.
    """
    root = Path(root)
    setid = require_file(root / SETID_FILE, "Flowers split file")
    image_dir = require_dir(root / IMAGE_DIR, "Flowers image")
    segmim_dir = require_dir(root / SEGMIM_DIR, "Flowers segmentation")
    records: List[Record] = []
    problems: List[str] = []
    for image_id in split_ids(setid, split):
        image_path = image_dir / IMAGE_PATTERN.format(image_id)
        mask_path = segmim_dir / SEGMIM_PATTERN.format(image_id)
        missing = [p for p in (image_path, mask_path) if not p.is_file()]
        if missing:
            problems.extend(f"{p}: listed in {SETID_FILE} but missing" for p in missing)
            continue
        records.append(Record(image_path.stem, image_path, mask_path))
    return PairDataset(records, read_segmim, protocol=protocol, layout="flowers", root=root, problems=problems)
