"""Blank or near-constant working images: nothing to segment."""

from __future__ import annotations

import numpy as np
import pytest

from iem.io.working import BLANK_STD, is_blank


def _image(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("level", [0, 128, 255])
def test_constant_images_are_blank(level: int) -> None:
    assert is_blank(np.full((32, 48, 3), level, np.uint8))


def test_a_level_of_noise_is_still_blank_but_structure_is_not() -> None:
    rng = np.random.default_rng(0)
    noisy = _image(200 + rng.normal(0, 0.5, (64, 64, 3)))
    assert noisy.reshape(-1, 3).std(axis=0).max() < BLANK_STD and is_blank(noisy)
    page = np.full((64, 64, 3), 250, np.uint8)
    page[30:36, 30:36] = 0  # a small dark mark on a white page: something to segment
    assert not is_blank(page)
    one_channel = np.full((64, 64, 3), 90, np.uint8)
    one_channel[:, :32, 2] = 120  # structure in one channel only
    assert not is_blank(one_channel)
