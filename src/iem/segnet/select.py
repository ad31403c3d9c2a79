"""Choosing the pseudo-labels: the IEM masks ranked most trustworthy (section 3.3).

The paper deems the masks whose final inpainting error is highest "the most successful" and
keeps 8,000 of them as labels for the segmentation network (section 4.2). Beyond the paper,
the masks can instead be ranked by how well they agree with an independent segmentation of the
same image, OpenCV's GrabCut started from the box inside the border (:func:`box_agreement`):
on Flowers-17 that ranking's top 80 % are far closer to the ground truth than the top 80 % by
inpainting error (docs/phase2.md).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from iem import metrics

#: How the pseudo-labels are ranked: the paper's final inpainting error, or :func:`box_agreement`.
SELECTIONS = ("error", "agreement")
#: Images cut by GrabCut between two progress reports of :func:`box_agreement`.
AGREEMENT_CHUNK = 256


def box_agreement(
    images: torch.Tensor,
    masks: torch.Tensor,
    iterations: int,
    border: int,
    progress: Optional[Callable[[int], None]] = None,
) -> torch.Tensor:
    """IoU of each mask with OpenCV's GrabCut started from the box inside the border.

    A mask that another method, started from nothing but the image, nearly reproduces is
    unlikely to be one of IEM's failures; the IoU ranks the pseudo-labels by that agreement
    (beyond the paper, which ranks by the inpainting error). GrabCut is run as in
    :func:`iem.core.refine.grabcut_refine` from an all-foreground start: every pixel probable
    foreground except the certain-background ring.

    Args:
        images: ``(N, 3, H, W)`` float in [-1, 1].
        masks: ``(N, 1, H, W)`` bool, the pseudo-labels.
        iterations: GrabCut iterations (``IEMConfig.grabcut_iterations``).
        border: ring width at 128 px (``IEMConfig.grabcut_border``).
        progress: Optional callable receiving the number of images done after each chunk.

    Returns:
        ``(N,)`` float64 IoU in [0, 1] (1 where both the mask and the cut are empty).
    """
    from iem.core.refine import grabcut_refine

    out = torch.empty(images.shape[0], dtype=torch.float64)
    for start in range(0, images.shape[0], AGREEMENT_CHUNK):
        part = slice(start, start + AGREEMENT_CHUNK)
        boxes = torch.ones_like(masks[part], dtype=torch.bool)
        cuts = grabcut_refine(
            images[part], boxes, iterations, border,
            box_union=False, box_rule="union", reject_empty=False, energy_space="rgb",
        )
        out[part] = metrics.binary_scores(cuts, masks[part], convention="strict")["iou"]
        if progress is not None:
            progress(cuts.shape[0])
    return out


def select_top(
    scores: torch.Tensor,
    top_k: Optional[int] = None,
    top_fraction: Optional[float] = None,
    masks: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Indices of the pseudo-labels to keep, best (highest score) first.

    Exactly one of ``top_k`` and ``top_fraction`` must be given. Candidates whose score is not
    finite (an image IEM could not segment) are never kept; when ``masks`` is given, masks that
    are empty or cover the whole image are dropped too, because they teach the network nothing
    about a boundary. ``top_fraction`` is taken of the remaining candidates and rounded to the
    nearest count, at least 1; ``top_k`` larger than the number of candidates keeps them all.
    Ties keep the lower index first, so the choice is reproducible.

    Args:
        scores: ``(N,)`` ranking, highest best: the final inpainting errors
            (``IEMResult.scores``) or :func:`box_agreement`.
        top_k: Number of masks to keep (the paper: 8,000).
        top_fraction: Share of the candidates to keep, in (0, 1].
        masks: Optional ``(N, 1, H, W)`` or ``(N, H, W)`` binary masks matching ``scores``.

    Returns:
        ``(K,)`` long tensor of indices into ``scores``, sorted by decreasing score.

    Raises:
        ValueError: both or neither of ``top_k`` / ``top_fraction``, or an out-of-range value,
            or ``masks`` whose length differs from ``scores``.
    """
    if (top_k is None) == (top_fraction is None):
        raise ValueError("select_top: give exactly one of top_k and top_fraction")
    if top_k is not None and (isinstance(top_k, bool) or int(top_k) != top_k or top_k < 1):
        raise ValueError(f"select_top: top_k must be an integer >= 1, got {top_k!r}")
    if top_fraction is not None and not (0.0 < float(top_fraction) <= 1.0):
        raise ValueError(f"select_top: top_fraction must be in (0, 1], got {top_fraction!r}")
    scores = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    valid = torch.isfinite(scores)
    if masks is not None:
        flat = torch.as_tensor(masks).reshape(len(masks), -1).bool()
        if flat.shape[0] != scores.shape[0]:
            raise ValueError(f"select_top: {flat.shape[0]} masks for {scores.shape[0]} scores")
        valid &= flat.any(dim=1) & ~flat.all(dim=1)
    candidates = torch.nonzero(valid).reshape(-1)
    if candidates.numel() == 0:
        return candidates
    if top_k is not None:
        keep = min(int(top_k), candidates.numel())
    else:
        # Round half up (not Python's banker's rounding) so that e.g. 0.5 of 5 keeps 3.
        keep = max(1, int(math.floor(float(top_fraction) * candidates.numel() + 0.5)))
    # Stable descending sort: equal scores keep their original order.
    order = torch.sort(scores[candidates], descending=True, stable=True).indices
    return candidates[order[:keep]]
