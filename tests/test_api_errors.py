"""Wrong arguments to the public functions: a ValueError or TypeError that says what was expected."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import iem
from iem.pipeline import parse_outputs

FAST = iem.IEMConfig.released(iterations=3)


def _images(b: int = 2, side: int = 24) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(b, 3, side, side, generator=generator) * 2 - 1


def test_images_that_require_grad_are_detached_and_give_the_same_masks():
    images = _images()
    plain = iem.segment_batch(images, FAST, "cpu")
    tracked = iem.segment_batch(images.clone().requires_grad_(), FAST, "cpu")
    assert torch.equal(plain.masks, tracked.masks)


@pytest.mark.parametrize(
    "masks, expected",
    [
        (torch.ones(2, 24, 24, dtype=torch.bool), r"\(2, 1, 24, 24\).*got \(2, 24, 24\)"),
        (torch.ones(1, 1, 24, 24, dtype=torch.bool), r"\(2, 1, 24, 24\).*got \(1, 1, 24, 24\)"),
        (torch.ones(2, 1, 12, 12, dtype=torch.bool), r"\(2, 1, 24, 24\).*got \(2, 1, 12, 12\)"),
    ],
)
def test_inpaint_names_the_mask_shape_it_expected(masks, expected):
    with pytest.raises(ValueError, match=expected):
        iem.inpaint(_images(), masks)


def test_inpaint_refuses_masks_that_are_not_tensors():
    with pytest.raises(TypeError, match="masks must be a"):
        iem.inpaint(_images(), np.ones((2, 1, 24, 24), bool))


def test_mean_scores_of_an_empty_batch_is_a_value_error():
    empty = torch.zeros(0, 1, 8, 8, dtype=torch.bool)
    with pytest.raises(ValueError, match="empty"):
        iem.metrics.mean_scores(empty, empty)
    # Per-image scores of no image are simply empty.
    assert iem.metrics.binary_scores(empty, empty)["iou"].shape == (0,)


@pytest.mark.parametrize("call", ["segment_batch", "inpaint", "segment"])
def test_a_dict_as_config_is_a_type_error_pointing_at_iemconfig(call):
    settings = {"iterations": 3}
    with pytest.raises(TypeError, match=r"IEMConfig.*got dict.*IEMConfig.paper\(\*\*settings\)"):
        if call == "segment_batch":
            iem.segment_batch(_images(), settings)
        elif call == "inpaint":
            iem.inpaint(_images(), torch.ones(2, 1, 24, 24, dtype=torch.bool), settings)
        else:
            iem.segment(np.zeros((24, 24, 3), np.uint8), settings)


def test_a_tensor_given_to_segment_points_at_segment_batch():
    with pytest.raises(TypeError, match=r"segment_batch"):
        iem.segment(_images()[0], FAST)


def test_segment_batch_refuses_arrays_and_wrong_ranks_saying_what_it_takes():
    with pytest.raises(TypeError, match=r"\(B, C, H, W\) float tensor.*ndarray"):
        iem.segment_batch(_images().numpy(), FAST)
    with pytest.raises(ValueError, match=r"got shape \(3, 24, 24\)"):
        iem.segment_batch(_images()[0], FAST)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"device": "gpu"}, "device must be"),
        ({"chunk_size": "2"}, "chunk_size must be an integer"),
        ({"init_masks": np.ones((2, 1, 24, 24), bool)}, "init_masks must be a"),
    ],
)
def test_segment_batch_settings_errors_say_what_was_expected(kwargs, expected):
    error = TypeError if "init_masks" in kwargs else ValueError
    with pytest.raises(error, match=expected):
        iem.segment_batch(_images(), FAST, **kwargs)


def test_segment_checks_size_and_init_mask_shape():
    image = np.zeros((40, 30, 3), np.uint8)
    with pytest.raises(ValueError, match="size must be a positive integer"):
        iem.segment(image, FAST, size="64")
    with pytest.raises(ValueError, match=r"\(40, 30\).*got shape \(10, 10\)"):
        iem.segment(image, FAST, init_mask=np.zeros((10, 10), bool))


@pytest.mark.parametrize(
    "given, expected",
    [
        ("mask", ("mask",)),
        ("mask,cutout", ("mask", "cutout")),
        (" cutout , mask,cutout", ("cutout", "mask")),
        (["overlay", "mask"], ("overlay", "mask")),
    ],
)
def test_outputs_as_one_name_a_comma_list_or_a_sequence(given, expected):
    assert parse_outputs(given) == expected


@pytest.mark.parametrize("given", ["masks", "", [], "mask,,nope"])
def test_unknown_outputs_are_named(given):
    with pytest.raises(ValueError, match="outputs must be a non-empty selection"):
        parse_outputs(given)


def test_segment_files_takes_outputs_as_a_string(tmp_path):
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    summary = iem.segment_files(
        tmp_path / "a.png", tmp_path / "out", FAST, size=32, device="cpu", outputs="mask,cutout", progress=False
    )
    assert summary.segmented == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.cutout.png", "a.mask.png", "iem-settings.json"]
