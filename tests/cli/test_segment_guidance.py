"""``iem segment --box / --foreground-mask / --background-mask`` on one image."""

from __future__ import annotations

import io

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from iem.cli import main

FAST = ["--size", "32", "--iterations", "5"]


@pytest.fixture
def photo(tmp_path):
    picture = np.full((60, 80, 3), 40, np.uint8)
    picture[15:45, 20:60] = (220, 180, 30)
    path = tmp_path / "photo.png"
    Image.fromarray(picture).save(path)
    return path


def run(*args, stdin=None):
    return CliRunner().invoke(main, ["segment", *FAST, *map(str, args)], input=stdin)


def test_box_and_marks_reach_the_mask(photo, tmp_path):
    background = np.zeros((60, 80), np.uint8)
    background[:, 30:34] = 255  # a band across the object: kept as background
    Image.fromarray(background).save(tmp_path / "bg.png")
    result = run(photo, "-o", tmp_path / "out", "--box", "18,13,62,47", "--background-mask", tmp_path / "bg.png",
                 "--outputs", "mask,cutout")
    assert result.exit_code == 0, result.output
    mask = np.asarray(Image.open(tmp_path / "out" / "photo.mask.png")) > 0
    assert mask.shape == (60, 80) and not mask[:, 30:34].any()
    assert mask[20:40, 22:28].mean() > 0.9 and mask[20:40, 40:58].mean() > 0.9
    assert Image.open(tmp_path / "out" / "photo.cutout.png").mode == "RGBA"


def test_box_from_stdin_to_stdout(photo):
    result = CliRunner().invoke(main, ["segment", *FAST, "-", "--box", "18,13,62,47"], input=photo.read_bytes())
    assert result.exit_code == 0
    assert Image.open(io.BytesIO(result.stdout_bytes)).size == (80, 60)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--box", "1,2,3"], "four"),
        (["--box", "5,5,2,9"], "empty"),
        (["--box", "500,500,600,600"], "outside"),
        (["--foreground-mask", "{small}"], "foreground marks"),
        (["--box", "1,1,20,20", "--outputs", "inpaint"], "inpaint"),
    ],
)
def test_bad_guidance_is_a_usage_error(photo, tmp_path, extra, message):
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "small.png")
    extra = [part.format(small=tmp_path / "small.png") for part in extra]
    result = run(photo, "-o", tmp_path / "out", *extra)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_guidance_needs_exactly_one_image(photo, tmp_path):
    result = run(photo.parent, "-o", tmp_path / "out", "--box", "1,1,20,20")
    assert result.exit_code == 2 and "one image file" in result.output
