"""Evaluation protocols: how a decoded image and its ground truth become tensors.

The paper protocol (section 4.2 of the paper, docs/reference.md, "Data protocol") is the one of ReDO and
of the authors' released code, which built it from torchvision's ``Resize(128, NEAREST)`` and
``CenterCrop(128)``. It is reproduced here with PIL alone, rule for rule:

* the shorter side becomes 128 px and the longer side ``int(128 * long / short)`` (truncated),
  with nearest-neighbour sampling for the image and the mask alike
  (:func:`iem.imaging.resize_shorter`);
* a 128 x 128 crop is cut at offset ``round((side - 128) / 2)`` on each axis (Python's ``round``,
  which rounds halves to even, like torchvision);
* image values ``x`` in 0..255 become ``2 * x / 255 - 1``; masks stay boolean (foreground True).

The full-resolution protocol keeps every pixel: it is how a user would evaluate masks at the
size of the photograph.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
from PIL import Image

from iem import imaging

#: Side of the square working image of the paper protocol.
PAPER_SIZE = 128

#: Names accepted wherever a protocol is chosen.
PROTOCOLS = ("paper", "full")


def crop_offset(side: int, size: int) -> int:
    """Offset of a centered crop of ``size`` along an axis of ``side`` pixels: ``round((side - size) / 2)``."""
    return int(round((side - size) / 2.0))


def resize_shorter_nearest(image: Image.Image, size: int) -> Image.Image:
    """Nearest-neighbour resize of ``image`` so that its shorter side is ``size`` (longer side truncated)."""
    return imaging.resize_shorter(image, size, Image.NEAREST)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """Centered ``size`` x ``size`` crop at offsets ``round((side - size) / 2)``.

    Raises:
        ValueError: the image is smaller than the crop on some axis.
    """
    if image.width < size or image.height < size:
        raise ValueError(f"cannot crop {size}x{size} from a {image.width}x{image.height} image")
    return imaging.center_crop(image, size)


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 tensor (3, H, W) with values ``2 * x / 255 - 1`` in [-1, 1]."""
    return imaging.to_tensor(image.convert("RGB"))


def tensor_to_uint8(image: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`image_to_tensor`: (3, H, W) in [-1, 1] -> (H, W, 3) uint8."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) tensor, got shape {tuple(image.shape)}")
    return imaging.to_uint8(image)


def apply_protocol(image: Image.Image, mask: np.ndarray, protocol: str = "paper") -> Tuple[torch.Tensor, torch.Tensor]:
    """Turn a decoded RGB image and its boolean ground truth into the tensors a benchmark uses.

    Args:
        image: RGB PIL image.
        mask: Boolean array (H', W'), foreground True. Under the paper protocol it is resized
            like the image (nearest), independently, as the paper's loaders do; under the full
            protocol a mask whose size differs from the image's is resized (nearest) to it.
        protocol: ``"paper"`` (128 x 128, see the module docstring) or ``"full"``.

    Returns:
        ``(image, mask)``: float32 (3, H, W) in [-1, 1] and bool (H, W).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    mask_image = Image.fromarray(np.asarray(mask, dtype=bool).astype(np.uint8) * 255, mode="L")
    if protocol == "paper":
        image = center_crop(resize_shorter_nearest(image, PAPER_SIZE), PAPER_SIZE)
        mask_image = center_crop(resize_shorter_nearest(mask_image, PAPER_SIZE), PAPER_SIZE)
    elif mask_image.size != image.size:
        mask_image = mask_image.resize(image.size, Image.NEAREST)
    mask_tensor = torch.from_numpy(np.asarray(mask_image) > 0)
    return image_to_tensor(image), mask_tensor
