import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from iem.config import IEMConfig
from iem.core.masks import (
    boundary,
    initial_masks,
    initial_square,
    iem_step,
    projected_step,
    smooth,
    square_side,
    window_count,
)


def grid(*rows):
    return torch.tensor(rows, dtype=torch.bool).view(1, 1, len(rows), len(rows[0]))


def test_boundary_by_hand_including_the_image_border():
    m = grid(
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 0, 0, 0],
    )
    expected = grid(
        [1, 1, 1, 1, 1],
        [1, 0, 1, 1, 1],
        [1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1],
    )
    assert torch.equal(boundary(m), expected)
    # the interior pixel (1, 1) of the background has four background neighbours
    assert not boundary(m)[0, 0, 1, 1]


def test_interior_of_a_full_mask_is_not_boundary():
    m = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    b = boundary(m)
    assert b[0, 0, 0].all() and b[0, 0, :, 0].all()
    assert not b[0, 0, 1:3, 1:3].any()


def test_smoothing_rules_by_hand():
    # centre pixel with 3 neighbours set: window count 4 with itself, 3 without
    m = grid([1, 1, 0], [1, 1, 0], [0, 0, 0])
    assert smooth(m, "code")[0, 0, 1, 1]  # 4 ones in the window
    assert not smooth(m, "paper")[0, 0, 1, 1]  # 3 neighbours, not more than 4
    # a lone pixel disappears; a pixel surrounded by 5 ones appears
    assert not smooth(grid([0, 0, 0], [0, 1, 0], [0, 0, 0]), "code").any()
    m = grid([1, 1, 1], [1, 0, 1], [0, 0, 0])
    assert smooth(m, "code")[0, 0, 1, 1] and smooth(m, "paper")[0, 0, 1, 1]


def test_window_count_matches_a_box_convolution():
    m = torch.rand(3, 1, 9, 7) > 0.5
    box = F.conv2d(m.float(), torch.ones(1, 1, 3, 3), padding=1)
    assert torch.equal(window_count(m).float(), box)


def test_projected_step_moves_only_boundary_pixels_with_nonzero_gradient():
    m = grid([0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0])
    g = -torch.ones(1, 1, 5, 5)
    out = projected_step(m, g)
    assert out[0, 0, 2, 2]  # interior keeps its value
    assert not out[0, 0, 1, 1]  # boundary pixel with negative gradient -> 0
    g = torch.zeros(1, 1, 5, 5)
    assert torch.equal(projected_step(m, g), m)  # zero gradient: no move
    g = -torch.ones(1, 1, 5, 5)
    assert not projected_step(m, g, boundary_only=False).any()


def test_initial_squares_at_128_and_proportional():
    sq = initial_square(128, 128, 78)
    rows = sq[0, 0].any(1).nonzero().flatten()
    assert rows[0].item() == 25 and rows[-1].item() == 102  # the released code's 128 // 5
    assert square_side(78, 256, 300) == 156
    masks = initial_masks(128, 160, (44, 78, 92))
    assert masks.shape == (3, 1, 128, 160)
    assert [int(m.sum()) for m in masks] == [44 * 44, 78 * 78, 92 * 92]


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 9), st.integers(2, 9), st.integers(0, 2**31 - 1))
def test_boundary_is_the_same_for_a_mask_and_its_complement(h, w, seed):
    m = torch.rand(1, 1, h, w, generator=torch.Generator().manual_seed(seed)) > 0.5
    assert torch.equal(boundary(m), boundary(~m))


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 9), st.integers(3, 9), st.integers(0, 2**31 - 1))
def test_step_changes_nothing_outside_the_boundary(h, w, seed):
    gen = torch.Generator().manual_seed(seed)
    m = torch.rand(1, 1, h, w, generator=gen) > 0.5
    g = torch.randn(1, 1, h, w, generator=gen)
    out = projected_step(m, g)
    assert torch.equal(out[~boundary(m)], m[~boundary(m)])
    cfg = IEMConfig(smoothing=False)
    assert torch.equal(iem_step(m, g, cfg), out)


def test_square_sides_are_at_least_one_pixel_and_at_most_the_image():
    assert square_side(1, 64, 64) == 1  # 0.5 px rounds to 0: one pixel still
    assert square_side(200, 64, 100) == 64 and square_side(200, 100, 64) == 64


def test_initial_square_is_centred_on_both_axes_as_a_bool_mask():
    sq = initial_square(10, 20, 4)
    assert sq.dtype == torch.bool and sq.shape == (1, 1, 10, 20)
    rows, cols = sq[0, 0].any(1).nonzero().flatten(), sq[0, 0].any(0).nonzero().flatten()
    assert (rows[0].item(), rows[-1].item(), cols[0].item(), cols[-1].item()) == (3, 6, 8, 11)


def test_initial_masks_are_made_on_the_device_asked_for():
    # The meta device has no data: it checks where tensors are made without a GPU.
    assert initial_square(8, 8, 4, device="meta").device.type == "meta"
    assert initial_masks(8, 8, (44, 78), device="meta").device.type == "meta"


def test_smoothing_defaults_to_the_released_codes_rule():
    m = grid([1, 1, 0], [1, 1, 0], [0, 0, 0])  # the rules disagree on the centre
    assert torch.equal(smooth(m), smooth(m, "code")) and not torch.equal(smooth(m), smooth(m, "paper"))


def test_iem_step_passes_the_feasible_set_on():
    m = grid([0, 0, 0, 0, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0])
    g = -torch.ones(1, 1, 5, 5)
    cfg = IEMConfig(smoothing=False, boundary_only=False)
    assert not iem_step(m, g, cfg).any()  # the interior pixel moves too
