"""Image files of every kind a photo folder holds, good and bad, generated with PIL.

:func:`synthetic_photo` is a textured background with a centred ellipse of another colour, so
IEM finds the object in a few iterations. :func:`make_zoo` writes one file per input kind the
``segment`` command must handle and returns what each should give.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
from PIL import Image

#: EXIF tag number of the orientation, and the value meaning "rotate 90 degrees clockwise to view".
EXIF_ORIENTATION = 0x0112
ROTATE_90_CW = 6

#: --max-pixels used with the zoo: above every good image, below the bomb.
ZOO_MAX_PIXELS = 40_000


def synthetic_photo(width: int = 96, height: int = 72, seed: int = 0) -> Tuple[Image.Image, np.ndarray]:
    """An RGB photo (noisy teal background, noisy orange ellipse) and its (H, W) bool ground truth."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    mask = ((yy - height / 2) / (height * 0.3)) ** 2 + ((xx - width / 2) / (width * 0.28)) ** 2 <= 1.0
    background = np.array([40.0, 120.0, 130.0])
    foreground = np.array([230.0, 140.0, 40.0])
    pixels = np.where(mask[..., None], foreground, background) + rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB"), mask


@dataclass(frozen=True)
class Expected:
    """What one zoo file should give: an upright size ``(W, H)`` or an error containing ``error``."""

    size: Optional[Tuple[int, int]] = None
    error: Optional[str] = None


def _rotated_jpeg(path: Path) -> Expected:
    # Stored 96x72 (landscape) with orientation 6: viewers show it 72x96 (portrait).
    photo, _ = synthetic_photo(96, 72, seed=1)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATE_90_CW
    photo.save(path, "JPEG", quality=95, exif=exif.tobytes())
    return Expected(size=(72, 96))


def _animated_gif(path: Path) -> Expected:
    first, _ = synthetic_photo(80, 64, seed=2)
    second = Image.new("RGB", (80, 64), (255, 255, 255))
    first.save(path, "GIF", save_all=True, append_images=[second], duration=100, loop=0)
    return Expected(size=(80, 64))


def _sixteen_bit(path: Path) -> Expected:
    photo, _ = synthetic_photo(64, 64, seed=3)
    deep = (np.asarray(photo.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(deep).save(path, "PNG")  # uint16 -> 16-bit grayscale
    return Expected(size=(64, 64))


def _rgba(path: Path) -> Expected:
    photo, mask = synthetic_photo(70, 60, seed=4)
    rgba = photo.convert("RGBA")
    alpha = np.full(mask.shape, 255, np.uint8)
    alpha[:6, :] = 0  # a transparent band: composited over white when read
    rgba.putalpha(Image.fromarray(alpha, "L"))
    rgba.save(path, "PNG")
    return Expected(size=(70, 60))


def _truncated_jpeg(path: Path) -> Expected:
    photo, _ = synthetic_photo(96, 72, seed=5)
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=95)
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) // 2])
    return Expected(error="truncated")


def _corrupt_png(path: Path) -> Expected:
    photo, _ = synthetic_photo(64, 48, seed=6)
    buffer = io.BytesIO()
    photo.save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # zeroes over compressed data: checksum and stream break
    path.write_bytes(bytes(data))
    return Expected(error="corrupt")


def make_zoo(folder: Path) -> Dict[str, Expected]:
    """Write every input kind into ``folder``; keys are paths relative to it.

    Good files give outputs of the listed upright size; bad ones give one error line that
    contains the listed text. Use ``--max-pixels`` :data:`ZOO_MAX_PIXELS` so the bomb is refused.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nested" / "deeper").mkdir(parents=True)
    expected: Dict[str, Expected] = {}

    def save(name: str, image: Image.Image, fmt: str, **options: object) -> None:
        image.save(folder / name, fmt, **options)
        expected[name] = Expected(size=image.size)

    photo, _ = synthetic_photo(96, 72)
    save("photo.jpg", photo, "JPEG", quality=95)
    save("gray.png", synthetic_photo(80, 60, seed=7)[0].convert("L"), "PNG")
    save("palette.png", synthetic_photo(80, 60, seed=8)[0].convert("P", palette=Image.ADAPTIVE, colors=32), "PNG")
    save("la.png", synthetic_photo(60, 80, seed=9)[0].convert("LA"), "PNG")
    save("cmyk.jpg", synthetic_photo(90, 60, seed=10)[0].convert("CMYK"), "JPEG", quality=95)
    save("tiny.png", synthetic_photo(12, 10, seed=11)[0], "PNG")
    save("nested/deeper/inner.png", synthetic_photo(64, 80, seed=12)[0], "PNG")
    expected["rotated.jpg"] = _rotated_jpeg(folder / "rotated.jpg")
    expected["animated.gif"] = _animated_gif(folder / "animated.gif")
    expected["deep16.png"] = _sixteen_bit(folder / "deep16.png")
    expected["rgba.png"] = _rgba(folder / "rgba.png")

    Image.new("RGB", (5, 5), (9, 9, 9)).save(folder / "too_small.png")
    expected["too_small.png"] = Expected(error="too small")
    Image.new("RGB", (250, 10), (9, 9, 9)).save(folder / "strip.png")
    expected["strip.png"] = Expected(error="aspect ratio")
    Image.new("L", (300, 300), 0).save(folder / "bomb.png")
    expected["bomb.png"] = Expected(error="decompression bomb")
    expected["truncated.jpg"] = _truncated_jpeg(folder / "truncated.jpg")
    expected["corrupt.png"] = _corrupt_png(folder / "corrupt.png")
    (folder / "empty.jpg").write_bytes(b"")
    expected["empty.jpg"] = Expected(error="empty file")
    (folder / "notes.jpg").write_text("this is a text file, not a photo\n")
    expected["notes.jpg"] = Expected(error="not a recognised image format")
    os.symlink(folder / "does-not-exist.jpg", folder / "dangling.jpg")
    expected["dangling.jpg"] = Expected(error="broken symbolic link")
    if os.geteuid() != 0:  # root reads any file whatever its mode
        locked = folder / "locked.png"
        synthetic_photo(40, 40)[0].save(locked)
        locked.chmod(0)
        expected["locked.png"] = Expected(error="permission denied")
    # Files a folder walk must ignore: not image extensions, hidden.
    (folder / "README.txt").write_text("not an image\n")
    synthetic_photo(40, 40)[0].save(folder / ".hidden.png")
    return expected
