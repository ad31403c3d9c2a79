"""Reading every kind of image file: upright RGB out, or one clear line naming the file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from iem.io.read import ALPHA_BACKGROUND, ImageReadError, read_file_bytes, read_image, to_rgb
from tests.io.samples import ZOO_MAX_PIXELS, make_zoo, synthetic_photo


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("zoo")
    return folder, make_zoo(folder)


def test_every_zoo_file_reads_or_fails_clearly(zoo) -> None:
    folder, expected = zoo
    for name, want in expected.items():
        path = folder / name
        if want.size is not None:
            image = read_image(path, max_pixels=ZOO_MAX_PIXELS)
            assert image.mode == "RGB" and image.size == want.size, name
        elif want.error in ("too small", "aspect ratio"):
            read_image(path)  # readable; refused later by the pipeline's size rules
        else:
            with pytest.raises(ImageReadError) as info:
                read_image(path, max_pixels=ZOO_MAX_PIXELS)
            message = str(info.value)
            assert message.startswith(f"{path}: ") and want.error in message, message
            assert "\n" not in message and info.value.reason in message


def test_exif_orientation_is_applied(zoo) -> None:
    folder, _ = zoo
    with Image.open(folder / "rotated.jpg") as raw:
        assert raw.size == (96, 72)
        upright = ImageOps.exif_transpose(raw).convert("RGB")
    image = read_image(folder / "rotated.jpg")
    assert image.size == (72, 96)
    assert np.array_equal(np.asarray(image), np.asarray(upright))


def test_animated_gif_gives_its_first_frame(zoo) -> None:
    folder, _ = zoo
    first = np.asarray(read_image(folder / "animated.gif"), dtype=np.float64)
    # The second frame is plain white; the first is the (darker, coloured) synthetic photo.
    assert first.mean() < 200 and first.std() > 20


def test_sixteen_bit_is_scaled_to_eight_bits(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    image = np.asarray(read_image(tmp_path / "ramp.png"))
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    assert image[0, 0, 0] == 0 and image[-1, -1, 0] == 255
    assert np.array_equal(image[..., 0], np.rint(ramp / 257.0).astype(np.uint8))


_LEVELS = np.arange(0, 256, 5, dtype=np.float64)  # 0, 5, ..., 255


def _float_tiff(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(np.tile(values.astype(np.float32), (8, 1)), "F").save(path)
    return path


@pytest.mark.parametrize(
    "values, expected",
    [
        (_LEVELS, _LEVELS),  # a float image of 0..255 data keeps its values
        (_LEVELS / 255.0, _LEVELS),  # 0..1 is stretched to 0..255
        (np.full(52, 0.5), np.full(52, 128.0)),  # within 0..1: taken as 0..1
        (np.full(52, 100.0), np.full(52, 100.0)),
    ],
)
def test_float_ranges_are_read_from_the_data(tmp_path: Path, values: np.ndarray, expected: np.ndarray) -> None:
    image = np.asarray(read_image(_float_tiff(tmp_path / "f.tif", values)))
    assert np.array_equal(image[0, :, 1], expected.astype(np.uint8))


@pytest.mark.parametrize(
    "values, reason",
    [
        (_LEVELS - 10, "float samples from -10 to 245: range unknown (expected 0..1 or 0..255)"),
        (_LEVELS * 4, "float samples from 0 to 1020: range unknown"),
        (np.where(_LEVELS > 100, np.nan, _LEVELS), "float image holds NaN or infinite values"),
        (np.where(_LEVELS > 100, np.inf, _LEVELS), "float image holds NaN or infinite values"),
    ],
)
def test_ambiguous_or_invalid_float_ranges_are_refused(tmp_path: Path, values: np.ndarray, reason: str) -> None:
    path = _float_tiff(tmp_path / "f.tif", values)
    with pytest.raises(ImageReadError, match=reason.replace("(", r"\(").replace(")", r"\)")) as info:
        read_image(path)
    assert str(info.value).startswith(f"{path}: ")


def test_wide_integers_are_eight_or_sixteen_bit_by_their_values(tmp_path: Path) -> None:
    small = np.tile(np.arange(0, 256, dtype=np.int32), (4, 1))
    Image.fromarray(small, "I").save(tmp_path / "small.tif")
    assert np.array_equal(np.asarray(read_image(tmp_path / "small.tif"))[0, :, 0], small[0].astype(np.uint8))
    wide = np.tile(np.array([0, 65535, 70000], dtype=np.int32), (4, 4))
    Image.fromarray(wide, "I").save(tmp_path / "wide.tif")
    with pytest.raises(ImageReadError, match="integer samples from 0 to 70000: range unknown"):
        read_image(tmp_path / "wide.tif")


def test_alpha_is_composited_over_the_background(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:4, :, 3] = 255  # top half opaque red-ish, bottom half fully transparent
    Image.fromarray(rgba).save(tmp_path / "a.png")
    image = np.asarray(read_image(tmp_path / "a.png"))
    assert tuple(image[0, 0]) == (200, 0, 0)
    assert tuple(image[-1, -1]) == ALPHA_BACKGROUND


def test_palette_with_transparency_and_cmyk_convert(tmp_path: Path) -> None:
    photo, _ = synthetic_photo(32, 24)
    palette = photo.convert("P", palette=Image.ADAPTIVE, colors=8)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "p.png", transparency=0)
    assert read_image(tmp_path / "p.png").mode == "RGB"
    cmyk = to_rgb(photo.convert("CMYK"))
    assert cmyk.mode == "RGB" and np.abs(np.asarray(cmyk, float) - np.asarray(photo, float)).mean() < 2


def test_bytes_source_matches_the_file(zoo) -> None:
    folder, _ = zoo
    data = (folder / "rotated.jpg").read_bytes()
    assert np.array_equal(np.asarray(read_image(data)), np.asarray(read_image(folder / "rotated.jpg")))
    with pytest.raises(ImageReadError, match=r"^<stdin>: empty file$"):
        read_image(b"")
    with pytest.raises(ImageReadError, match=r"^upload: not a recognised image format$"):
        read_image(b"GIF89a but not really", name="upload")


def test_min_side_decodes_smaller_but_never_below(tmp_path: Path) -> None:
    photo, _ = synthetic_photo(800, 600)
    photo.save(tmp_path / "big.jpg", quality=90)
    small = read_image(tmp_path / "big.jpg", min_side=128)
    assert min(small.size) >= 128 and small.size[0] < 800
    assert read_image(tmp_path / "big.jpg").size == (800, 600)


def test_bomb_limit_is_adjustable(zoo) -> None:
    folder, _ = zoo
    with pytest.raises(ImageReadError, match="over the limit of 40,000"):
        read_image(folder / "bomb.png", max_pixels=ZOO_MAX_PIXELS)
    assert read_image(folder / "bomb.png", max_pixels=300 * 300).size == (300, 300)
    assert read_image(folder / "bomb.png", max_pixels=None).size == (300, 300)
    # Pillow's own global limit is left as it was.
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS > 300 * 300


def test_unreadable_paths(tmp_path: Path) -> None:
    (tmp_path / "dir.jpg").mkdir()
    with pytest.raises(ImageReadError, match="is a directory"):
        read_image(tmp_path / "dir.jpg")
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageReadError, match="no such file"):
        read_file_bytes(tmp_path / "missing.jpg")
    os.symlink(tmp_path / "gone.png", tmp_path / "link.png")
    with pytest.raises(ImageReadError, match="broken symbolic link"):
        read_file_bytes(tmp_path / "link.png")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "locked.png"
    synthetic_photo(16, 16)[0].save(path)
    path.chmod(0)
    with pytest.raises(ImageReadError, match="permission denied"):
        read_image(path)


def test_legacy_one_line_form_still_works() -> None:
    err = ImageReadError("x.png: broken")
    assert str(err) == "x.png: broken" and err.reason == "x.png: broken" and err.name is None
