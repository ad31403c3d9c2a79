"""Using a trained network: loading it, predicting masks, and refining them with IEM (section 3.3)."""

from __future__ import annotations

import os
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from iem import IEMConfig, IEMResult, segment_batch
from iem.core.engine import resolve_device
from iem.segnet.checkpoint import CheckpointError, read_checkpoint
from iem.segnet.model import SegNet
from iem.segnet.shipped import resolve_model

PathLike = Union[str, os.PathLike]

#: A pixel is foreground when the network's probability exceeds this (the metrics' threshold).
THRESHOLD = 0.5
#: Images per forward pass in :func:`predict`.
DEFAULT_PREDICT_BATCH = 64


def load_model(path: PathLike, device: Union[str, torch.device] = "cpu") -> nn.Module:
    """Rebuild a trained :class:`SegNet` from a checkpoint written by ``iem train``, or a shipped one.

    Args:
        path: Checkpoint file (``.pt``), or the bare name of a network shipped with the package
            (``"flowers"``; see :func:`iem.segnet.shipped.shipped_models`).
        device: Where to put the model (``"auto"`` picks CUDA when present).

    Returns:
        The network in eval mode.

    Raises:
        CheckpointError: the file is missing, unreadable or not a SegNet checkpoint, or a bare
            name is not shipped (:class:`~iem.segnet.shipped.UnknownModelName`, listing the names).
    """
    path = resolve_model(path)
    state = read_checkpoint(path)
    try:
        model = SegNet(**state["hparams"])
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: damaged checkpoint ({first})") from None
    return model.to(resolve_device(device)).eval()


def _model_size(model: nn.Module) -> Optional[int]:
    size = getattr(model, "image_size", None)
    return int(size) if size is not None else None


def predict(model: nn.Module, images: torch.Tensor, batch_size: int = DEFAULT_PREDICT_BATCH) -> torch.Tensor:
    """Foreground probabilities of the network for a batch of images.

    Images whose size differs from the one the network was built for (128 px) are resized to
    it (bilinear, antialiased), and the logits are resized back (bilinear) before the sigmoid,
    so any size works; the paper protocol's 128x128 crops go through untouched.

    Args:
        model: A network from :func:`load_model` (or any module mapping images to logits).
        images: ``(B, 3, H, W)`` float in [-1, 1].
        batch_size: Images per forward pass.

    Returns:
        ``(B, 1, H, W)`` float32 probabilities on the CPU.
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"predict: expected (B, 3, H, W) images, got {getattr(images, 'shape', type(images))}")
    if batch_size < 1:
        raise ValueError(f"predict: batch_size must be >= 1, got {batch_size}")
    device = next(model.parameters()).device
    size = _model_size(model)
    height, width = images.shape[-2:]
    outputs = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size].to(device, torch.float32)
            resize = size is not None and (height, width) != (size, size)
            if resize:
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
            logits = model(x)
            if resize:
                logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
            outputs.append(torch.sigmoid(logits).float().cpu())
    if not outputs:
        return torch.empty(0, 1, height, width)
    return torch.cat(outputs)


def refine(
    model: nn.Module,
    images: torch.Tensor,
    config: Optional[IEMConfig] = None,
    device: Union[str, torch.device] = "auto",
    batch_size: int = DEFAULT_PREDICT_BATCH,
) -> IEMResult:
    """IEM started from the network's masks (the optional return to phase 1, section 3.3).

    The prediction thresholded at 0.5 replaces the initial squares; every other setting of
    ``config`` applies as usual.

    Args:
        model: Trained network.
        images: ``(B, 3, H, W)`` float in [-1, 1].
        config: IEM settings (the paper's by default; ``init_sizes`` is not used).
        device: Where IEM runs.
        batch_size: Images per forward pass of the network.

    Returns:
        :class:`iem.IEMResult` of the refined masks.
    """
    init = predict(model, images, batch_size=batch_size) > THRESHOLD
    return segment_batch(images, config=config, device=device, init_masks=init)
