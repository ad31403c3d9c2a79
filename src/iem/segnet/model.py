"""The phase-2 segmentation network: ReDO's mask generator with instance normalisation.

Section 4.2 of the paper trains "a variant of PSPNet" following ReDO: a resolution-decreasing
stem, three resolution-preserving residual blocks, pyramid pooling, and a small decoder, with
every batch norm replaced by instance norm. At 128 px the network has about 275 k parameters
and outputs one logit per pixel (foreground = positive).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

#: Side of the images the network is trained and evaluated at (paper protocol, section 4.2).
DEFAULT_IMAGE_SIZE = 128
#: Channels of the residual trunk ("nf" of ReDO); the stem ramps 3 -> nf/4 -> nf/2 -> nf.
DEFAULT_WIDTH = 64
#: Number of resolution-preserving residual blocks (section 4.2: "three").
DEFAULT_RESIDUAL_BLOCKS = 3
#: The stem halves the resolution twice, so the trunk works at 1/4 of the input side.
DOWNSAMPLING = 4
#: Pyramid pooling windows as divisors of the trunk's side: 32, 16, 10 and 5 px at 128 px input.
PYRAMID_DIVISORS = (1, 2, 3, 6)
#: Kernel of the first and last convolutions, with reflection padding of half its size.
WIDE_KERNEL = 7


def _norm(channels: int) -> nn.InstanceNorm2d:
    # Instance norm with a learnt scale and shift replaces ReDO's batch norm (section 4.2).
    return nn.InstanceNorm2d(channels, affine=True)


class ResidualBlock(nn.Module):
    """3x3 conv, IN, ReLU, 3x3 conv, add the input, then IN and ReLU after the sum."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # No bias before a normalisation layer: the norm's shift would cancel it anyway.
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm1 = _norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm2 = _norm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(x + self.conv2(y)))


class PyramidPooling(nn.Module):
    """Average-pool the features at several scales, reduce each to one channel, upsample back.

    The pooled maps are concatenated after the input features, so ``channels`` in gives
    ``channels + len(windows)`` out.
    """

    def __init__(self, channels: int, windows: Tuple[int, ...]) -> None:
        super().__init__()
        self.windows = tuple(int(w) for w in windows)
        self.reduce = nn.ModuleList(nn.Conv2d(channels, 1, 1) for _ in self.windows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        levels = [x]
        for window, conv in zip(self.windows, self.reduce):
            pooled = F.avg_pool2d(x, kernel_size=window, stride=window)
            levels.append(F.interpolate(conv(pooled), size=size, mode="bilinear", align_corners=False))
        return torch.cat(levels, dim=1)


class SegNet(nn.Module):
    """ReDO's mask generator (section 4.2 and docs/reference.md, "Phase 2").

    Args:
        image_size: Side of the square input the pyramid windows are sized for (128 in the
            paper). Inputs of other sizes are accepted when divisible by 4, but the pooling
            windows keep their 128 px meaning; :func:`iem.segnet.predict` resizes instead.
        width: Channels of the residual trunk.
        residual_blocks: Number of residual blocks in the trunk.

    Input: ``(B, 3, H, W)`` float in [-1, 1]. Output: ``(B, 1, H, W)`` logits.
    """

    def __init__(
        self,
        image_size: int = DEFAULT_IMAGE_SIZE,
        width: int = DEFAULT_WIDTH,
        residual_blocks: int = DEFAULT_RESIDUAL_BLOCKS,
    ) -> None:
        super().__init__()
        if image_size % DOWNSAMPLING or image_size < DOWNSAMPLING * max(PYRAMID_DIVISORS):
            raise ValueError(
                f"SegNet: image_size must be a multiple of {DOWNSAMPLING} and >= "
                f"{DOWNSAMPLING * max(PYRAMID_DIVISORS)}, got {image_size}"
            )
        if width % 4 or width < 4:
            raise ValueError(f"SegNet: width must be a positive multiple of 4, got {width}")
        if residual_blocks < 0:
            raise ValueError(f"SegNet: residual_blocks must be >= 0, got {residual_blocks}")
        self.image_size = int(image_size)
        self.width = int(width)
        self.residual_blocks = int(residual_blocks)

        pad = WIDE_KERNEL // 2
        quarter, half = width // 4, width // 2
        self.stem = nn.Sequential(
            nn.ReflectionPad2d(pad),
            nn.Conv2d(3, quarter, WIDE_KERNEL, bias=False),
            _norm(quarter),
            nn.ReLU(inplace=True),
            nn.Conv2d(quarter, half, 3, stride=2, padding=1, bias=False),
            _norm(half),
            nn.ReLU(inplace=True),
            nn.Conv2d(half, width, 3, stride=2, padding=1, bias=False),
            _norm(width),
            nn.ReLU(inplace=True),
        )
        self.trunk = nn.Sequential(*(ResidualBlock(width) for _ in range(residual_blocks)))
        trunk_side = image_size // DOWNSAMPLING
        self.pyramid = PyramidPooling(width, tuple(trunk_side // d for d in PYRAMID_DIVISORS))
        merged = width + len(PYRAMID_DIVISORS)
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(merged, merged // 2, 3, padding=1, bias=False),
            _norm(merged // 2),
            nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(merged // 2, merged // 4, 3, padding=1, bias=False),
            _norm(merged // 4),
            nn.ReLU(inplace=True),
            nn.ReflectionPad2d(pad),
            nn.Conv2d(merged // 4, 1, WIDE_KERNEL),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Per-pixel foreground logits ``(B, 1, H, W)`` for images ``(B, 3, H, W)`` in [-1, 1]."""
        return self.decoder(self.pyramid(self.trunk(self.stem(images))))

    def hparams(self) -> Dict[str, Any]:
        """The constructor arguments, stored in checkpoints so that a model can be rebuilt."""
        return {"image_size": self.image_size, "width": self.width, "residual_blocks": self.residual_blocks}


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
