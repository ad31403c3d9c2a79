"""The IEM objective (paper Eq. 7, its Table 5 variants, the diversity term of Eq. 10) and its gradient.

Notation, per image: ``X`` the image ``(C, H, W)``, ``M`` the foreground mask, ``Mb = 1 - M``,
``P_F = psi_K(X * Mb, Mb)`` the foreground predicted from the background and
``P_B = psi_K(X * M, M)`` the background predicted from the foreground.

``L_inp = num(M, X - P_F) / den(M) + num(Mb, X - P_B) / den(Mb)``    (Eq. 7)

with, by default, ``num(R, E) = sum_p R_p mean_c |E|`` and ``den(R) = |R|``. The regularised
objective the mask ascends is ``L = L_inp - lambda * div`` with ``div`` of Eq. 10.

Two implementations exist. :func:`objective` is a plain differentiable expression, used with
autograd for the Table 5 variants and for user-supplied inpainters, and as the oracle in the
tests. :func:`objective_gradient` is the production path for Eq. 7 with psi_K: the gradient in
closed form, which costs one forward and one adjoint filtering of ``C + 1`` channels per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from iem.config import IEMConfig
from iem.core.filters import LinearFilter
from iem.core.inpaint import Inpainter, psi_terms, safe_ratio

#: Floor of every normaliser; it only acts when a region is empty (its numerator is then 0).
NORMALIZER_FLOOR = 1e-6
#: Floor under the square root of the L2 variant, whose derivative is infinite at 0.
SQRT_FLOOR = 1e-12


def region_numerator(errors: torch.Tensor, region: torch.Tensor, norm: str) -> torch.Tensor:
    """Inpainting error inside a region: ``sum_p R_p mean_c |E|`` (l1) or its L2 analogue.

    Args:
        errors: ``(B, C, H, W)`` residuals ``X - prediction``.
        region: ``(B, 1, H, W)`` float region ``R``.
        norm: ``"l1"`` (Eq. 7) or ``"l2"`` (Table 5, assumption 1:
            ``sqrt(sum_p R_p mean_c E^2)``).

    Returns:
        ``(B,)`` tensor.
    """
    if norm == "l1":
        return (region * errors.abs().mean(dim=1, keepdim=True)).sum(dim=(1, 2, 3))
    squared = (region * errors.square().mean(dim=1, keepdim=True)).sum(dim=(1, 2, 3))
    return torch.sqrt(squared.clamp_min(SQRT_FLOOR))


def region_normalizer(images: torch.Tensor, region: torch.Tensor, config: IEMConfig) -> torch.Tensor:
    """Denominator of a term of Eq. 7: the region size ``|R|``, or the region's marginal norm.

    ``"marginal"`` uses ``region_numerator(X, R)`` in the configured norm, i.e. ``||X * R||``
    (Table 5, assumptions 2 and 3). Floored at :data:`NORMALIZER_FLOOR`.
    """
    if config.normalizer == "size":
        value = region.sum(dim=(1, 2, 3))
    else:
        value = region_numerator(images, region, config.numerator_norm)
    return value.clamp_min(NORMALIZER_FLOOR)


def inpainting_error(
    images: torch.Tensor, masks: torch.Tensor, inpainter: Inpainter, config: IEMConfig
) -> torch.Tensor:
    """``L_inp`` of Eq. 7 (or a Table 5 variant), differentiable in ``masks``.

    Args:
        images: ``(B, C, H, W)`` float.
        masks: ``(B, 1, H, W)`` float foreground ``M`` (binary in IEM, any value here).
        inpainter: psi, e.g. :func:`iem.core.inpaint.gaussian_inpainter`.
        config: selects the numerator norm and the normaliser.

    Returns:
        ``(B,)`` tensor: foreground term plus background term.
    """
    background = 1 - masks
    pred_foreground = inpainter(images * background, background)
    pred_background = inpainter(images * masks, masks)
    norm = config.numerator_norm
    fg_term = region_numerator(images - pred_foreground, masks, norm) / region_normalizer(images, masks, config)
    bg_term = region_numerator(images - pred_background, background, norm) / region_normalizer(
        images, background, config
    )
    return fg_term + bg_term


def region_mean(images: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Per-channel mean colour ``mu`` of a region, ``(B, C, 1, 1)``; 0 for an empty region."""
    size = region.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
    return (images * region).sum(dim=(2, 3), keepdim=True) / size


def diversity(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Eq. 10: ``sum_{c,p} M (X - mu_F)^2 + sum_{c,p} Mb (X - mu_B)^2``, shape ``(B,)``."""
    background = 1 - masks
    fg = (masks * (images - region_mean(images, masks)).square()).sum(dim=(1, 2, 3))
    bg = (background * (images - region_mean(images, background)).square()).sum(dim=(1, 2, 3))
    return fg + bg


def objective(images: torch.Tensor, masks: torch.Tensor, inpainter: Inpainter, config: IEMConfig) -> torch.Tensor:
    """The regularised objective ``L = L_inp - lambda * div`` (section 3.2), shape ``(B,)``."""
    return inpainting_error(images, masks, inpainter, config) - config.lambda_ * diversity(images, masks)


def objective_gradient_autograd(
    images: torch.Tensor, masks: torch.Tensor, inpainter: Inpainter, config: IEMConfig
) -> torch.Tensor:
    """``dL/dM`` at ``masks`` by automatic differentiation, ``(B, 1, H, W)``.

    Images are independent, so the gradient of the summed objective is each image's own.
    """
    with torch.enable_grad():
        m = masks.detach().to(images.dtype).requires_grad_(True)
        (grad,) = torch.autograd.grad(objective(images, m, inpainter, config).sum(), m)
    return grad


@dataclass(frozen=True)
class ImageConstants:
    """What the closed-form gradient reuses at every step for a batch of images.

    ``filtered_images`` is ``K(X)`` and ``filtered_ones`` is ``K(1)``: by linearity of K, the
    background terms are ``K(X * Mb) = K(X) - K(X * M)`` and ``K(Mb) = K(1) - K(M)``.
    """

    images: torch.Tensor  # (B, C, H, W)
    filtered_images: torch.Tensor  # (B, C, H, W)
    image_sums: torch.Tensor  # (B, C, 1, 1)
    filtered_ones: torch.Tensor  # (1, 1, H, W)

    @classmethod
    def compute(cls, images: torch.Tensor, filt: LinearFilter) -> "ImageConstants":
        ones = images.new_ones((1, 1) + images.shape[2:])
        return cls(images, filt(images), images.sum(dim=(2, 3), keepdim=True), filt(ones))

    def select(self, index: torch.Tensor) -> "ImageConstants":
        """The constants of a subset of the batch."""
        return ImageConstants(self.images[index], self.filtered_images[index], self.image_sums[index], self.filtered_ones)


def objective_gradient(
    masks: torch.Tensor, constants: ImageConstants, filt: LinearFilter, config: IEMConfig
) -> torch.Tensor:
    """Closed-form ``dL/dM`` of Eq. 7 with psi_K and the diversity term, ``(B, 1, H, W)``.

    Agrees with :func:`objective_gradient_autograd` (same guards for empty regions) up to
    float rounding. Writing ``P = N / D`` for each prediction, the chain rule through
    ``N = K(X * R) + eps * sum(X * R)`` and ``D = K(R) + eps * sum(R)`` needs only the adjoint
    ``K^T``; the two predictions' contributions are combined before filtering, so a step costs
    one forward and one adjoint filtering of ``C + 1`` channels.

    Args:
        masks: ``(B, 1, H, W)`` float 0/1 foreground.
        constants: :class:`ImageConstants` of the same images.
        filt: the filter K.
        config: supplies ``epsilon`` and ``lambda_`` (L1 numerator, size normaliser).
    """
    x = constants.images
    channels = x.shape[1]
    eps = config.epsilon
    pixels = masks.shape[2] * masks.shape[3]

    num_b, den_b = psi_terms(x * masks, masks, filt, eps)
    # K(X * Mb) + eps * sum(X * Mb) = [K(X) + eps * sum(X)] - [K(X * M) + eps * sum(X * M)].
    num_f = constants.filtered_images + eps * constants.image_sums - num_b
    den_f = constants.filtered_ones + eps * pixels - den_b
    mask_size = masks.sum(dim=(2, 3), keepdim=True)
    pred_f = safe_ratio(num_f, den_f)
    pred_b = safe_ratio(num_b, den_b)

    background = 1 - masks
    size_f = mask_size.clamp_min(NORMALIZER_FLOOR)
    size_b = (pixels - mask_size).clamp_min(NORMALIZER_FLOOR)
    err_f = (x - pred_f).abs().mean(dim=1, keepdim=True)
    err_b = (x - pred_b).abs().mean(dim=1, keepdim=True)
    total_f = (masks * err_f).sum(dim=(2, 3), keepdim=True)
    total_b = (background * err_b).sum(dim=(2, 3), keepdim=True)

    # Direct dependence on M through the region weights and the normalisers.
    grad = err_f / size_f - err_b / size_b
    grad = grad - total_f / size_f.square() * (mask_size > NORMALIZER_FLOOR)
    grad = grad + total_b / size_b.square() * ((pixels - mask_size) > NORMALIZER_FLOOR)

    # Upstream gradients at the predictions, d term / d P, scaled by the normalisers.
    up_f = masks * torch.sign(pred_f - x) / (channels * size_f)
    up_b = background * torch.sign(pred_b - x) / (channels * size_b)
    # Through P = N / D: dP/dN = 1/D, dP/dD = -P/D (zero where D = 0, as in safe_ratio).
    inv_f = safe_ratio(torch.ones_like(den_f), den_f)
    inv_b = safe_ratio(torch.ones_like(den_b), den_b)
    # The foreground prediction depends on -M through both N and D, the background one on +M.
    a = up_b * inv_b - up_f * inv_f
    b = -(up_b * pred_b).sum(dim=1, keepdim=True) * inv_b + (up_f * pred_f).sum(dim=1, keepdim=True) * inv_f
    ab = torch.cat((a, b), dim=1)
    back = filt.adjoint(ab) + eps * ab.sum(dim=(2, 3), keepdim=True)
    grad = grad + (x * back[:, :-1]).sum(dim=1, keepdim=True) + back[:, -1:]

    if config.lambda_:
        # The mean's own derivative cancels (the region's deviations sum to zero), leaving
        # d div / dM_p = |X_p - mu_F|^2 - |X_p - mu_B|^2.
        dev_f = (x - region_mean(x, masks)).square().sum(dim=1, keepdim=True)
        dev_b = (x - region_mean(x, background)).square().sum(dim=1, keepdim=True)
        grad = grad - config.lambda_ * (dev_f - dev_b)
    return grad


def final_inpainting_error(
    masks: torch.Tensor, constants: ImageConstants, filt: LinearFilter, config: IEMConfig
) -> torch.Tensor:
    """``L_inp`` of Eq. 7 for binary ``masks`` with psi_K, shape ``(B,)``: the selection score."""
    from iem.core.inpaint import gaussian_inpainter

    return inpainting_error(constants.images, masks, gaussian_inpainter(filt, config.epsilon), config)
