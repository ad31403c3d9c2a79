"""Decoding ground-truth files into boolean foreground masks, one rule per dataset family.

* Generic masks (GrabCut, Weizmann Horse, LSUN-style folders, CUB): one channel thresholded at
  half its range, i.e. ``value > 127`` for 8-bit files (CUB's rule, "first channel scaled to
  [0, 1], > 0.5", is the same test). A mask file whose largest value is 1 holds 0/1 labels and is
  read as ``value >= 1``; ``.npy`` arrays are accepted the same way.
* Oxford Flowers ``segmim`` images: a pixel is background when R == 0 or G == 0 or B == 254 (the
  JPEG-coded colours of the released segmentations), foreground otherwise.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np

from iem.io import ImageReadError, read_image

PathLike = Union[str, os.PathLike]

#: 8-bit masks: foreground when the value exceeds half the range (0.5 after scaling to [0, 1]).
MASK_THRESHOLD = 127

#: Suffix of ground truth stored as numpy arrays.
NUMPY_SUFFIX = ".npy"

#: Colour codes of the Flowers ``segmim`` background (docs/reference.md, "Data sets of the paper").
SEGMIM_ZERO_RED = 0
SEGMIM_ZERO_GREEN = 0
SEGMIM_BLUE_BACKGROUND = 254


def binarize_levels(levels: np.ndarray) -> np.ndarray:
    """Boolean foreground of a single-channel mask array.

    0/1 label arrays (largest value <= 1) give ``levels >= 1``; anything else is read as 8-bit
    levels and gives ``levels > 127``. Boolean arrays are returned as they are.
    """
    levels = np.asarray(levels)
    if levels.dtype == bool:
        return levels.copy()
    if levels.size and levels.max() <= 1:
        return levels >= 1
    return levels > MASK_THRESHOLD


def segmim_foreground(rgb: np.ndarray) -> np.ndarray:
    """Flowers ``segmim`` rule: background where R == 0 or G == 0 or B == 254; (H, W, 3) -> (H, W) bool."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"a segmim image must be (H, W, 3), got shape {rgb.shape}")
    background = (
        (rgb[..., 0] == SEGMIM_ZERO_RED) | (rgb[..., 1] == SEGMIM_ZERO_GREEN) | (rgb[..., 2] == SEGMIM_BLUE_BACKGROUND)
    )
    return ~background


def read_mask(path: PathLike) -> np.ndarray:
    """Read a generic ground-truth or predicted mask file as a boolean (H, W) array.

    Image files are decoded with :func:`iem.io.read_image` (so 16-bit, palette and RGB masks all
    work) and their first channel is thresholded by :func:`binarize_levels`; ``.npy`` files must
    hold a 2-D array.

    Raises:
        ImageReadError: the file cannot be decoded; the message names the file.
    """
    path = Path(path)
    if path.suffix.lower() == NUMPY_SUFFIX:
        return _read_numpy_mask(path)
    rgb = np.asarray(read_image(path))
    return binarize_levels(rgb[..., 0])


def read_segmim(path: PathLike) -> np.ndarray:
    """Read a Flowers ``segmim_*.jpg`` file as a boolean foreground mask (see :func:`segmim_foreground`)."""
    return segmim_foreground(np.asarray(read_image(path)))


def _read_numpy_mask(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except (OSError, ValueError) as err:
        raise ImageReadError(f"{path}: not a readable numpy array ({err})") from None
    array = np.squeeze(array)
    if array.ndim != 2:
        raise ImageReadError(f"{path}: a mask array must be 2-D, got shape {array.shape}")
    return binarize_levels(array)
