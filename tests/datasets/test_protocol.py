"""The paper protocol, rule by rule: resize of the shorter side, crop offsets, value scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from iem.datasets.protocol import (
    PAPER_SIZE,
    apply_protocol,
    crop_offset,
    image_to_tensor,
    tensor_to_uint8,
)
from iem.imaging import working_size


@pytest.mark.parametrize(
    "width, height, expected",
    [
        (640, 480, (170, 128)),  # 128 * 640 / 480 = 170.67, truncated like torchvision
        (480, 640, (128, 170)),
        (100, 81, (158, 128)),  # upscaled: 128 * 100 / 81 = 158.02
        (128, 300, (128, 300)),  # shorter side already 128: unchanged
        (256, 256, (128, 128)),
    ],
)
def test_resized_size(width: int, height: int, expected: tuple) -> None:
    assert working_size(height, width, PAPER_SIZE)[::-1] == expected


@pytest.mark.parametrize("side, offset", [(128, 0), (129, 0), (130, 1), (131, 2), (133, 2), (170, 21), (171, 22)])
def test_crop_offset_rounds_half_to_even(side: int, offset: int) -> None:
    # round((side - 128) / 2): 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 21.5 -> 22 (Python's round).
    assert crop_offset(side, PAPER_SIZE) == offset


def _coordinate_image(width: int, height: int) -> Image.Image:
    """Red = column index mod 256, green = row index mod 256."""
    cols, rows = np.meshgrid(np.arange(width), np.arange(height))
    rgb = np.stack([cols % 256, rows % 256, np.full_like(cols, 7)], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb)


def test_crop_takes_the_documented_window() -> None:
    image = _coordinate_image(133, 128)  # offset round(2.5) = 2
    mask = np.zeros((128, 133), bool)
    mask[:, 2] = True  # the first column kept
    tensor, mask_tensor = apply_protocol(image, mask)
    pixels = tensor_to_uint8(tensor)
    assert pixels[0, 0, 0] == 2 and pixels[0, -1, 0] == 129
    assert bool(mask_tensor[:, 0].all()) and int(mask_tensor.sum()) == 128


@pytest.mark.parametrize("width, height, resized", [(256, 400, (200, 128)), (64, 80, (160, 128))])
def test_nearest_resize_matches_center_sampling(width: int, height: int, resized: tuple) -> None:
    # PIL's nearest picks the source pixel under each output pixel's centre, which is torch's
    # "nearest-exact": an independent check of the resize (scales chosen without ties).
    image = _coordinate_image(width, height)
    tensor, _ = apply_protocol(image, np.zeros((height, width), bool))
    source = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float()
    expected = F.interpolate(source, size=resized, mode="nearest-exact")[0]
    top = crop_offset(resized[0], PAPER_SIZE)
    expected = expected[:, top : top + PAPER_SIZE, :].to(torch.uint8).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(tensor_to_uint8(tensor), expected)


def test_values_scaled_to_minus_one_one() -> None:
    levels = np.array([[[0, 51, 255]]], np.uint8)
    tensor = image_to_tensor(Image.fromarray(levels))
    assert tensor.dtype == torch.float32 and tensor.shape == (3, 1, 1)
    np.testing.assert_allclose(tensor.flatten().numpy(), [-1.0, 2 * 51 / 255 - 1, 1.0], atol=1e-6)
    np.testing.assert_array_equal(tensor_to_uint8(tensor), levels)


def test_mask_stays_binary_and_aligned() -> None:
    image = _coordinate_image(300, 200)
    mask = np.zeros((200, 300), bool)
    mask[50:150, 100:200] = True
    tensor, mask_tensor = apply_protocol(image, mask)
    assert mask_tensor.dtype == torch.bool and mask_tensor.shape == (128, 128)
    # The red channel says which source column each output column came from.
    columns = tensor_to_uint8(tensor)[0, :, 0].astype(int)
    np.testing.assert_array_equal(mask_tensor[64].numpy(), (columns >= 100) & (columns < 200))


def test_full_protocol_keeps_resolution() -> None:
    image = _coordinate_image(45, 30)
    tensor, mask = apply_protocol(image, np.ones((30, 45), bool), protocol="full")
    assert tensor.shape == (3, 30, 45) and bool(mask.all())


def test_unknown_protocol() -> None:
    with pytest.raises(ValueError, match="protocol"):
        apply_protocol(_coordinate_image(4, 4), np.zeros((4, 4), bool), protocol="half")
