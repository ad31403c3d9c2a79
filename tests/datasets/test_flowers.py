"""Oxford Flowers loader on a replica: ReDO's split roles, the segmim colour rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from replicas import flowers_expected

from iem.datasets import DatasetError, detect_layout, open_dataset, open_flowers
from iem.datasets.flowers import split_ids


def test_test_split_is_trnid_in_file_order(flowers_root: Path) -> None:
    data = open_flowers(flowers_root)
    assert data.names == ["image_00005", "image_00002", "image_00004"]
    assert split_ids(flowers_root / "setid.mat", "train") == [3, 6]
    assert split_ids(flowers_root / "setid.mat", "val") == [1]
    assert open_flowers(flowers_root, split="all").names == [f"image_{i:05d}" for i in range(1, 7)]


def test_segmim_rule_full_protocol(flowers_root: Path) -> None:
    name, image, mask = open_flowers(flowers_root, protocol="full")[0]
    assert name == "image_00005"
    assert image.shape == (3, 40, 56) and image.dtype == torch.float32
    assert mask.dtype == torch.bool
    np.testing.assert_array_equal(mask.numpy(), flowers_expected(40, 56))


def test_paper_protocol_shapes(flowers_root: Path) -> None:
    for name, image, mask in open_flowers(flowers_root):
        assert image.shape == (3, 128, 128)
        assert mask.shape == (128, 128)
        assert -1.0 <= float(image.min()) and float(image.max()) <= 1.0
        # The foreground block covers half of each side of the 40 x 56 original.
        assert 0.1 < float(mask.float().mean()) < 0.5


def test_missing_files_are_reported_not_fatal(flowers_root: Path) -> None:
    (flowers_root / "segmim" / "segmim_00002.jpg").unlink()
    data = open_flowers(flowers_root)
    assert data.names == ["image_00005", "image_00004"]
    assert len(data.problems) == 1 and "segmim_00002.jpg" in data.problems[0]


def test_detection_and_errors(flowers_root: Path, tmp_path: Path) -> None:
    assert detect_layout(flowers_root) == "flowers"
    assert open_dataset(flowers_root).layout == "flowers"
    with pytest.raises(ValueError, match="split"):
        open_flowers(flowers_root, split="bogus")
    (flowers_root / "setid.mat").write_bytes(b"not a mat file")
    with pytest.raises(DatasetError, match="setid.mat"):
        open_flowers(flowers_root)
