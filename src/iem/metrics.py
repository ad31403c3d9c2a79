"""Accuracy, IoU and DICE of binary masks, in the paper's inverse-max convention or the strict one.

``"inverse_max"`` (ReDO's convention, used by the IEM paper's tables): each metric is computed
for the prediction and for its inverse against the ground truth, and the larger is kept, per
image and per metric. ``"strict"``: the prediction's polarity is taken as given (foreground = 1),
as most later papers report. Per-image values are averaged over images for a dataset figure.

Conventions for empty masks: IoU and DICE are 1 when prediction and ground truth are both
empty (nothing to find, nothing found), and 0 when only one is.
"""

from __future__ import annotations

from typing import Dict, Literal

import torch

Convention = Literal["inverse_max", "strict"]
CONVENTIONS = ("inverse_max", "strict")
METRICS = ("acc", "iou", "dice")


def _as_batch(masks: torch.Tensor) -> torch.Tensor:
    masks = torch.as_tensor(masks)
    if masks.dim() == 4:
        if masks.shape[1] != 1:
            raise ValueError(f"expected (B, 1, H, W) masks, got shape {tuple(masks.shape)}")
        masks = masks[:, 0]
    if masks.dim() == 2:
        masks = masks.unsqueeze(0)
    if masks.dim() != 3:
        raise ValueError(f"expected (B, H, W) or (B, 1, H, W) masks, got shape {tuple(masks.shape)}")
    return masks if masks.dtype == torch.bool else masks >= 0.5


def _strict(pred: torch.Tensor, gt: torch.Tensor) -> Dict[str, torch.Tensor]:
    inter = (pred & gt).flatten(1).sum(1).double()
    union = (pred | gt).flatten(1).sum(1).double()
    sizes = pred.flatten(1).sum(1).double() + gt.flatten(1).sum(1).double()
    pixels = pred.shape[1] * pred.shape[2]
    acc = (pred == gt).flatten(1).sum(1).double() / pixels
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))
    dice = torch.where(sizes > 0, 2 * inter / sizes.clamp_min(1), torch.ones_like(sizes))
    return {"acc": acc, "iou": iou, "dice": dice}


def binary_scores(pred: torch.Tensor, gt: torch.Tensor, convention: Convention = "inverse_max") -> Dict[str, torch.Tensor]:
    """Per-image accuracy, IoU and DICE.

    Args:
        pred: predicted masks, ``(B, H, W)`` or ``(B, 1, H, W)``, bool or values thresholded at 0.5.
        gt: ground truth of the same shape, foreground = 1.
        convention: ``"inverse_max"`` (the paper's tables) or ``"strict"``.

    Returns:
        ``{"acc", "iou", "dice"}``, each a ``(B,)`` float64 tensor of fractions in [0, 1].
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    pred, gt = _as_batch(pred), _as_batch(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from ground truth {tuple(gt.shape)}")
    scores = _strict(pred, gt)
    if convention == "inverse_max":
        inverse = _strict(~pred, gt)
        scores = {name: torch.maximum(scores[name], inverse[name]) for name in METRICS}
    return scores


def mean_scores(pred: torch.Tensor, gt: torch.Tensor, convention: Convention = "inverse_max") -> Dict[str, float]:
    """Dataset figures: the mean over images of :func:`binary_scores`.

    Raises:
        ValueError: no image (a mean over nothing has no value), or mismatched shapes.
    """
    if _as_batch(pred).shape[0] == 0:
        raise ValueError("mean_scores needs at least one mask: the batch is empty")
    return {name: float(value.mean()) for name, value in binary_scores(pred, gt, convention).items()}
