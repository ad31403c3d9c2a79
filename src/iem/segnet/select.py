"""Choosing the pseudo-labels: the IEM masks with the highest inpainting error (section 3.3).

The paper deems the masks whose final inpainting error is highest "the most successful" and
keeps 8,000 of them as labels for the segmentation network (section 4.2).
"""

from __future__ import annotations

import math
from typing import Optional

import torch


def select_top(
    scores: torch.Tensor,
    top_k: Optional[int] = None,
    top_fraction: Optional[float] = None,
    masks: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Indices of the pseudo-labels to keep, best (highest inpainting error) first.

    Exactly one of ``top_k`` and ``top_fraction`` must be given. Candidates whose score is not
    finite (an image IEM could not segment) are never kept; when ``masks`` is given, masks that
    are empty or cover the whole image are dropped too, because they teach the network nothing
    about a boundary. ``top_fraction`` is taken of the remaining candidates and rounded to the
    nearest count, at least 1; ``top_k`` larger than the number of candidates keeps them all.
    Ties keep the lower index first, so the choice is reproducible.

    Args:
        scores: ``(N,)`` final inpainting errors (``IEMResult.scores``).
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
