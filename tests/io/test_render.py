"""The output pictures: values, modes and sizes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from iem.io.render import (
    OPENCV_PNG_MAX_SIDE, OVERLAY_COLOR, cutout_image, inpainting_image, mask_image, mask_png, overlay_image,
)


@pytest.fixture
def photo_and_mask():
    pixels = np.random.default_rng(0).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    mask = np.zeros((6, 10), bool)
    mask[2:5, 3:8] = True
    return Image.fromarray(pixels), mask


def test_mask_is_8_bit_0_255(photo_and_mask) -> None:
    _, mask = photo_and_mask
    image = mask_image(mask)
    assert image.mode == "L" and image.size == (10, 6)
    assert np.array_equal(np.asarray(image), np.where(mask, 255, 0))


def test_mask_png_is_the_mask_as_an_8_bit_png(photo_and_mask) -> None:
    _, mask = photo_and_mask
    data = mask_png(mask)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.mode == "L" and image.size == (10, 6)
    assert np.array_equal(np.asarray(image), np.where(mask, 255, 0))
    # any truthy values are the foreground, as for mask_image
    assert mask_png(mask.astype(np.float32) * 0.5) == data


def test_mask_png_of_a_mask_wider_than_opencv_encodes(capfd) -> None:
    mask = np.zeros((2, OPENCV_PNG_MAX_SIDE + 1), bool)
    mask[1, ::3] = True
    image = Image.open(io.BytesIO(mask_png(mask)))
    assert image.mode == "L" and np.array_equal(np.asarray(image), np.where(mask, 255, 0))
    assert capfd.readouterr().err == ""  # no complaint from libpng through OpenCV


def test_cutout_keeps_the_foreground_opaque(photo_and_mask) -> None:
    photo, mask = photo_and_mask
    cut = np.asarray(cutout_image(photo, mask))
    assert cut.shape == (6, 10, 4)
    assert np.array_equal(cut[..., :3], np.asarray(photo))
    assert np.array_equal(cut[..., 3], np.where(mask, 255, 0))


def test_overlay_tints_the_foreground_and_dims_the_rest(photo_and_mask) -> None:
    photo, mask = photo_and_mask
    over = np.asarray(overlay_image(photo, mask), dtype=np.float64)
    original = np.asarray(photo, dtype=np.float64)
    tint = np.asarray(OVERLAY_COLOR, dtype=np.float64)
    # Foreground moved towards the tint, background darker.
    assert (np.abs(over[mask] - tint).sum(axis=1) <= np.abs(original[mask] - tint).sum(axis=1) + 1).all()
    assert (over[~mask] <= original[~mask] + 0.5).all()
    with pytest.raises(ValueError, match="does not match"):
        overlay_image(photo, mask[:, :5])


def test_inpainting_is_resized_to_the_photo() -> None:
    small = np.zeros((3, 5, 3), np.uint8)
    assert inpainting_image(small, (10, 6)).size == (10, 6)
    assert inpainting_image(small, (5, 3)).size == (5, 3)


def test_outputs_are_named_after_the_input_and_written_whole(tmp_path, photo_and_mask) -> None:
    from pathlib import PurePath

    from iem.io.outputs import OUTPUTS, output_paths, render_output, write_outputs

    photo, mask = photo_and_mask
    targets = output_paths(tmp_path, PurePath("trip/day1/a.jpeg"), list(OUTPUTS))
    assert {k: p.relative_to(tmp_path).as_posix() for k, p in targets.items()} == {
        "mask": "trip/day1/a.mask.png",
        "cutout": "trip/day1/a.cutout.png",
        "overlay": "trip/day1/a.overlay.jpg",
        "inpaint": "trip/day1/a.inpaint.png",
    }
    write_outputs(targets, photo, mask, np.zeros((3, 5, 3), np.uint8))
    modes = {kind: Image.open(path).mode for kind, path in targets.items()}
    assert modes == {"mask": "L", "cutout": "RGBA", "overlay": "RGB", "inpaint": "RGB"}
    # the mask file is the one encoding of masks
    assert targets["mask"].read_bytes() == mask_png(mask)
    with pytest.raises(ValueError, match="needs the inpainting result"):
        render_output("inpaint", photo, mask, None)
    with pytest.raises(ValueError, match="unknown output"):
        render_output("sketch", photo, mask, None)
