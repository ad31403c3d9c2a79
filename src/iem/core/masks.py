"""Mask operations of IEM: initial squares, boundary, projected step (Eq. 8-9), smoothing.

Masks are ``(B, 1, H, W)`` bool tensors throughout.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from iem.config import REFERENCE_SIZE, IEMConfig

#: Smoothing thresholds on the 3x3 window count (section 3.2 and the released code).
SMOOTHING_MIN_COUNT = {"code": 4, "paper": 5}


def square_side(size_at_reference: int, height: int, width: int) -> int:
    """Side of an initial square given for a 128 px image, scaled to the shorter side."""
    return max(1, min(height, width, round(size_at_reference * min(height, width) / REFERENCE_SIZE)))


def initial_square(height: int, width: int, side: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """A centered square of ones, ``(1, 1, H, W)`` bool (section 4.2).

    The square starts at ``(H - side) // 2``; at 128 px and side 78 that is row 25, the
    released code's ``128 // 5``.
    """
    mask = torch.zeros((1, 1, height, width), dtype=torch.bool, device=device)
    top, left = (height - side) // 2, (width - side) // 2
    mask[..., top : top + side, left : left + side] = True
    return mask


def initial_masks(
    height: int, width: int, sizes: Sequence[int], device: torch.device | str = "cpu"
) -> torch.Tensor:
    """One centered square per entry of ``sizes`` (given at 128 px), ``(len(sizes), 1, H, W)``."""
    return torch.cat([initial_square(height, width, square_side(s, height, width), device) for s in sizes])


def _neighbour_differs(masks: torch.Tensor) -> torch.Tensor:
    padded = F.pad(masks.to(torch.uint8), (1, 1, 1, 1))  # zero padding: outside counts as 0
    inner = padded[..., 1:-1, 1:-1]
    differs = (padded[..., :-2, 1:-1] != inner) | (padded[..., 2:, 1:-1] != inner)
    return differs | (padded[..., 1:-1, :-2] != inner) | (padded[..., 1:-1, 2:] != inner)


def boundary(masks: torch.Tensor) -> torch.Tensor:
    """Pixels with a 4-neighbour of the other value (section 3.2), ``(B, 1, H, W)`` bool.

    Both the mask and its complement are zero padded, as in the released code, so every
    pixel on the image border is a boundary pixel whatever its value.
    """
    border = torch.ones_like(masks)
    border[..., 1:-1, 1:-1] = False
    return _neighbour_differs(masks) | border


def projected_step(masks: torch.Tensor, gradient: torch.Tensor, boundary_only: bool = True) -> torch.Tensor:
    """The eta -> infinity projected ascent step of Eq. 9.

    Pixels of the feasible set ``S(M)`` (the boundary, or every pixel when ``boundary_only``
    is False) with a non-zero gradient become 1 where it is positive and 0 where negative;
    all other pixels keep their value.
    """
    movable = gradient != 0
    if boundary_only:
        movable &= boundary(masks)
    return torch.where(movable, gradient > 0, masks)


def window_count(masks: torch.Tensor) -> torch.Tensor:
    """Number of ones in each pixel's 3x3 window, itself included, zero padding; int tensor."""
    padded = F.pad(masks.to(torch.int16), (1, 1, 1, 1))
    rows = padded[..., :-2, :] + padded[..., 1:-1, :] + padded[..., 2:, :]
    return rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]


def smooth(masks: torch.Tensor, rule: str = "code") -> torch.Tensor:
    """Majority smoothing after each step (section 3.2).

    ``"code"``: 1 where the 3x3 window, the pixel included, holds at least 4 ones (the
    released code, which produced the paper's tables). ``"paper"``: 1 where the 8 neighbours
    hold more than 4 ones, as the text describes.
    """
    count = window_count(masks)
    if rule == "paper":
        count = count - masks.to(count.dtype)
    return count >= SMOOTHING_MIN_COUNT[rule]


def iem_step(masks: torch.Tensor, gradient: torch.Tensor, config: IEMConfig) -> torch.Tensor:
    """One IEM iteration on the masks: projected step (Eq. 9), then smoothing if enabled."""
    masks = projected_step(masks, gradient, config.boundary_only)
    return smooth(masks, config.smoothing_rule) if config.smoothing else masks
