"""Choosing the pseudo-labels: highest inpainting error first (section 3.3)."""

from __future__ import annotations

import math

import pytest
import torch

from iem.segnet.select import select_top


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
