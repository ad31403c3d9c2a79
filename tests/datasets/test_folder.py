"""Folder-pair loader: GrabCut/Weizmann-style flat folders and LSUN-style nested ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from replicas import write_png_as
from PIL import Image

from iem.datasets import SampleError, detect_layout, open_dataset, open_folder_pair, scan_by_stem
from tests.conftest import require_shared


def _pair(root: Path, relative: str, mask: np.ndarray, mask_suffix: str = ".png") -> None:
    rng = np.random.default_rng(len(relative))
    image = rng.integers(0, 256, size=(*mask.shape, 3), dtype=np.uint8)
    write_png_as(root / "images" / f"{relative}.jpg", image)
    target = root / "masks" / f"{relative}{mask_suffix}"
    target.parent.mkdir(parents=True, exist_ok=True)
    if mask_suffix == ".npy":
        np.save(target, mask)
    else:
        Image.fromarray(mask).save(target)


def test_lsun_style_nested_pairs_and_label_encodings(tmp_path: Path) -> None:
    root = tmp_path / "lsun_car"
    half = np.zeros((32, 48), np.uint8)
    half[:, :24] = 255
    labels01 = (half > 0).astype(np.uint8)  # a 0/1 label file
    _pair(root, "cars/0001", half)
    _pair(root, "cars/0002", labels01)
    _pair(root, "trucks/0003", half > 0, mask_suffix=".npy")
    data = open_folder_pair(root, protocol="full")
    assert data.names == ["cars/0001", "cars/0002", "trucks/0003"]
    assert data.problems == []
    for _, image, mask in data:
        assert image.shape == (3, 32, 48)
        np.testing.assert_array_equal(mask.numpy(), half > 0)


def test_unmatched_and_ambiguous_files_reported(tmp_path: Path) -> None:
    root = tmp_path / "pairs"
    mask = np.full((20, 20), 255, np.uint8)
    _pair(root, "a", mask)
    _pair(root, "b", mask)
    (root / "masks" / "b.png").rename(root / "masks" / "orphan.png")
    write_png_as(root / "images" / "a.png", np.zeros((20, 20, 3), np.uint8))  # a.jpg and a.png
    data = open_folder_pair(root)
    assert len(data) == 0
    joined = "\n".join(data.problems)
    assert "ambiguous" in joined and "b.jpg: no ground-truth mask" in joined and "orphan.png: mask without an image" in joined


def test_hidden_files_skipped(tmp_path: Path) -> None:
    write_png_as(tmp_path / "visible.png", np.zeros((4, 4, 3), np.uint8))
    write_png_as(tmp_path / ".hidden" / "x.png", np.zeros((4, 4, 3), np.uint8))
    files, problems = scan_by_stem(tmp_path)
    assert list(files) == ["visible"] and problems == []


def test_full_protocol_resizes_mask_to_image(tmp_path: Path) -> None:
    root = tmp_path / "pairs"
    write_png_as(root / "images" / "x.png", np.zeros((40, 60, 3), np.uint8))
    small = np.zeros((20, 30), np.uint8)
    small[:, 15:] = 255
    write_png_as(root / "masks" / "x.png", small)
    _, image, mask = open_folder_pair(root, protocol="full")[0]
    assert mask.shape == (40, 60)
    assert bool(mask[:, 30:].all()) and not bool(mask[:, :30].any())


def test_corrupt_image_raises_sample_error_naming_file(tmp_path: Path) -> None:
    root = tmp_path / "pairs"
    _pair(root, "good", np.zeros((16, 16), np.uint8))
    (root / "images" / "bad.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    write_png_as(root / "masks" / "bad.png", np.zeros((16, 16), np.uint8))
    data = open_dataset(root)
    with pytest.raises(SampleError, match="bad.jpg"):
        list(data)
    assert data[data.names.index("good")].image.shape == (3, 128, 128)


@pytest.mark.parametrize("name, count", [("grabcut", 50), ("weizmann_horse", 327)])
def test_shared_datasets_open(name: str, count: int) -> None:
    root = require_shared(name)
    assert detect_layout(root) == "folder"
    data = open_dataset(root)
    assert len(data) == count and data.problems == []
    sample = data[0]
    assert sample.image.shape == (3, 128, 128) and sample.mask.dtype == torch.bool
    assert 0.0 < float(sample.mask.float().mean()) < 1.0
