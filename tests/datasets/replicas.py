"""Builders of small replicas of the paper's dataset layouts (used by the fixtures of conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
from PIL import Image

#: Flowers segmim colours: three ways to be background and one foreground colour.
SEGMIM_RED_ZERO = (0, 200, 30)
SEGMIM_GREEN_ZERO = (200, 0, 30)
SEGMIM_BLUE_254 = (10, 20, 254)
SEGMIM_FOREGROUND = (250, 200, 30)


def write_png_as(path: Path, array: np.ndarray) -> None:
    """Write lossless PNG bytes under any name (decoders go by content): exact colours in a .jpg."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def flowers_segmim(height: int, width: int) -> np.ndarray:
    """A segmim image: left third R==0, middle third G==0, right third B==254, centre block foreground."""
    segmim = np.zeros((height, width, 3), np.uint8)
    third = width // 3
    segmim[:, :third] = SEGMIM_RED_ZERO
    segmim[:, third : 2 * third] = SEGMIM_GREEN_ZERO
    segmim[:, 2 * third :] = SEGMIM_BLUE_254
    segmim[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = SEGMIM_FOREGROUND
    return segmim


def flowers_expected(height: int, width: int) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    mask[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = True
    return mask


def build_flowers(tmp_path: Path) -> Path:
    """Flowers replica: ids 1..6; trnid = [5, 2, 4] (the paper's test images), valid = [1], tstid = [3, 6]."""
    from scipy.io import savemat

    root = tmp_path / "flowers"
    rng = np.random.default_rng(0)
    for image_id in range(1, 7):
        image = rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
        write_png_as(root / "jpg" / f"image_{image_id:05d}.jpg", image)
        write_png_as(root / "segmim" / f"segmim_{image_id:05d}.jpg", flowers_segmim(40, 56))
    # MATLAB stores the ids as 1 x N double rows.
    savemat(
        root / "setid.mat",
        {"trnid": np.array([[5, 2, 4]], float), "valid": np.array([[1]], float), "tstid": np.array([[3, 6]], float)},
    )
    return root


CUB_LIST: List[str] = [
    "001.Black_footed_Albatross/Black_Footed_Albatross_0001_1.jpg",
    "001.Black_footed_Albatross/Black_Footed_Albatross_0002_2.jpg",
    "002.Laysan_Albatross/Laysan_Albatross_0001_3.jpg",
    "002.Laysan_Albatross/Laysan_Albatross_0002_4.jpg",
    "003.Sooty_Albatross/Sooty_Albatross_0001_5.jpg",
]
#: Image id (1-based) -> ReDO flag (0 train, 1 val, 2 test).
CUB_FLAGS: Dict[int, int] = {1: 0, 2: 2, 3: 1, 4: 2, 5: 0}

#: CUB soft segmentation levels and whether each is foreground (first channel / 255 > 0.5).
CUB_LEVELS = {0: False, 51: False, 127: False, 128: True, 204: True, 255: True}


def cub_segmentation(height: int, width: int) -> np.ndarray:
    """Grey soft mask: vertical bands of the levels of :data:`CUB_LEVELS`."""
    levels = np.array(list(CUB_LEVELS), np.uint8)
    columns = np.arange(width) * len(levels) // width
    return np.tile(levels[columns], (height, 1))


def build_cub(tmp_path: Path) -> Path:
    """CUB replica: five images of three classes, flags of :data:`CUB_FLAGS`."""
    root = tmp_path / "CUB_200_2011"
    root.mkdir()
    (root / "images.txt").write_text("".join(f"{i} {p}\n" for i, p in enumerate(CUB_LIST, 1)))
    (root / "train_val_test_split.txt").write_text("".join(f"{i} {f}\n" for i, f in CUB_FLAGS.items()))
    rng = np.random.default_rng(1)
    for relative in CUB_LIST:
        image = rng.integers(0, 256, size=(36, 48, 3), dtype=np.uint8)
        write_png_as(root / "images" / relative, image)
        write_png_as((root / "segmentations" / relative).with_suffix(".png"), cub_segmentation(36, 48))
    return root
