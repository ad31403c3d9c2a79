"""Decode any image file into an upright RGB PIL image, or fail with one clear reason.

Every failure is an :class:`ImageReadError` whose message is one line naming the file, so a
batch can report it and go on (no traceback ever reaches the user).
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

PathLike = Union[str, os.PathLike]
Source = Union[PathLike, bytes]

#: Pillow's own default limit against decompression bombs (about 89 megapixels, a 1/4 GiB
#: RGB buffer). An image with more pixels is refused; ``max_pixels`` changes the limit.
DEFAULT_MAX_PIXELS: int = 89_478_485

#: Transparent pixels are composited over white before segmentation: a transparent backdrop
#: then reads as one flat colour instead of whatever colour the encoder left under it.
ALPHA_BACKGROUND = (255, 255, 255)

#: Largest code value of the 16-bit modes; their samples are rescaled to 8 bits with it.
_MAX_16_BIT = 65535.0
_MAX_8_BIT = 255.0

_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")

# Pillow keeps its decompression-bomb limit in a module global; it is changed only while this
# lock is held, and put back before the lock is released.
_PIL_LIMIT_LOCK = threading.Lock()


class ImageReadError(Exception):
    """An input could not be used; ``str(err)`` is one line: ``"<file>: <reason>"``.

    Attributes:
        name: the file as named in the message (None when built from a ready-made line).
        reason: why, without the file name.
    """

    def __init__(self, name: str, reason: Optional[str] = None) -> None:
        # ImageReadError("<file>: <reason>") (one ready-made line) is accepted too.
        super().__init__(name if reason is None else f"{name}: {reason}")
        self.name: Optional[str] = None if reason is None else name
        self.reason: str = name if reason is None else reason


def read_image(
    source: Source,
    *,
    max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
    min_side: Optional[int] = None,
    name: Optional[str] = None,
) -> Image.Image:
    """Read an image file (or its bytes) as an upright 8-bit RGB image.

    EXIF orientation is applied, animated files give their first frame, and every mode
    (grayscale, palette, RGBA/LA, CMYK, 16-bit) is converted to 8-bit RGB; transparent pixels
    are composited over :data:`ALPHA_BACKGROUND`.

    Args:
        source: a path, or the encoded bytes of a file (e.g. read from stdin).
        max_pixels: refuse images with more pixels than this (decompression-bomb guard,
            checked from the header before any pixel is decoded). ``None`` disables the check.
        min_side: when given, decoders that can (JPEG) may decode at a reduced scale as long as
            both sides stay at least ``min_side`` pixels; much faster when only a small
            version of a large photo is needed.
        name: how the file is named in error messages; the path (or ``"<stdin>"``) by default.

    Returns:
        A loaded RGB :class:`PIL.Image.Image`.

    Raises:
        ImageReadError: the file is missing, unreadable, empty, not an image, truncated,
            corrupt, in an unsupported colour mode or a decompression bomb.
    """
    if isinstance(source, (bytes, bytearray)):
        label = name or "<stdin>"
        if len(source) == 0:
            raise ImageReadError(label, "empty file")
        opener = lambda: Image.open(io.BytesIO(source))  # noqa: E731
        path = None
    else:
        path = Path(source)
        label = name or str(path)
        opener = lambda: Image.open(path)  # noqa: E731
    try:
        # Only opening (header parsing) holds the lock; decoding comes after, outside it, so
        # threads decode in parallel.
        with _pillow_guard_off():
            opened = opener()
        with opened as im:
            _check_pixels(im, max_pixels, label)
            if min_side is not None:
                # draft() keeps both sides >= the request, whatever the EXIF rotation.
                im.draft(im.mode, (min_side, min_side))
            im.load()
            # exif_transpose returns a new image (a copy when there is nothing to turn), which
            # outlives the closed file; to_rgb keeps an RGB one as it is: one full-size copy.
            return to_rgb(ImageOps.exif_transpose(im))
    except ImageReadError:
        raise
    except (FileNotFoundError, IsADirectoryError, PermissionError) as err:
        raise ImageReadError(label, _os_reason(err, path)) from None
    except UnidentifiedImageError:
        reason = "empty file" if path is not None and _is_empty(path) else "not a recognised image format"
        raise ImageReadError(label, reason) from None
    except Image.DecompressionBombError as err:  # raised by a few plugins while decoding
        raise ImageReadError(label, f"decompression bomb refused ({err})") from None
    except _UnsupportedMode as err:
        raise ImageReadError(label, str(err)) from None
    except MemoryError:
        raise ImageReadError(label, "not enough memory to decode it") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as err:
        # Pillow's plugins signal damaged data with any of these.
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ImageReadError(label, f"corrupt or truncated image ({detail})") from None


def read_file_bytes(path: PathLike, name: Optional[str] = None) -> bytes:
    """The bytes of a file, or an :class:`ImageReadError` saying in one line why not."""
    path = Path(path)
    try:
        return path.read_bytes()
    except OSError as err:
        raise ImageReadError(name or str(path), _os_reason(err, path)) from None


def _os_reason(err: OSError, path: Optional[Path]) -> str:
    if isinstance(err, FileNotFoundError):
        return "broken symbolic link" if path is not None and path.is_symlink() else "no such file"
    if isinstance(err, IsADirectoryError):
        return "is a directory, not an image file"
    if isinstance(err, PermissionError):
        return "permission denied"
    return f"cannot read ({err.strerror or err})"


class _UnsupportedMode(ValueError):
    pass


class _pillow_guard_off:
    """Switch Pillow's global bomb check off while a file is opened; :func:`_check_pixels`
    makes the same check (pixel count from the header, before any decoding) with the caller's
    limit and a message that names it."""

    def __enter__(self) -> None:
        _PIL_LIMIT_LOCK.acquire()
        self.previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None

    def __exit__(self, *exc: object) -> None:
        Image.MAX_IMAGE_PIXELS = self.previous
        _PIL_LIMIT_LOCK.release()


def _check_pixels(im: Image.Image, max_pixels: Optional[int], label: str) -> None:
    width, height = im.size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageReadError(
            label,
            f"decompression bomb refused ({width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,}; raise it with max_pixels / --max-pixels if the file is trusted)",
        )


def to_rgb(im: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB.

    The range of samples wider than 8 bits is read from the data (:func:`sample_scale`):
    16- and 32-bit integers and 32-bit floats whose values all lie in 0..255 are taken as they
    are; integers up to 65535 are 16-bit (scaled by ``255 / 65535``); floats all within 0..1
    are scaled by 255. Any other range (negative values, integers over 65535, floats over 255)
    is ambiguous and refused, as are NaN and infinite values. Alpha (RGBA, LA, PA, palette
    transparency) is composited over :data:`ALPHA_BACKGROUND`. An RGB image is returned as it
    is (not copied).

    Raises:
        ValueError: samples in a range that cannot be read as intensities (the message is the
            reason, for :class:`ImageReadError`).
    """
    if im.mode in _SIXTEEN_BIT_MODES or im.mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        arr = arr * sample_scale(arr, floating=im.mode == "F")
        im = Image.fromarray(np.clip(np.rint(arr), 0, _MAX_8_BIT).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = im.convert("RGBA")
        backdrop = Image.new("RGBA", rgba.size, ALPHA_BACKGROUND + (255,))
        return Image.alpha_composite(backdrop, rgba).convert("RGB")
    if im.mode == "RGB":
        return im  # already 8-bit RGB: no copy (a 12-megapixel copy costs about 20 ms)
    try:
        return im.convert("RGB")
    except ValueError:
        raise _UnsupportedMode(f"unsupported colour mode {im.mode}") from None


def sample_scale(samples: np.ndarray, floating: bool) -> float:
    """The factor that brings ``samples`` (integers wider than 8 bits, or floats) to 0..255.

    Decided from the values themselves, since the file does not say which range it uses: all
    in 0..255 -> 1; integers up to 65535 -> ``255 / 65535`` (16-bit); floats all in 0..1 ->
    255 (a float image of 0..255 data is then not mistaken for an overexposed 0..1 one).

    Raises:
        _UnsupportedMode: NaN or infinite values, negative values, or values beyond 65535
            (integers) or 255 (floats): the range cannot be told.
    """
    if samples.size == 0:
        return 1.0
    if not np.isfinite(samples).all():
        raise _UnsupportedMode("float image holds NaN or infinite values")
    low, high = float(samples.min()), float(samples.max())
    kind = "float" if floating else "integer"
    expected = "0..1 or 0..255" if floating else "0..255 or 0..65535"
    if low < 0 or high > (_MAX_8_BIT if floating else _MAX_16_BIT):
        raise _UnsupportedMode(f"{kind} samples from {low:g} to {high:g}: range unknown (expected {expected})")
    if floating:
        return _MAX_8_BIT if high <= 1.0 else 1.0
    return 1.0 if high <= _MAX_8_BIT else _MAX_8_BIT / _MAX_16_BIT


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


#: Gray level above which a pixel of a marks image (a user's strokes) counts as marked.
MARK_LEVEL = 127


def read_marks(source: Source, *, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS, name: Optional[str] = None) -> np.ndarray:
    """A marks image (white strokes on black, e.g. pixels to keep as foreground) as ``(H, W)`` bool.

    Read like any image (:func:`read_image`: EXIF rotation, any mode); a pixel is marked where its
    gray level exceeds :data:`MARK_LEVEL`.

    Raises:
        ImageReadError: as :func:`read_image`.
    """
    picture = read_image(source, max_pixels=max_pixels, name=name)
    return np.asarray(picture.convert("L")) > MARK_LEVEL
