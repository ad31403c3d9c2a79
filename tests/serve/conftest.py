"""The server under test: the app with small limits, and photos made for it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette", reason="the 'serve' extra is not installed")
pytest.importorskip("httpx", reason="httpx (the 'test' extra) is not installed")

#: Working size of the test server: small, so that each request costs a fraction of a second.
SIZE = 48


def png_bytes(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def photo() -> bytes:
    """A 120 x 90 PNG: a noisy orange rectangle on a noisy teal background."""
    rng = np.random.default_rng(0)
    pixels = np.empty((90, 120, 3))
    pixels[:] = (40, 120, 130)
    pixels[25:65, 35:90] = (230, 140, 40)
    pixels += rng.normal(0, 10, pixels.shape)
    return png_bytes(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)))
