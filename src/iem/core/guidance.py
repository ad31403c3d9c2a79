"""A user's guidance for IEM: an initial box and pixels marked as foreground or background.

IEM starts from a mask and moves its boundary (Eq. 9); a rectangle drawn around the object is
therefore a natural initial mask, as in GrabCut. Marked pixels ("strokes") are pinned: after
every step (projected step, then smoothing) they are set back to their mark, so the optimum
is searched among masks that agree with the user. Everything here is pure tensor work on
``(B, 1, H, W)`` bool masks; the engine applies :func:`pin` inside its loops.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

Box = Tuple[float, float, float, float]


def check_box(box: Sequence[float], height: int, width: int) -> Box:
    """``(x0, y0, x1, y1)`` in pixels of an ``height x width`` image, ``x1, y1`` exclusive.

    Raises:
        ValueError: not four finite numbers, empty, or not overlapping the image.
    """
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"box must be four numbers x0,y0,x1,y1, got {box!r}") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ValueError(f"box must be finite, got {box!r}")
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box ({x0:g},{y0:g},{x1:g},{y1:g}) is empty: it needs x0 < x1 and y0 < y1")
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise ValueError(f"box ({x0:g},{y0:g},{x1:g},{y1:g}) lies outside the {width}x{height} image")
    return x0, y0, x1, y1


def box_mask(box: Box, photo_size: Tuple[int, int], size: Tuple[int, int]) -> torch.Tensor:
    """The box, given on a photo of ``photo_size = (H, W)``, as a mask at ``size = (h, w)``.

    Every working pixel that the box touches is inside (edges rounded outwards), so a box drawn
    tight around the object still contains all of it at the working resolution.

    Returns:
        ``(1, 1, h, w)`` bool.
    """
    x0, y0, x1, y1 = check_box(box, *photo_size)
    (big_h, big_w), (h, w) = photo_size, size
    left, right = max(0, math.floor(x0 * w / big_w)), min(w, math.ceil(x1 * w / big_w))
    top, bottom = max(0, math.floor(y0 * h / big_h)), min(h, math.ceil(y1 * h / big_h))
    mask = torch.zeros((1, 1, h, w), dtype=torch.bool)
    mask[..., top:bottom, left:right] = True
    return mask


def marks_at(
    foreground: Optional[np.ndarray], background: Optional[np.ndarray], size: Tuple[int, int]
) -> torch.Tensor:
    """Marked pixels given at the photo's resolution, brought to the working ``size = (h, w)``.

    A working pixel is marked when any photo pixel it covers is marked (area resampling), so
    a thin stroke survives the reduction; one touched by both marks is left free.

    Args:
        foreground, background: ``(H, W)`` bool (or None: nothing marked), the same shape.

    Returns:
        ``(1, 2, h, w)`` bool: channel 0 the foreground pins, channel 1 the background pins.
    """
    shapes = [np.shape(m) for m in (foreground, background) if m is not None]
    if not shapes:
        raise ValueError("marks_at needs a foreground or a background mask")
    shape = shapes[0]
    if len(shape) != 2 or any(other != shape for other in shapes):
        raise ValueError(f"foreground and background must be (H, W) masks of the same shape, got {shapes}")
    planes = [
        torch.zeros(shape, dtype=torch.float32) if m is None else torch.from_numpy(np.asarray(m, dtype=np.float32))
        for m in (foreground, background)
    ]
    covered = F.interpolate(torch.stack(planes).unsqueeze(0), size=size, mode="area") > 0
    both = covered[:, :1] & covered[:, 1:]
    return covered & ~both


def pin(masks: torch.Tensor, fixed: Optional[torch.Tensor]) -> torch.Tensor:
    """``masks`` with the marked pixels set: foreground pins to 1, background pins to 0.

    Args:
        masks: ``(B, 1, H, W)`` bool.
        fixed: ``(B, 2, H, W)`` bool (see :func:`marks_at`) or None (masks returned as they are).
    """
    if fixed is None:
        return masks
    return (masks | fixed[:, :1]) & ~fixed[:, 1:]


def pin_full(mask: np.ndarray, foreground: Optional[np.ndarray], background: Optional[np.ndarray]) -> np.ndarray:
    """The final ``(H, W)`` mask with the marks applied at the photo's own resolution.

    The working-resolution result is upsampled before this, so a marked pixel keeps its mark
    in the output whatever the upsampling did; a pixel marked both ways is left as computed.
    """
    out = np.asarray(mask, dtype=bool).copy()
    fg = np.zeros_like(out) if foreground is None else np.asarray(foreground, dtype=bool)
    bg = np.zeros_like(out) if background is None else np.asarray(background, dtype=bool)
    if fg.shape != out.shape or bg.shape != out.shape:
        raise ValueError(f"marks of shape {fg.shape}/{bg.shape} do not match the mask's {out.shape}")
    out[fg & ~bg] = True
    out[bg & ~fg] = False
    return out


def guidance_at(
    photo_size: Tuple[int, int],
    size: Tuple[int, int],
    box: Optional[Sequence[float]] = None,
    foreground: Optional[np.ndarray] = None,
    background: Optional[np.ndarray] = None,
) -> Tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """A photo's guidance at the working resolution, checked against the photo's size.

    Args:
        photo_size: ``(H, W)`` of the photo the guidance is drawn on.
        size: ``(h, w)`` working resolution.
        box: ``(x0, y0, x1, y1)`` in photo pixels, or None.
        foreground, background: ``(H, W)`` bool marks, or None.

    Returns:
        ``(init, fixed)``: the box as a ``(1, 1, h, w)`` initial mask (None without a box) and
        the ``(1, 2, h, w)`` pins of :func:`marks_at` (None without marks).

    Raises:
        ValueError: a box outside the photo, or marks not of the photo's shape.
    """
    init = None if box is None else box_mask(tuple(box), photo_size, size)  # type: ignore[arg-type]
    if foreground is None and background is None:
        return init, None
    for name, marks in (("foreground", foreground), ("background", background)):
        if marks is not None and np.shape(marks) != tuple(photo_size):
            raise ValueError(
                f"the {name} marks are {np.shape(marks)[::-1]} px but the photo is {photo_size[1]}x{photo_size[0]} px"
            )
    return init, marks_at(foreground, background, size)
