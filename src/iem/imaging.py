"""Conversions between images and the tensors IEM works on (``(3, H, W)`` float in [-1, 1])."""

from __future__ import annotations

from typing import Union

import numpy as np
import torch
from PIL import Image

ImageLike = Union[Image.Image, np.ndarray]

#: 8-bit code values map linearly onto [-1, 1] (docs/reference.md, "Data protocol": ``2 * x / 255 - 1``).
_MAX_CODE = 255.0


def to_tensor(image: ImageLike) -> torch.Tensor:
    """An RGB image as a ``(3, H, W)`` float32 tensor in [-1, 1].

    Args:
        image: PIL image (converted to RGB) or ``(H, W, 3)`` uint8 array.
    """
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got shape {array.shape} and dtype {array.dtype}")
    return torch.from_numpy(array.astype(np.float32)).permute(2, 0, 1) * (2.0 / _MAX_CODE) - 1.0


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`to_tensor`: ``(3, H, W)`` in [-1, 1] to an ``(H, W, 3)`` uint8 array."""
    array = ((images.detach().float().cpu().clamp(-1, 1) + 1.0) * (_MAX_CODE / 2)).round()
    return array.permute(1, 2, 0).to(torch.uint8).numpy()


def working_size(height: int, width: int, size: int) -> tuple[int, int]:
    """``(h, w)`` with the shorter side equal to ``size`` and the aspect ratio kept.

    The longer side is truncated, not rounded, as torchvision's ``Resize`` does: the paper's
    numbers rest on that rule (it moves the center crop by a pixel on some images).
    """
    if height <= width:
        return size, max(1, int(size * width / height))
    return max(1, int(size * height / width)), size


def resize_shorter(image: Image.Image, size: int, resample: int = Image.BILINEAR) -> Image.Image:
    """Resize so that the shorter side is ``size`` pixels, keeping the aspect ratio."""
    h, w = working_size(image.height, image.width, size)
    return image.resize((w, h), resample)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """The centered ``size x size`` crop, offsets ``round((side - size) / 2)`` (docs/reference.md, "Data protocol")."""
    top = int(round((image.height - size) / 2))
    left = int(round((image.width - size) / 2))
    return image.crop((left, top, left + size, top + size))
