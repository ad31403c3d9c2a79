"""The files ``iem segment`` writes for each photo: names, formats, and writing them atomically."""

from __future__ import annotations

import io
import os
from pathlib import Path, PurePath
from typing import IO, Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image

from iem.io.render import cutout_image, inpainting_image, mask_image, mask_png, overlay_image
from iem.io.write import StaleTemporaries, atomic_write, check_cancelled

PathLike = Union[str, os.PathLike]

#: zlib level of photo-like PNGs (cut-outs, inpainting): level 1 is several times faster than
#: the default on a 12-megapixel photo, for files about 10 % larger.
PHOTO_PNG_COMPRESSION = 1
OVERLAY_JPEG_QUALITY = 90

#: Writes one output's file contents: ``(handle, photo, mask, inpainted)``.
Encoder = Callable[[IO[bytes], Image.Image, np.ndarray, Optional[np.ndarray]], None]


def _rendered(kind: str, format: str, **options: Any) -> Encoder:
    """The picture of :func:`render_output`, saved by PIL in ``format``."""

    def encode(handle: IO[bytes], photo: Image.Image, mask: np.ndarray, inpainted: Optional[np.ndarray]) -> None:
        render_output(kind, photo, mask, inpainted).save(handle, format=format, **options)

    return encode


def _mask(handle: IO[bytes], photo: Image.Image, mask: np.ndarray, inpainted: Optional[np.ndarray]) -> None:
    handle.write(mask_png(mask))  # the one encoding of masks, faster than PIL's


#: The outputs: name -> (file suffix, encoder).
OUTPUTS: Mapping[str, Tuple[str, Encoder]] = {
    "mask": (".mask.png", _mask),
    "cutout": (".cutout.png", _rendered("cutout", "PNG", compress_level=PHOTO_PNG_COMPRESSION)),
    "overlay": (".overlay.jpg", _rendered("overlay", "JPEG", quality=OVERLAY_JPEG_QUALITY)),
    "inpaint": (".inpaint.png", _rendered("inpaint", "PNG", compress_level=PHOTO_PNG_COMPRESSION)),
}
#: The name endings that mark a file as an output: in the output folder such files are never
#: taken as inputs, so outputs may be written beside the photos.
OUTPUT_SUFFIXES: Tuple[str, ...] = tuple(suffix for suffix, _ in OUTPUTS.values())


def output_paths(out_dir: PathLike, relative: PurePath, outputs: Sequence[str]) -> Dict[str, Path]:
    """Where each output of an input lies: ``OUT/<relative folder>/<stem><suffix>``."""
    folder = Path(out_dir) / relative.parent
    return {kind: folder / (relative.stem + OUTPUTS[kind][0]) for kind in outputs}


def render_output(kind: str, photo: Image.Image, mask: np.ndarray, inpainted: Optional[np.ndarray]) -> Image.Image:
    """The picture of one output kind, at the photo's size.

    Args:
        kind: a key of :data:`OUTPUTS`.
        photo: the full-resolution RGB photo.
        mask: its ``(H, W)`` bool mask.
        inpainted: ``(h, w, 3)`` uint8 inpainting result at the working size (``"inpaint"`` only).
    """
    if kind == "mask":
        return mask_image(mask)
    if kind == "cutout":
        return cutout_image(photo, mask)
    if kind == "overlay":
        return overlay_image(photo, mask)
    if kind == "inpaint":
        if inpainted is None:
            raise ValueError("the inpaint output needs the inpainting result")
        return inpainting_image(inpainted, photo.size)
    raise ValueError(f"unknown output {kind!r}; choose from {sorted(OUTPUTS)}")


def write_outputs(
    targets: Mapping[str, Path],
    photo: Image.Image,
    mask: np.ndarray,
    inpainted: Optional[np.ndarray] = None,
    cleaner: Optional[StaleTemporaries] = None,
) -> None:
    """Write each ``kind -> path`` of ``targets`` atomically (leftover temporaries cleaned first).

    Raises:
        OSError: a file cannot be written (the ones written before it stay complete).
    """
    _write_each(targets, cleaner, lambda kind, handle: OUTPUTS[kind][1](handle, photo, mask, inpainted))


def encode_outputs(
    kinds: Sequence[str], photo: Image.Image, mask: np.ndarray, inpainted: Optional[np.ndarray] = None
) -> Dict[str, bytes]:
    """The file contents :func:`write_outputs` would write for each of ``kinds``, in memory
    (for rendering in another process; :func:`write_encoded` writes them)."""
    encoded = {}
    for kind in kinds:
        buffer = io.BytesIO()
        OUTPUTS[kind][1](buffer, photo, mask, inpainted)
        encoded[kind] = buffer.getvalue()
    return encoded


def write_encoded(
    targets: Mapping[str, Path], encoded: Mapping[str, bytes], cleaner: Optional[StaleTemporaries] = None
) -> None:
    """Write :func:`encode_outputs`' contents to ``targets`` as :func:`write_outputs` does."""
    _write_each(targets, cleaner, lambda kind, handle: handle.write(encoded[kind]))


def _write_each(
    targets: Mapping[str, Path], cleaner: Optional[StaleTemporaries], write: Callable[[str, IO[bytes]], Any]
) -> None:
    for kind, path in targets.items():
        check_cancelled()
        if cleaner is not None:
            cleaner.clean(path.parent)
        atomic_write(path, lambda handle: write(kind, handle))
