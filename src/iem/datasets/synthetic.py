"""A small synthetic dataset in the ``images/`` + ``masks/`` layout, to try the tools without data.

Each image is a noisy background of one colour with an ellipse of another colour somewhere near
the middle; the mask is the ellipse. The task is easy on purpose: a working segmenter should get
most of it, so the dataset also serves as a quick end-to-end check.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import numpy as np
from PIL import Image

from iem.datasets.base import PathLike
from iem.datasets.folder import IMAGE_DIR, MASK_DIR
from iem.io.write import save_image

#: Standard deviation of the per-pixel noise, in 8-bit levels.
NOISE_LEVEL = 12.0
#: Ellipse semi-axes as fractions of the image side, drawn uniformly in this range.
AXIS_RANGE = (0.18, 0.32)
#: How far the ellipse centre may move from the image centre, as a fraction of the side.
CENTER_JITTER = 0.1
#: Smallest distance between the two colours on some channel, in 8-bit levels.
MIN_CONTRAST = 96
#: PIL's format name for each file suffix written.
_PIL_FORMATS = {"png": "PNG", "jpg": "JPEG"}


def _colours(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    while True:
        background, foreground = rng.integers(0, 256, size=(2, 3))
        if np.abs(background - foreground).max() >= MIN_CONTRAST:
            return background.astype(np.float64), foreground.astype(np.float64)


def shapes_sample(height: int, width: int, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """One synthetic image (H, W, 3) uint8 and its mask (H, W) bool."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    centre_y = height / 2 + rng.uniform(-CENTER_JITTER, CENTER_JITTER) * height
    centre_x = width / 2 + rng.uniform(-CENTER_JITTER, CENTER_JITTER) * width
    axis_y = rng.uniform(*AXIS_RANGE) * height
    axis_x = rng.uniform(*AXIS_RANGE) * width
    mask = ((rows - centre_y) / axis_y) ** 2 + ((cols - centre_x) / axis_x) ** 2 <= 1.0
    background, foreground = _colours(rng)
    image = np.where(mask[..., None], foreground, background)
    image = image + rng.normal(0.0, NOISE_LEVEL, size=image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), mask


def write_shapes_dataset(
    root: PathLike,
    count: int = 8,
    size: Tuple[int, int] = (64, 64),
    seed: int = 0,
    image_format: str = "png",
) -> List[str]:
    """Write ``count`` synthetic pairs under ``root/images`` and ``root/masks`` (0/255 PNG).

    Args:
        root: Dataset folder (created).
        count: Number of images.
        size: ``(height, width)`` of every image.
        seed: Seed of the random generator; the same seed writes the same files.
        image_format: ``"png"`` (lossless) or ``"jpg"``.

    Returns:
        The sample names (``shape_000``, ...).
    """
    if count < 1:
        raise ValueError("count must be >= 1")
    if image_format not in _PIL_FORMATS:
        raise ValueError("image_format must be 'png' or 'jpg'")
    root = Path(root)
    (root / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    (root / MASK_DIR).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = []
    for index in range(count):
        name = f"shape_{index:03d}"
        image, mask = shapes_sample(size[0], size[1], rng)
        save_image(Image.fromarray(image), root / IMAGE_DIR / f"{name}.{image_format}", _PIL_FORMATS[image_format])
        save_image(Image.fromarray(mask.astype(np.uint8) * 255), root / MASK_DIR / f"{name}.png", "PNG")
        names.append(name)
    return names
