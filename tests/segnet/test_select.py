"""Choosing the pseudo-labels: highest inpainting error first (section 3.3)."""

from __future__ import annotations

import math

import pytest
import torch

from iem.segnet.select import AGREEMENT_CHUNK, box_agreement, select_top


def _square_scene(count: int) -> torch.Tensor:
    """``count`` 64 px images: a bright red square (rows and columns 16..47) on a dark noisy green."""
    g = torch.Generator().manual_seed(0)
    images = torch.tensor([-0.6, 0.1, -0.5]).view(1, 3, 1, 1) + 0.05 * torch.randn(count, 3, 64, 64, generator=g)
    images[:, :, 16:48, 16:48] = torch.tensor([0.9, -0.7, -0.6]).view(1, 3, 1, 1)
    return images.clamp(-1, 1)


def test_top_k_picks_the_highest_scores_in_order() -> None:
    scores = torch.tensor([0.5, 2.0, 1.0, 3.0, 0.1])
    assert select_top(scores, top_k=3).tolist() == [3, 1, 2]


def test_top_fraction_rounds_half_up_and_keeps_one() -> None:
    scores = torch.arange(5, dtype=torch.float32)
    assert select_top(scores, top_fraction=0.5).tolist() == [4, 3, 2]  # 2.5 -> 3
    assert select_top(scores, top_fraction=0.01).tolist() == [4]
    assert select_top(scores, top_fraction=1.0).tolist() == [4, 3, 2, 1, 0]


def test_ties_keep_the_lower_index_first() -> None:
    assert select_top(torch.tensor([1.0, 2.0, 2.0, 1.0]), top_k=3).tolist() == [1, 2, 0]


def test_failed_and_degenerate_masks_are_never_kept() -> None:
    scores = torch.tensor([5.0, math.nan, 4.0, 3.0, 2.0])
    masks = torch.zeros(5, 1, 4, 4, dtype=torch.bool)
    masks[:, :, 1:3, 1:3] = True
    masks[0] = True  # full: no boundary to learn from
    masks[2] = False  # empty
    assert select_top(scores, top_k=10, masks=masks).tolist() == [3, 4]
    # the fraction is of the usable candidates (2 here)
    assert select_top(scores, top_fraction=0.5, masks=masks).tolist() == [3]


def test_top_k_beyond_the_collection_keeps_everything() -> None:
    assert select_top(torch.tensor([1.0, 3.0]), top_k=8000).tolist() == [1, 0]


def test_nothing_usable_gives_an_empty_selection() -> None:
    assert select_top(torch.tensor([math.nan]), top_k=1).numel() == 0


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"top_k": 1, "top_fraction": 0.5}, {"top_k": 0}, {"top_k": 1.5}, {"top_fraction": 0.0}, {"top_fraction": 1.5}],
)
def test_bad_arguments_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        select_top(torch.tensor([1.0, 2.0]), **kwargs)


def test_masks_must_match_scores() -> None:
    with pytest.raises(ValueError):
        select_top(torch.tensor([1.0, 2.0]), top_k=1, masks=torch.ones(3, 4, 4, dtype=torch.bool))


def test_box_agreement_is_the_iou_with_grabcut_from_the_box() -> None:
    # GrabCut from the box finds the square (32 x 32 = 1024 pixels) exactly on this scene, so
    # each mask's agreement is its IoU with the square, counted by hand.
    images = _square_scene(5)
    masks = torch.zeros(5, 1, 64, 64, dtype=torch.bool)
    masks[0, :, 16:48, 16:48] = True  # the square: 1024 / 1024
    masks[1, :, 16:32, 16:48] = True  # its top half: 512 / 1024
    masks[2, :, 16:48, 32:64] = True  # half inside, 512 outside: 512 / 1536
    # masks[3] empty: 0 / 1024
    masks[4] = ~masks[0]  # foreground and background swapped: 0 / 4096, the worst label
    agreement = box_agreement(images, masks, iterations=3, border=2)
    assert agreement.dtype == torch.float64
    assert agreement.tolist() == pytest.approx([1.0, 0.5, 1 / 3, 0.0, 0.0])


def test_box_agreement_reports_progress_by_chunk() -> None:
    count = AGREEMENT_CHUNK + 3
    images = _square_scene(1).expand(count, -1, -1, -1)
    masks = torch.zeros(count, 1, 64, 64, dtype=torch.bool)
    masks[:, :, 16:48, 16:48] = True
    done = []
    agreement = box_agreement(images, masks, iterations=1, border=2, progress=done.append)
    assert done == [AGREEMENT_CHUNK, 3]
    assert agreement.tolist() == [1.0] * count
