"""The working copy of a photo: the whole field of view, shorter side ``size`` pixels."""

from __future__ import annotations

import numpy as np
from PIL import Image

from iem.imaging import working_size
from iem.io.read import ImageReadError

#: Inputs with a side shorter than this are refused (too little to segment); larger ones that
#: are still below the working size are upscaled to it.
MIN_INPUT_SIDE = 8
#: Longest side / shorter side beyond which an input is refused: at the working size such an
#: image would be a strip of ``size x (ratio * size)`` pixels, costly and meaningless for IEM.
MAX_ASPECT_RATIO = 16.0


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
