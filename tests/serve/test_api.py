"""``POST /api/segment`` and the other routes, through HTTP clients against the app in process."""

from __future__ import annotations

import asyncio
import io
import struct
import tempfile
import threading
import zlib

import httpx
import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from iem.config import IEMConfig
from iem.io.render import mask_png
from iem.pipeline import segment_bytes
from iem.serve import ServeSettings, create_app
from iem.serve.app import STATIC

from .conftest import SIZE, png_bytes

#: The settings of a request that names no preset.
DEFAULT = IEMConfig.preset(ServeSettings().preset)


def settings(**changes):
    return ServeSettings(**{"size": SIZE, "batch_wait_s": 0.0, **changes})


@pytest.fixture
def client():
    with TestClient(create_app(settings())) as test_client:
        yield test_client


def decode(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)))


def test_health_info_openapi_and_the_offline_page(client):
    assert client.get("/healthz").json()["status"] == "ok"
    info = client.get("/api/info").json()
    assert "paper" in info["presets"] and info["settings"]["size"] == SIZE
    document = client.get("/openapi.json").json()
    assert set(document["paths"]["/api/segment"]["post"]["responses"]) >= {"200", "400", "413", "415", "503", "504"}
    for path in ("/", "/docs", "/static/app.js", "/static/style.css"):
        response = client.get(path)
        assert response.status_code == 200
        assert "http://" not in response.text and "https://" not in response.text  # nothing fetched from elsewhere
    assert sorted(p.name for p in STATIC.iterdir()) == ["app.js", "docs.html", "index.html", "style.css"]


def test_multipart_box_gives_what_the_library_gives(client, photo):
    response = client.post("/api/segment", files={"file": ("p.png", photo, "image/png")}, data={"box": "30,20,95,70"})
    mask = decode(response)
    expected = segment_bytes(photo, DEFAULT, SIZE, "cpu", box=(30, 20, 95, 70))
    assert mask.shape == (90, 120) and set(np.unique(mask)) <= {0, 255}
    assert np.array_equal(mask > 0, expected)
    assert response.content == mask_png(expected)  # the one encoding of masks
    truth = np.zeros((90, 120), bool)
    truth[25:65, 35:90] = True
    assert (expected & truth).sum() / (expected | truth).sum() > 0.8


def test_raw_body_with_query_settings_gives_a_cutout(client, photo):
    mask = decode(client.post("/api/segment?preset=released", content=photo)) > 0
    cutout = decode(client.post("/api/segment?output=cutout&preset=released", content=photo))
    assert cutout.shape == (90, 120, 4)
    assert np.array_equal(cutout[..., 3] > 0, mask)
    assert np.array_equal(mask, segment_bytes(photo, IEMConfig.released(), SIZE, "cpu"))


def test_strokes_are_kept_at_full_resolution(client, photo):
    foreground = np.zeros((90, 120), np.uint8)
    foreground[5:8, 5:60] = 255  # in the teal background
    background = np.zeros((90, 120), np.uint8)
    background[30:60, 60:64] = 255  # across the orange object
    files = {
        "file": ("p.png", photo, "image/png"),
        "foreground": ("f.png", png_bytes(Image.fromarray(foreground)), "image/png"),
        "background": ("b.png", png_bytes(Image.fromarray(background)), "image/png"),
    }
    mask = decode(client.post("/api/segment", files=files)) > 0
    assert mask[5:8, 5:60].all() and not mask[30:60, 60:64].any()


def test_requests_arriving_together_share_one_batch(photo):
    other = png_bytes(Image.open(io.BytesIO(photo)).transpose(Image.FLIP_LEFT_RIGHT))
    app = create_app(settings(batch_wait_s=0.5, max_batch=4))

    async def send_all():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await asyncio.gather(*(http.post("/api/segment", content=data) for data in (photo, other, photo)))

    responses = asyncio.run(send_all())
    assert [r.headers["X-IEM-Batch"] for r in responses] == ["3", "3", "3"]
    alone = [segment_bytes(data, DEFAULT, SIZE, "cpu") for data in (photo, other)]
    masks = [decode(r) > 0 for r in responses]
    assert np.array_equal(masks[0], alone[0]) and np.array_equal(masks[1], alone[1]) and np.array_equal(masks[2], alone[0])


def bomb() -> bytes:
    """A PNG header claiming 20000 x 20000 pixels, with no pixel data: refused before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    "request_args, status, reason",
    [
        (dict(content=b""), 400, "no image"),
        (dict(content="TRUNCATED"), 400, "corrupt or truncated"),
        (dict(content=b"plain text, not an image"), 415, "not a recognised image format"),
        (dict(files={"file": ("x.txt", b"hello", "text/plain")}), 415, "not a recognised"),
        (dict(content="BOMB"), 413, "decompression bomb"),
        (dict(content="PHOTO", params={"box": "1,2,3"}), 400, "four numbers"),
        (dict(content="PHOTO", params={"box": "500,500,600,600"}), 400, "outside"),
        (dict(content="PHOTO", params={"box": "a,b,c,d"}), 400, "four numbers"),
        (dict(content="PHOTO", params={"preset": "fastest"}), 400, "unknown preset"),
        (dict(content="PHOTO", params={"output": "overlay"}), 400, "output must be"),
        (dict(files={"file": ("p.png", "PHOTO"), "foreground": ("f.png", "SMALL")}), 400, "foreground marks"),
        (dict(files={"file": ("p.png", "PHOTO"), "background": ("b.png", b"nope")}), 415, "background marks"),
        (dict(content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data; boundary=x"}), 400, ""),
        (dict(content="TINY"), 400, "too small"),
    ],
)
def test_bad_inputs_get_a_status_and_a_reason(client, photo, request_args, status, reason):
    replace = {"PHOTO": photo, "BOMB": bomb(), "TRUNCATED": photo[: len(photo) // 2], "SMALL": png_bytes(Image.new("L", (10, 10))),
               "TINY": png_bytes(Image.new("RGB", (4, 4)))}

    def fill(value):
        if isinstance(value, str) and value in replace:
            return replace[value]
        if isinstance(value, tuple):
            return tuple(fill(v) for v in value)
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    response = client.post("/api/segment", **fill(request_args))
    assert response.status_code == status, response.text
    assert reason in response.json()["error"]
    assert client.get("/healthz").json()["in_progress"] == 0


def test_upload_size_limit_with_and_without_content_length(photo):
    with TestClient(create_app(settings(max_upload_bytes=1000))) as client:
        assert client.post("/api/segment", content=photo).status_code == 413
        chunked = client.post("/api/segment", content=(photo[i : i + 100] for i in range(0, len(photo), 100)))
        assert chunked.status_code == 413 and "limit of 1,000 bytes" in chunked.json()["error"]
        assert client.get("/healthz").json()["in_progress"] == 0


def test_large_multipart_uploads_never_touch_the_disk(client, photo, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an upload was written to a temporary file")

    for name in ("SpooledTemporaryFile", "NamedTemporaryFile", "TemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, refuse)
    padding = b"\0" * (3 * 1024 * 1024)  # past Starlette's 1 MiB spooling threshold
    files = {"file": ("p.png", photo, "image/png"), "padding": ("pad.bin", padding, "application/octet-stream")}
    assert client.post("/api/segment", files=files).status_code == 200


class Gate:
    """A compute function that waits until released, to hold requests inside the server."""

    def __init__(self, compute):
        self.compute, self.entered, self.release = compute, threading.Event(), threading.Event()

    def __call__(self, *args):
        self.entered.set()
        self.release.wait(10)
        return self.compute(*args)


def test_full_queue_answers_503_with_retry_after_and_recovers(photo):
    app = create_app(settings(queue_limit=1, retry_after_s=3))
    gate = Gate(app.state.service.batcher.compute)
    app.state.service.batcher.compute = gate

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            first = asyncio.ensure_future(http.post("/api/segment", content=photo))
            while not gate.entered.is_set():
                await asyncio.sleep(0.01)
            refused = await http.post("/api/segment", content=photo)
            gate.release.set()
            return await first, refused, await http.post("/api/segment", content=photo)

    first, refused, later = asyncio.run(scenario())
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "3"
    assert first.status_code == 200 and later.status_code == 200


def test_time_limit_gives_504_and_the_server_goes_on(photo):
    app = create_app(settings(timeout_s=0.3))
    gate = Gate(app.state.service.batcher.compute)
    app.state.service.batcher.compute = gate
    with TestClient(app) as client:
        slow = client.post("/api/segment", content=photo)
        assert slow.status_code == 504 and "limit of 0.3 s" in slow.json()["error"]
        gate.release.set()
        assert client.post("/api/segment", content=photo).status_code == 200


def test_a_failing_computation_is_a_500_for_that_request_only(photo):
    app = create_app(settings())
    working = app.state.service.batcher.compute
    calls = []

    def flaky(*args):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("out of luck\nsecond line")
        return working(*args)

    app.state.service.batcher.compute = flaky
    with TestClient(app) as client:
        failed = client.post("/api/segment", content=photo)
        assert failed.status_code == 500 and failed.json()["error"] == "segmentation failed (RuntimeError: out of luck)"
        assert client.post("/api/segment", content=photo).status_code == 200


def test_settings_are_validated():
    with pytest.raises(ValueError, match="preset"):
        ServeSettings(preset="nope")
    with pytest.raises(ValueError, match="queue_limit"):
        ServeSettings(queue_limit=0)
