"""Tiny synthetic images whose foreground is known, for the phase-2 tests."""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch
from PIL import Image


def blobs(count: int, size: int = 32, seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor]:
    """``count`` images with one bright disk each on a darker textured background.

    Returns images ``(N, 3, size, size)`` in [-1, 1] and their masks ``(N, 1, size, size)`` bool.
    """
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")
    images, masks = [], []
    for _ in range(count):
        cy, cx = (torch.rand(2, generator=g) * 0.4 + 0.3) * size
        radius = float(torch.rand(1, generator=g)) * size * 0.12 + size * 0.18
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
        fg = torch.tensor([0.8, -0.4, 0.3]).view(3, 1, 1)
        bg = torch.tensor([-0.5, 0.2, -0.3]).view(3, 1, 1)
        image = torch.where(mask, fg, bg) + 0.1 * torch.randn(3, size, size, generator=g)
        images.append(image.clamp(-1, 1))
        masks.append(mask.unsqueeze(0))
    return torch.stack(images), torch.stack(masks)


def write_images(folder: Path, count: int, size: Tuple[int, int] = (40, 48), seed: int = 0) -> List[Path]:
    """Save ``count`` synthetic RGB images (height, width = ``size``) as PNG files; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    images, _ = blobs(count, size=max(size), seed=seed)
    paths = []
    for i, image in enumerate(images):
        array = ((image[:, : size[0], : size[1]].permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
        path = folder / f"img{i:02d}.png"
        Image.fromarray(np.ascontiguousarray(array)).save(path)
        paths.append(path)
    return paths
