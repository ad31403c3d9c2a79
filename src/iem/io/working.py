"""The working copy of a photo: the whole field of view, shorter side ``size`` pixels."""

from __future__ import annotations

import numpy as np
from PIL import Image

from typing import Optional

from iem.imaging import working_size
from iem.io.read import DEFAULT_MAX_PIXELS, ImageReadError, Source, read_image

#: Inputs with a side shorter than this are refused (too little to segment); larger ones that
#: are still below the working size are upscaled to it.
MIN_INPUT_SIDE = 8
#: Longest side / shorter side beyond which an input is refused: at the working size such an
#: image would be a strip of ``size x (ratio * size)`` pixels, costly and meaningless for IEM.
MAX_ASPECT_RATIO = 16.0
#: A working image whose every channel has a standard deviation below this (in 8-bit levels)
#: is blank or near-constant: about one level of noise, as a flat area of a JPEG shows, with
#: nothing for IEM to separate. Such images get an empty mask and a warning.
BLANK_STD = 1.0


def working_image(photo: Image.Image, size: int, name: str) -> np.ndarray:
    """The whole photo resized so that its shorter side is ``size`` (bilinear, antialiased).

    Args:
        photo: RGB photo.
        size: working resolution (shorter side, pixels).
        name: the file, for error messages.

    Returns:
        ``(h, w, 3)`` uint8 array.

    Raises:
        ImageReadError: the photo is smaller than :data:`MIN_INPUT_SIDE` or more elongated than
            :data:`MAX_ASPECT_RATIO`.
    """
    width, height = photo.size
    if min(width, height) < MIN_INPUT_SIDE:
        raise ImageReadError(
            name, f"image too small ({width}x{height} px; at least {MIN_INPUT_SIDE} px per side are needed)"
        )
    ratio = max(width, height) / min(width, height)
    if ratio > MAX_ASPECT_RATIO:
        raise ImageReadError(
            name, f"aspect ratio {ratio:.1f}:1 of {width}x{height} px exceeds the supported {MAX_ASPECT_RATIO:g}:1"
        )
    h, w = working_size(height, width, size)
    # PIL's bilinear filter widens with the scale factor when shrinking: an antialiased resize.
    return np.asarray(photo.resize((w, h), Image.BILINEAR), dtype=np.uint8)


def working_copy(
    source: Source, size: int, *, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, name: Optional[str] = None
) -> np.ndarray:
    """The working copy of an image file (or its bytes), as ``iem segment`` makes it.

    A JPEG is decoded at the smallest DCT scale that keeps both sides at least ``size`` pixels
    (much faster than a full decode), then :func:`working_image` resizes it.

    Returns:
        ``(h, w, 3)`` uint8 array.

    Raises:
        ImageReadError: as :func:`iem.io.read_image` and :func:`working_image`.
    """
    label = name or ("<stdin>" if isinstance(source, (bytes, bytearray)) else str(source))
    return working_image(read_image(source, max_pixels=max_pixels, min_side=size, name=label), size, label)


def is_blank(working: np.ndarray) -> bool:
    """Whether an ``(h, w, 3)`` image is blank or near-constant (:data:`BLANK_STD`)."""
    channels = working.reshape(-1, working.shape[-1]).astype(np.float64)
    return bool((channels.std(axis=0) < BLANK_STD).all())
