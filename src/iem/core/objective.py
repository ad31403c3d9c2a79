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
from typing import Tuple

import torch

from iem.config import IEMConfig
from iem.core.filters import LinearFilter
from iem.core.inpaint import Inpainter

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

    By linearity of K, the background's psi_K terms follow from the foreground's and these:
    ``K(X * Mb) + eps * sum(X * Mb) = whole_numerator - [K(X * M) + eps * sum(X * M)]`` and
    ``K(Mb) + eps * sum(Mb) = whole_denominator - [K(M) + eps * sum(M)]``.
    """

    images: torch.Tensor  # (B, C, H, W)
    image_sums: torch.Tensor  # (B, C, 1, 1)
    whole_numerator: torch.Tensor  # (B, C, H, W): K(X) + eps * sum(X)
    whole_denominator: torch.Tensor  # (1, 1, H, W): K(1) + eps * H * W

    @classmethod
    def compute(cls, images: torch.Tensor, filt: LinearFilter, epsilon: float) -> "ImageConstants":
        ones = images.new_ones((1, 1) + images.shape[2:])
        sums = images.sum(dim=(2, 3), keepdim=True)
        return cls(images, sums, filt(images) + epsilon * sums, filt(ones) + epsilon * ones.sum())

    def select(self, index: torch.Tensor) -> "ImageConstants":
        """The constants of a subset of the batch."""
        return ImageConstants(
            self.images[index], self.image_sums[index], self.whole_numerator[index], self.whole_denominator
        )


def _reciprocal_or_zero(values: torch.Tensor) -> torch.Tensor:
    # Zero where the source region is empty, as in ``iem.core.inpaint.safe_ratio``.
    return torch.where(values > 0, values.reciprocal(), 0.0)


def pixelwise_terms(
    x: torch.Tensor,
    whole_numerator: torch.Tensor,
    whole_denominator: torch.Tensor,
    terms: torch.Tensor,
    masks: torch.Tensor,
    size_f: torch.Tensor,
    size_b: torch.Tensor,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The pixel-wise part of :func:`objective_gradient`, between the two filterings.

    Args:
        x: ``(B, C, H, W)`` images.
        whole_numerator, whole_denominator: from :class:`ImageConstants`.
        terms: ``(B, C + 1, H, W)``, psi_K's numerator and denominator for the foreground as
            source, ``K(X * M) + eps * sum(X * M)`` and ``K(M) + eps * sum(M)``.
        masks: ``(B, 1, H, W)`` bool foreground.
        size_f, size_b: ``(B, 1, 1, 1)`` floored region sizes.

    Returns:
        ``direct`` ``(B, 1, H, W)``: ``e_F / |M| - e_B / |Mb|``, the derivative through the
        region weights, with ``e`` the channel-mean absolute residual of each prediction;
        ``total_f``, ``total_b`` ``(B, 1, 1, 1)``: ``e_F`` summed over ``M`` and ``e_B`` over
        ``Mb``; ``upstream`` ``(B, C + 1, H, W)``: the gradient at psi_K's numerators (first
        ``C`` channels) and denominator (last), to be sent back through ``K^T``.
    """
    channels = x.shape[1]
    num_b, den_b = terms[:, :channels], terms[:, channels:]
    inv_b = _reciprocal_or_zero(den_b)
    inv_f = _reciprocal_or_zero(whole_denominator - den_b)
    res_f = x - (whole_numerator - num_b) * inv_f  # X - P_F
    res_b = x - num_b * inv_b  # X - P_B
    err_f = res_f.abs().mean(dim=1, keepdim=True)
    err_b = res_b.abs().mean(dim=1, keepdim=True)
    direct = err_f / size_f - err_b / size_b
    total_f = (masks * err_f).sum(dim=(2, 3), keepdim=True)
    total_b = (~masks * err_b).sum(dim=(2, 3), keepdim=True)
    # At the numerators: sign(X - P) / (C |R| D), with the sign of the term; the foreground
    # term's lives on M and the background term's on Mb, so they share one tensor.
    weight = torch.where(masks, inv_f / (channels * size_f), -inv_b / (channels * size_b))
    selected = torch.where(masks, res_f, res_b)
    upstream_num = torch.sign(selected).mul_(weight)
    # At the denominators: -sum_c upstream_num * P, with P = X - residual.
    upstream_den = (upstream_num * selected.sub_(x)).sum(dim=1, keepdim=True)
    return direct, total_f, total_b, torch.cat((upstream_num, upstream_den), dim=1)


def combine_terms(
    x: torch.Tensor, back: torch.Tensor, direct: torch.Tensor, offset: torch.Tensor, coef: torch.Tensor
) -> torch.Tensor:
    """The gradient from its parts: ``direct + offset + sum_c X_c (back_c - coef_c) + back_C``.

    Args:
        x: ``(B, C, H, W)`` images; back: ``(B, C + 1, H, W)`` upstream gradient after ``K^T``;
        direct: ``(B, 1, H, W)``; offset: ``(B, 1, 1, 1)``; coef: ``(B, C, 1, 1)``.
    """
    channels = x.shape[1]
    return direct + offset + (x * (back[:, :channels] - coef)).sum(dim=1, keepdim=True) + back[:, channels:]


def objective_gradient(
    masks: torch.Tensor, constants: ImageConstants, filt: LinearFilter, config: IEMConfig
) -> torch.Tensor:
    """Closed-form ``dL/dM`` of Eq. 7 with psi_K and the diversity term (Eq. 10), ``(B, 1, H, W)``.

    Agrees with :func:`objective_gradient_autograd` (same guards for empty regions) up to
    float rounding. With ``P = N / D`` for each prediction, the chain rule through
    ``N = K(X * R) + eps * sum(X * R)`` and ``D = K(R) + eps * sum(R)`` needs only ``K^T``,
    and a step costs one forward and one adjoint filtering of ``C + 1`` channels.

    Args:
        masks: ``(B, 1, H, W)`` bool foreground.
        constants: :class:`ImageConstants` of the same images.
        filt: the filter K.
        config: supplies ``epsilon`` and ``lambda_`` (L1 numerator, size normaliser).
    """
    x = constants.images
    channels = x.shape[1]
    eps, lam = config.epsilon, config.lambda_
    pixels = masks.shape[2] * masks.shape[3]

    stacked = torch.cat((x * masks, masks.to(x.dtype)), dim=1)
    sums = stacked.sum(dim=(2, 3), keepdim=True)
    terms = filt(stacked).add_(sums, alpha=eps)
    size = sums[:, channels:]
    size_f = size.clamp_min(NORMALIZER_FLOOR)
    size_b = (pixels - size).clamp_min(NORMALIZER_FLOOR)
    direct, total_f, total_b, upstream = pixelwise_terms(
        x, constants.whole_numerator, constants.whole_denominator, terms, masks, size_f, size_b
    )
    back = filt.adjoint(upstream).add_(upstream.sum(dim=(2, 3), keepdim=True), alpha=eps)

    # The normalisers' derivative, where the region is non-empty: a constant per image.
    offset = total_b / size_b.square() * (pixels - size > NORMALIZER_FLOOR) - total_f / size_f.square() * (
        size > NORMALIZER_FLOOR
    )
    coef = torch.zeros_like(sums[:, :channels])
    if lam:
        # d div / dM_p = sum_c (X_p - mu_F)^2 - (X_p - mu_B)^2 (the means' own derivatives
        # cancel): linear in X_p, so it folds into the per-channel weights of X.
        mu_f = sums[:, :channels] / size.clamp_min(1.0)
        mu_b = (constants.image_sums - sums[:, :channels]) / (pixels - size).clamp_min(1.0)
        coef = 2 * lam * (mu_b - mu_f)
        offset = offset - lam * (mu_f.square() - mu_b.square()).sum(dim=1, keepdim=True)
    return combine_terms(x, back, direct, offset, coef)
