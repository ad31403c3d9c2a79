"""The inpainter psi_K of the paper's Eq. 6 and the protocol a replacement must follow.

``psi_K(Y, W) = (K * Y) / (K * W)``: a pixel is predicted as the Gaussian-weighted average of
the source pixels ``W`` around it. Like the released code, each filtered channel gets
``epsilon * sum(unfiltered channel)`` added, which keeps the ratio finite (and close to the
region's mean colour) where no source pixel lies within the filter's reach.

The one case that still divides by zero is an empty source region (``W`` all zero, so the
numerator is zero too). It is defined here as a prediction of 0 with no gradient through the
denominator: nothing can be inpainted from nothing, and the result stays finite.
"""

from __future__ import annotations

from typing import Callable, Protocol, Tuple

import torch

from iem.core.filters import LinearFilter


class Inpainter(Protocol):
    """Any differentiable map ``(masked_images (B,C,H,W), masks (B,1,H,W)) -> predictions (B,C,H,W)``.

    ``masked_images`` is ``X * W`` and ``masks`` is the float source region ``W``; the result is
    the prediction of every pixel from that region. The paper's Table 6 studies learned ones.
    """

    def __call__(self, masked_images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor: ...


def psi_terms(
    masked_images: torch.Tensor, masks: torch.Tensor, filt: LinearFilter, epsilon: float
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Numerator and denominator of Eq. 6, with the epsilon terms of the released code.

    Args:
        masked_images: ``(B, C, H, W)``, the image times the source region.
        masks: ``(B, 1, H, W)`` float source region.
        filt: the filter K for this image size.
        epsilon: weight of the per-channel pixel sums added after filtering.

    Returns:
        ``(numerator (B, C, H, W), denominator (B, 1, H, W))``.
    """
    stacked = torch.cat((masked_images, masks), dim=1)
    filtered = filt(stacked) + epsilon * stacked.sum(dim=(2, 3), keepdim=True)
    return filtered[:, :-1], filtered[:, -1:]


def safe_ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """``numerator / denominator`` where the denominator is positive, 0 elsewhere (empty source)."""
    positive = denominator > 0
    return torch.where(positive, numerator / torch.where(positive, denominator, torch.ones_like(denominator)), 0.0)


def psi(masked_images: torch.Tensor, masks: torch.Tensor, filt: LinearFilter, epsilon: float) -> torch.Tensor:
    """The Gaussian inpainter psi_K (Eq. 6): ``(B, C, H, W)`` predictions from the region ``masks``."""
    return safe_ratio(*psi_terms(masked_images, masks, filt, epsilon))


def gaussian_inpainter(filt: LinearFilter, epsilon: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """psi_K bound to one filter, as an :class:`Inpainter`."""

    def inpainter(masked_images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        return psi(masked_images, masks, filt, epsilon)

    return inpainter


def inpaint_from_other_region(images: torch.Tensor, masks: torch.Tensor, inpainter: Inpainter) -> torch.Tensor:
    """Every pixel predicted from the region it does not belong to (the figures' inpainting column).

    Args:
        images: ``(B, C, H, W)`` float.
        masks: ``(B, 1, H, W)`` bool or 0/1 float foreground.
    """
    fg = masks.to(images.dtype)
    bg = 1 - fg
    from_background = inpainter(images * bg, bg)
    from_foreground = inpainter(images * fg, fg)
    return torch.where(fg > 0.5, from_background, from_foreground)
