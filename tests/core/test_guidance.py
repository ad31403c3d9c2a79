import numpy as np
import pytest
import torch

import iem
from iem.config import IEMConfig
from iem.core import kernels
from iem.core.engine import optimize_masks
from iem.core.filters import LinearFilter
from iem.core.guidance import box_mask, check_box, guidance_at, marks_at, pin, pin_full
from iem.core.masks import initial_masks

from ..conftest import composite


def test_box_mask_rounds_outwards_at_the_working_size():
    # A 200 x 100 photo at 100 x 50: x 25..75 -> 12.5..37.5 -> columns 12..37; y 10..30 -> rows 5..15.
    mask = box_mask((25, 10, 75, 30), (100, 200), (50, 100))
    rows, cols = torch.nonzero(mask[0, 0], as_tuple=True)
    assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (5, 14, 12, 37)
    assert int(mask.sum()) == 10 * 26


@pytest.mark.parametrize("box", [(5, 5, 5, 9), (0, 0, 3), (200, 0, 300, 10), ("a", 0, 1, 1), (0, 0, float("nan"), 4)])
def test_bad_boxes_are_refused(box):
    with pytest.raises(ValueError):
        check_box(box, 100, 100)


def test_thin_strokes_survive_reduction_and_conflicts_are_freed():
    fg = np.zeros((40, 40), bool)
    fg[20, 4:36] = True  # one photo row; a 10 x 10 working image averages 4 x 4 blocks
    bg = np.zeros((40, 40), bool)
    bg[0:4, 0:4] = True
    bg[23, 7] = True  # in the stroke's first 4 x 4 block: that working pixel is marked both ways
    fixed = marks_at(fg, bg, (10, 10))
    assert fixed.shape == (1, 2, 10, 10)
    assert fixed[0, 0, 5, 2:9].all() and int(fixed[0, 0].sum()) == 7
    assert fixed[0, 1, 0, 0] and int(fixed[0, 1].sum()) == 1 and not fixed[0, :, 5, 1].any()
    assert not (fixed[:, 0] & fixed[:, 1]).any()


def test_pin_sets_marks_and_leaves_the_rest():
    masks = torch.tensor([[[[True, False, True, False]]]])
    fixed = torch.tensor([[[[False, True, False, False]], [[True, False, False, False]]]])
    assert pin(masks, fixed).tolist() == [[[[False, True, True, False]]]]
    assert pin(masks, None) is masks


def test_pin_full_and_guidance_at_check_shapes():
    mask = np.zeros((3, 4), bool)
    fg = np.zeros((3, 4), bool)
    fg[1, 1] = True
    assert pin_full(mask, fg, None)[1, 1] and pin_full(mask, fg, None).sum() == 1
    with pytest.raises(ValueError, match="foreground marks"):
        guidance_at((5, 4), (5, 4), None, np.zeros((3, 4), bool))


def guided_case():
    image, truth = composite(40, 48, seed=3)
    fixed = torch.zeros(1, 2, 40, 48, dtype=torch.bool)
    fixed[0, 0, 18:22, 2:30] = True  # a foreground stroke reaching into the background
    fixed[0, 1, 0:6, :] = True  # a background band along the top
    return image, truth, fixed


@pytest.mark.parametrize("compiled", [False, True])
def test_both_loops_keep_the_marked_pixels(compiled, monkeypatch, one_torch_thread):
    if compiled and not kernels.AVAILABLE:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(kernels, "AVAILABLE", compiled)
    image, _, fixed = guided_case()
    cfg = IEMConfig(iterations=40)
    filt = LinearFilter.build(40, 48, cfg, torch.float32, "cpu")
    start = initial_masks(40, 48, (78,))
    free, _ = optimize_masks(image, start, cfg, filt)
    guided, _ = optimize_masks(image, start, cfg, filt, fixed=fixed)
    # Without pins IEM leaves the stroke's left end in the background; with them it may not.
    assert not free[0, 0, 18:22, 2:30].all()
    assert guided[0, 0, 18:22, 2:30].all() and not guided[0, 0, 0:6].any()


@pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed")
def test_compiled_and_torch_loops_agree_with_pins(monkeypatch, one_torch_thread):
    image, _, fixed = guided_case()
    cfg = IEMConfig(iterations=40)
    filt = LinearFilter.build(40, 48, cfg, torch.float32, "cpu")
    start = initial_masks(40, 48, (44, 78))
    image, fixed = image.expand(2, -1, -1, -1), fixed.expand(2, -1, -1, -1)
    compiled = optimize_masks(image, start, cfg, filt, fixed=fixed)
    monkeypatch.setattr(kernels, "AVAILABLE", False)
    reference = optimize_masks(image, start, cfg, filt, fixed=fixed)
    assert torch.equal(compiled[0], reference[0]) and torch.equal(compiled[1], reference[1])


def test_empty_pins_change_nothing_and_batches_do_not_matter(one_torch_thread):
    image, _, fixed = guided_case()
    other, _ = composite(40, 48, seed=5, shape="box")
    cfg = IEMConfig(iterations=30)
    plain = iem.segment_batch(image, cfg, "cpu")
    empty = torch.zeros(1, 1, 40, 48, dtype=torch.bool)
    assert torch.equal(iem.segment_batch(image, cfg, "cpu", foreground=empty, background=empty).masks, plain.masks)
    alone = iem.segment_batch(image, cfg, "cpu", foreground=fixed[:, :1], background=fixed[:, 1:])
    together = iem.segment_batch(
        torch.cat([other, image]), cfg, "cpu", chunk_size=1,
        foreground=torch.cat([empty, fixed[:, :1]]), background=torch.cat([empty, fixed[:, 1:]]),
    )
    assert torch.equal(together.masks[1:], alone.masks)
    assert torch.equal(together.masks[:1], iem.segment_batch(other, cfg, "cpu").masks)


def test_segment_batch_refuses_conflicting_or_misshapen_marks():
    image, _, _ = guided_case()
    marks = torch.ones(1, 1, 40, 48, dtype=torch.bool)
    with pytest.raises(ValueError, match="both"):
        iem.segment_batch(image, IEMConfig(iterations=1), "cpu", foreground=marks, background=marks)
    with pytest.raises(ValueError, match="shape"):
        iem.segment_batch(image, IEMConfig(iterations=1), "cpu", foreground=marks[..., :10])


def test_segment_from_a_box_with_strokes_at_full_resolution(one_torch_thread):
    image, truth = composite(96, 128, seed=1)
    photo = ((image[0].permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
    rows, cols = np.nonzero(truth[0, 0].numpy())
    box = (cols.min() - 3, rows.min() - 3, cols.max() + 4, rows.max() + 4)
    bg = np.zeros((96, 128), bool)
    bg[:, :2] = True
    fg = np.zeros((96, 128), bool)
    fg[0, 60] = True  # one pixel: kept in the full-resolution mask whatever the upsampling does
    mask = iem.segment(photo, IEMConfig(iterations=60), size=48, device="cpu", box=box, foreground=fg, background=bg)
    assert mask.shape == (96, 128) and mask[0, 60] and not mask[:, :2].any()
    truth = truth[0, 0].numpy()
    assert (mask & truth).sum() / (mask | truth).sum() > 0.8
    with pytest.raises(ValueError, match="not both"):
        iem.segment(photo, box=box, init_mask=truth)


def test_pins_survive_the_refinement_of_the_best_preset(one_torch_thread):
    image, _, fixed = guided_case()
    result = iem.segment_batch(image, IEMConfig.best(iterations=20), "cpu", foreground=fixed[:, :1], background=fixed[:, 1:])
    assert result.masks[0, 0, 18:22, 2:30].all() and not result.masks[0, 0, 0:6].any()


@pytest.mark.parametrize(
    "box, message",
    [
        (("a", 0, 1, 1), "box must be four numbers x0,y0,x1,y1, got ('a', 0, 1, 1)"),
        ((0, 0, 3), "box must be four numbers x0,y0,x1,y1, got (0, 0, 3)"),
        ((0, 0, float("inf"), 4), "box must be finite, got (0, 0, inf, 4)"),
        ((5, 5, 5, 9), "box (5,5,5,9) is empty: it needs x0 < x1 and y0 < y1"),
        ((1, 5, 4, 5), "box (1,5,4,5) is empty: it needs x0 < x1 and y0 < y1"),
        ((-10, 2, 0, 10), "box (-10,2,0,10) lies outside the 120x100 image"),
        ((2, -10, 10, 0), "box (2,-10,10,0) lies outside the 120x100 image"),
        ((120, 2, 130, 10), "box (120,2,130,10) lies outside the 120x100 image"),
        ((2, 100, 10, 130), "box (2,100,10,130) lies outside the 120x100 image"),
    ],
)
def test_each_bad_box_is_refused_with_its_reason(box, message):
    # A 100 px high, 120 px wide image: a box touching it only along an edge has no pixel in it.
    with pytest.raises(ValueError) as refused:
        check_box(box, 100, 120)
    assert str(refused.value) == message


@pytest.mark.parametrize("box", [(-10, -10, 0.5, 0.5), (119.5, 99.5, 200, 200), (0, 0, 120, 100)])
def test_boxes_overlapping_the_image_by_part_of_a_pixel_are_kept(box):
    assert check_box(box, 100, 120) == tuple(float(v) for v in box)


def test_box_mask_from_the_image_corner_and_beyond_it():
    # A 100 x 100 photo at 10 x 10: x -5..10 -> columns 0 (clipped) ..1; y 0..25 -> rows 0..2.5 -> 0..2.
    mask = box_mask((-5, 0, 10, 25), (100, 100), (10, 10))
    expected = torch.zeros(1, 1, 10, 10, dtype=torch.bool)
    expected[..., 0:3, 0:1] = True
    assert mask.dtype == torch.bool and torch.equal(mask, expected)


def test_marks_on_one_side_only():
    fg = np.zeros((4, 6), bool)
    fg[3, 5] = True  # in the last 2 x 2 block of a 2 x 3 working image
    for marks in ((fg, None), (None, fg)):
        fixed = marks_at(*marks, (2, 3))
        expected = torch.zeros(1, 2, 2, 3, dtype=torch.bool)
        expected[0, 0 if marks[0] is not None else 1, 1, 2] = True
        assert torch.equal(fixed, expected)


def test_marks_at_refuses_what_is_not_two_masks_of_one_shape():
    with pytest.raises(ValueError) as refused:
        marks_at(None, None, (2, 2))
    assert str(refused.value) == "marks_at needs a foreground or a background mask"
    with pytest.raises(ValueError) as refused:
        marks_at(np.zeros((4, 4), bool), np.zeros((4, 5), bool), (2, 2))
    assert str(refused.value) == "foreground and background must be (H, W) masks of the same shape, got [(4, 4), (4, 5)]"
    with pytest.raises(ValueError, match="must be \\(H, W\\) masks"):
        marks_at(np.zeros((2, 4, 4), bool), np.zeros((2, 4, 4), bool), (2, 2))


def test_pin_full_takes_marks_and_masks_of_any_integer_type():
    # Marks and mask as 0/1 integers: each must act as the bool mask it stands for.
    mask = np.array([[1, 1, 0, 0]], np.uint8)
    fg = np.array([[0, 0, 1, 1]], np.uint8)
    bg = np.array([[1, 0, 0, 1]], np.uint8)
    # column 0: background mark -> 0; 1: unmarked -> 1; 2: foreground mark -> 1; 3: both -> as computed (0)
    out = pin_full(mask, fg, bg)
    assert out.dtype == bool and out.tolist() == [[False, True, True, False]]
    assert pin_full(mask, None, bg).tolist() == [[False, True, False, False]]
    assert pin_full(mask, fg, None).tolist() == [[True, True, True, True]]


def test_pin_full_refuses_marks_of_another_shape_on_either_side():
    mask = np.zeros((3, 4), bool)
    for fg, bg in ((np.zeros((3, 5), bool), None), (None, np.zeros((4, 4), bool))):
        with pytest.raises(ValueError) as refused:
            pin_full(mask, fg, bg)
        shapes = [(3, 4) if m is None else m.shape for m in (fg, bg)]
        assert str(refused.value) == f"marks of shape {shapes[0]}/{shapes[1]} do not match the mask's (3, 4)"


def test_guidance_at_brings_box_and_marks_to_the_working_size():
    fg = np.zeros((8, 12), bool)
    fg[0, 0] = True
    bg = np.zeros((8, 12), bool)
    bg[7, 11] = True
    # A 12 x 8 photo at 6 x 4: each working pixel covers 2 x 2 photo pixels.
    init, fixed = guidance_at((8, 12), (4, 6), (2, 2, 6, 5), fg, bg)
    expected_init = torch.zeros(1, 1, 4, 6, dtype=torch.bool)
    expected_init[..., 1:3, 1:3] = True  # x 2..6 -> 1..3, y 2..5 -> 1..2.5 -> rows 1..2
    expected_fixed = torch.zeros(1, 2, 4, 6, dtype=torch.bool)
    expected_fixed[0, 0, 0, 0] = expected_fixed[0, 1, 3, 5] = True
    assert torch.equal(init, expected_init) and torch.equal(fixed, expected_fixed)
    init, only_bg = guidance_at((8, 12), (4, 6), None, None, bg)
    assert init is None and torch.equal(only_bg[:, 1], expected_fixed[:, 1]) and not only_bg[:, 0].any()
    init, no_marks = guidance_at((8, 12), (4, 6), (2, 2, 6, 5))
    assert torch.equal(init, expected_init) and no_marks is None


def test_guidance_at_names_the_marks_of_the_wrong_size():
    with pytest.raises(ValueError) as refused:
        guidance_at((4, 5), (4, 5), None, None, np.zeros((3, 4), bool))
    assert str(refused.value) == "the background marks are (4, 3) px but the photo is 5x4 px"
