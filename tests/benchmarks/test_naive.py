"""The naive baseline must compute the same IEM as the library, or its speed ratio means nothing."""

from __future__ import annotations

import torch

import iem
from benchmarks import common
from benchmarks.naive import NaiveIEM, centered_square, naive_segment
from iem.core.masks import boundary, initial_square, smooth
from tests.conftest import composite


def grid(*rows):
    return torch.tensor(rows, dtype=torch.float32).view(1, 1, len(rows), len(rows[0]))


def test_boundary_by_hand_including_the_image_border():
    m = grid(
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 1, 1, 0, 0],
        [0, 0, 1, 1, 1, 0],
        [0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
    )
    expected = grid(
        [1, 1, 1, 1, 1, 1],
        [1, 0, 1, 1, 0, 1],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
        [1, 0, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
    ).bool()
    assert torch.equal(NaiveIEM().boundary(m), expected)
    assert torch.equal(NaiveIEM().boundary(m), boundary(m.bool()))


def test_square_matches_the_library_and_smoothing_rule():
    assert torch.equal(centered_square(128, 128, 78).bool(), initial_square(128, 128, 78))
    m = (torch.rand(2, 1, 20, 20, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    count = torch.nn.functional.avg_pool2d(m, 3, stride=1, padding=1, divisor_override=1)
    assert torch.equal(count >= 4, smooth(m.bool()))


def test_gradient_matches_the_library_autograd_objective():
    images = torch.cat([composite(32, 32, seed=s)[0] for s in range(2)])
    masks = centered_square(32, 32, 18).expand(2, 1, 32, 32).clone()
    naive = NaiveIEM()
    m = masks.clone().requires_grad_(True)
    (naive.inpainting_error(images, m) - naive.lambda_ * naive.diversity(images, m)).sum().backward()
    from iem.core.filters import LinearFilter
    from iem.core.inpaint import gaussian_inpainter
    from iem.core.objective import objective_gradient_autograd

    config = iem.IEMConfig.released()
    filt = LinearFilter.build(32, 32, config, torch.float32, "cpu")
    expected = objective_gradient_autograd(images, masks, gaussian_inpainter(filt, config.epsilon), config)
    assert torch.allclose(m.grad, expected, rtol=1e-3, atol=1e-6)


def test_masks_agree_with_segment_batch_on_synthetic_images():
    images = torch.cat([composite(40, 40, seed=s, shape=("disk", "box")[s % 2])[0] for s in range(3)])
    naive = naive_segment(images, squares=(24,), iterations=12)
    ours = iem.segment_batch(images, iem.IEMConfig.released(iterations=12, init_sizes=(77,)), device="cpu")
    assert common.mask_agreement(naive.masks, ours.masks)["mean_iou"] >= 0.99


def test_masks_agree_with_segment_batch_on_horses(shared_data):
    images = common.horse_batch(3, shared_data)
    naive = naive_segment(images, iterations=10)
    ours = iem.segment_batch(images, iem.IEMConfig.released(iterations=10), device="cpu")
    agreement = common.mask_agreement(naive.masks, ours.masks)
    assert agreement["mean_iou"] >= 0.99, agreement


def test_paper_squares_keep_the_highest_error(shared_data):
    images = common.horse_batch(2, shared_data)
    result = naive_segment(images, squares=(44, 78, 92), iterations=3)
    singles = [naive_segment(images, squares=(s,), iterations=3).scores for s in (44, 78, 92)]
    assert torch.equal(result.init, torch.stack(singles).argmax(0))
    ours = iem.segment_batch(images, iem.IEMConfig.paper(iterations=3), device="cpu")
    assert common.mask_agreement(result.masks, ours.masks)["mean_iou"] >= 0.99
