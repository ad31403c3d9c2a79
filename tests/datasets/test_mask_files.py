"""Ground-truth decoding rules: 8-bit threshold, 0/1 labels, numpy arrays, Flowers colours."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from iem.datasets.masks import binarize_levels, read_mask, segmim_foreground
from iem.io import ImageReadError


def test_binarize_levels() -> None:
    np.testing.assert_array_equal(binarize_levels(np.array([0, 127, 128, 255], np.uint8)), [False, False, True, True])
    np.testing.assert_array_equal(binarize_levels(np.array([0, 1, 1, 0], np.uint8)), [False, True, True, False])
    np.testing.assert_array_equal(binarize_levels(np.array([True, False])), [True, False])
    assert binarize_levels(np.zeros((2, 2), np.uint8)).sum() == 0


def test_segmim_rule() -> None:
    rgb = np.array([[[0, 10, 10], [10, 0, 10], [10, 10, 254], [10, 10, 253], [255, 255, 255]]], np.uint8)
    np.testing.assert_array_equal(segmim_foreground(rgb), [[False, False, False, True, True]])


def test_read_mask_formats(tmp_path: Path) -> None:
    grey = np.array([[0, 200], [130, 100]], np.uint8)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "rgb.bmp")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "deep.png")  # 16-bit
    np.save(tmp_path / "labels.npy", np.array([[[0, 1], [1, 0]]], np.int64))
    expected = [[False, True], [True, False]]
    for name in ("grey.png", "rgb.bmp", "deep.png", "labels.npy"):
        np.testing.assert_array_equal(read_mask(tmp_path / name), expected, err_msg=name)


def test_read_mask_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    for name in ("empty.png", "cube.npy", "absent.png"):
        with pytest.raises(ImageReadError, match=name):
            read_mask(tmp_path / name)
