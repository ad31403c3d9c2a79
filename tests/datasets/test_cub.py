"""CUB loader on a replica: ReDO's split file with CUB's images.txt, soft masks > 0.5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from replicas import CUB_LEVELS, cub_segmentation

from iem.datasets import DatasetError, detect_layout, open_cub, open_dataset


def test_splits_follow_flags(cub_root: Path) -> None:
    assert open_cub(cub_root).names == [
        "001.Black_footed_Albatross/Black_Footed_Albatross_0002_2",
        "002.Laysan_Albatross/Laysan_Albatross_0002_4",
    ]
    assert open_cub(cub_root, split="val").names == ["002.Laysan_Albatross/Laysan_Albatross_0001_3"]
    assert len(open_cub(cub_root, split="train")) == 2
    assert len(open_cub(cub_root, split="all")) == 5


def test_soft_mask_threshold(cub_root: Path) -> None:
    name, image, mask = open_cub(cub_root, protocol="full")[0]
    assert image.shape == (3, 36, 48)
    levels = cub_segmentation(36, 48)
    expected = np.vectorize(CUB_LEVELS.get)(levels)
    np.testing.assert_array_equal(mask.numpy(), expected)


def test_paper_protocol(cub_root: Path) -> None:
    _, image, mask = open_cub(cub_root)[1]
    assert image.shape == (3, 128, 128) and mask.shape == (128, 128)


def test_layout_detection_and_missing_pieces(cub_root: Path) -> None:
    assert detect_layout(cub_root) == "cub"
    assert open_dataset(cub_root, split="val").layout == "cub"
    (cub_root / "segmentations" / "002.Laysan_Albatross" / "Laysan_Albatross_0002_4.png").unlink()
    data = open_cub(cub_root)
    assert len(data) == 1 and "Laysan_Albatross_0002_4.png" in data.problems[0]
    (cub_root / "images.txt").unlink()
    with pytest.raises(DatasetError, match="images.txt"):
        open_cub(cub_root)


def test_malformed_split_file(cub_root: Path) -> None:
    (cub_root / "train_val_test_split.txt").write_text("1 0\n2\n")
    with pytest.raises(DatasetError, match=r"train_val_test_split.txt:2"):
        open_cub(cub_root)
