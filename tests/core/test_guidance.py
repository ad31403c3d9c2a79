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
