"""Recognising a dataset folder's layout and opening it."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Optional

from iem.datasets import cub, flowers, folder
from iem.datasets.base import DatasetError, PairDataset, PathLike

#: Layout names accepted by :func:`open_dataset` (``"auto"`` detects one).
LAYOUTS = ("flowers", "cub", "folder")


def detect_layout(root: PathLike) -> str:
    """Name the layout of ``root``: ``setid.mat`` -> flowers, ``train_val_test_split.txt`` -> cub,
    ``images/`` + ``masks/`` -> folder.

    Raises:
        DatasetError: ``root`` is not a folder or matches none of the layouts.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    if (root / flowers.SETID_FILE).is_file():
        return "flowers"
    if (root / cub.SPLIT_FILE).is_file():
        return "cub"
    if (root / folder.IMAGE_DIR).is_dir() and (root / folder.MASK_DIR).is_dir():
        return "folder"
    raise DatasetError(
        f"{root}: unknown dataset layout (expected {flowers.SETID_FILE}, {cub.SPLIT_FILE}, "
        f"or {folder.IMAGE_DIR}/ and {folder.MASK_DIR}/ folders)"
    )


def open_dataset(
    root: PathLike,
    layout: str = "auto",
    protocol: str = "paper",
    split: Optional[str] = None,
) -> PairDataset:
    """Open the dataset at ``root``.

    Args:
        root: Dataset folder.
        layout: ``"auto"`` (see :func:`detect_layout`), ``"flowers"``, ``"cub"`` or ``"folder"``.
        protocol: ``"paper"`` (128 x 128, the paper's) or ``"full"`` (original resolution).
        split: For Flowers and CUB: ``"test"`` (default: the paper's evaluation images),
            ``"val"``, ``"train"`` or ``"all"``. Folder pairs have no split; only ``None``,
            ``"all"`` or ``"test"`` are accepted there (all images).

    Raises:
        DatasetError: the folder does not have the layout, with one line naming the path.
        ValueError: an unknown layout, protocol or split name.
    """
    if layout == "auto":
        layout = detect_layout(root)
    openers: Dict[str, Callable[..., PairDataset]] = {
        "flowers": flowers.open_flowers,
        "cub": cub.open_cub,
    }
    if layout in openers:
        return openers[layout](root, split=split or "test", protocol=protocol)
    if layout == "folder":
        if split not in (None, "all", "test"):
            raise ValueError(f"a folder-pair dataset has no {split!r} split; it is evaluated whole")
        return folder.open_folder_pair(root, protocol=protocol)
    raise ValueError(f"unknown layout {layout!r}; choose one of auto, {', '.join(LAYOUTS)}")
