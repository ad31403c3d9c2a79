"""The ASGI application of ``iem serve``: the page, ``POST /api/segment``, ``/healthz``, OpenAPI.

Starlette (small, no code generation, the OpenAPI document written by hand below so that it
describes the multipart fields exactly) on uvicorn. Every request runs through the same steps:

1. admission: at most ``queue_limit`` requests are in the server at once, the others get 503
   with ``Retry-After``; this bounds memory (each holds at most ``max_upload_bytes``);
2. the body is read with a cap (413), parsed in memory (:mod:`iem.serve.forms`), decoded in a
   worker thread with the decompression-bomb guard (413) and shrunk to the working size;
3. the working image joins the batching queue (:mod:`iem.serve.batching`) and comes back as a
   mask at the working size;
4. the mask is brought to the photo's size with the guided upsampling, the marks are applied
   at full resolution and the PNG is encoded, in a worker thread.

All of it runs under the per-request time limit (504). A failure becomes an HTTP error with a
one-line reason; nothing a request sends can stop the server.
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Dict, Hashable, Optional, Tuple

import anyio
import numpy as np
import torch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import iem
from iem.api import photo_mask
from iem.config import DEFAULT_PRESET, PRESETS, IEMConfig
from iem.core.guidance import guidance_at, pin_full
from iem.imaging import to_tensor
from iem.io.read import ImageReadError, read_image, read_marks
from iem.io.render import cutout_image, mask_png
from iem.io.working import working_image
from iem.pipeline import DEFAULT_SIZE, Segmenter
from iem.serve.batching import Batcher, Job
from iem.serve.forms import RequestError, Upload, parse_upload, read_body
from iem.serve.openapi import openapi_document

STATIC = Path(__file__).resolve().parent / "static"
#: What ``output`` may ask for: the 0/255 mask or the RGBA cut-out, both PNG at the photo's size.
OUTPUTS = ("mask", "cutout")
#: The multipart field of the photo (any other file field than the marks is accepted too).
IMAGE_FIELD = "file"
MARK_FIELDS = ("foreground", "background")
#: zlib level of the cut-out PNGs sent back: level 1 is several times faster than the default on a large
#: photo, for files about a fifth larger.
PNG_COMPRESSION = 1


@dataclass(frozen=True)
class ServeSettings:
    """Limits and defaults of the server (``iem serve --help`` lists them as options).

    Attributes:
        size: working resolution (shorter side) of IEM.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        preset: preset used when a request names none.
        max_upload_bytes: largest request body (413 above).
        max_pixels: largest photo or marks image, in pixels (413 above: decompression bombs).
        queue_limit: requests in the server at once, waiting or computing (503 above).
        max_batch: images per :func:`iem.segment_batch` call.
        batch_wait_s: how long the queue waits for more requests to batch with the first.
        timeout_s: time limit of one request, from admission to the response (504).
        retry_after_s: the ``Retry-After`` sent with 503.
    """

    size: int = DEFAULT_SIZE
    device: str = "auto"
    preset: str = DEFAULT_PRESET
    max_upload_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 50_000_000
    queue_limit: int = 32
    max_batch: int = 8
    batch_wait_s: float = 0.02
    timeout_s: float = 120.0
    retry_after_s: int = 2

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {list(PRESETS)}")
        for name in ("size", "max_upload_bytes", "max_pixels", "queue_limit", "max_batch", "retry_after_s"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.timeout_s <= 0 or self.batch_wait_s < 0:
            raise ValueError("timeout_s must be > 0 and batch_wait_s >= 0")


@dataclass
class Options:
    """The settings of one request (query string and form fields)."""

    output: str
    preset: str
    box: Optional[Tuple[float, ...]]

    @classmethod
    def parse(cls, values: Dict[str, str], default_preset: str) -> "Options":
        output = values.get("output", "mask")
        if output not in OUTPUTS:
            raise RequestError(400, f"output must be one of {list(OUTPUTS)}, got {output!r}")
        preset = values.get("preset") or default_preset
        if preset not in PRESETS:
            raise RequestError(400, f"unknown preset {preset!r}; choose one of {list(PRESETS)}")
        box = None
        if values.get("box"):
            try:
                box = tuple(float(part) for part in values["box"].split(","))
            except ValueError:
                raise RequestError(400, f"box must be four numbers x0,y0,x1,y1, got {values['box']!r}") from None
            if len(box) != 4:
                raise RequestError(400, f"box must be four numbers x0,y0,x1,y1, got {values['box']!r}")
        return cls(output, preset, box)


@dataclass
class Prepared:
    """A decoded request, ready for the queue and for the finishing step."""

    photo: Any
    marks: Dict[str, Optional[np.ndarray]]
    job: Job


def _read(data: bytes, what: str, settings: ServeSettings, min_side: Optional[int] = None, marks: bool = False) -> Any:
    try:
        if marks:
            return read_marks(data, max_pixels=settings.max_pixels, name=what)
        return read_image(data, max_pixels=settings.max_pixels, min_side=min_side, name=what)
    except ImageReadError as err:
        status = 413 if err.reason.startswith("decompression bomb") else 415 if "not a recognised" in err.reason else 400
        raise RequestError(status, str(err)) from None


def prepare(upload: Upload, options: Options, settings: ServeSettings) -> Prepared:
    """Decode the photo and marks, and build the working-size job (runs in a worker thread)."""
    images = [name for name in upload.files if name not in MARK_FIELDS]
    if not images or not upload.files[images[0]]:
        raise RequestError(400, f"no image: send it as the request body or as the multipart file field {IMAGE_FIELD!r}")
    data = upload.files[IMAGE_FIELD if IMAGE_FIELD in images else images[0]]
    small = _read(data, "the image", settings, min_side=settings.size)
    try:
        working = working_image(small, settings.size, "the image")
    except ImageReadError as err:
        raise RequestError(400, str(err)) from None
    photo = _read(data, "the image", settings)
    marks = {
        side: None if side not in upload.files else _read(upload.files[side], f"the {side} marks", settings, marks=True)
        for side in MARK_FIELDS
    }
    try:
        init, fixed = guidance_at((photo.height, photo.width), working.shape[:2], options.box, marks["foreground"], marks["background"])
    except ValueError as err:
        raise RequestError(400, str(err)) from None
    key = (options.preset, working.shape[0], working.shape[1], init is not None)
    return Prepared(photo, marks, Job(key, to_tensor(working), init, fixed))


def finish(prepared: Prepared, soft: torch.Tensor, output: str) -> bytes:
    """The PNG answer at the photo's resolution (runs in a worker thread)."""
    config = IEMConfig.preset(prepared.job.key[0])  # the photo path's GrabCut pass, as iem segment has it
    mask = photo_mask(prepared.photo, soft.numpy(), config)
    mask = pin_full(mask, prepared.marks["foreground"], prepared.marks["background"])
    if output == "mask":
        return mask_png(mask)
    buffer = io.BytesIO()
    cutout_image(prepared.photo, mask).save(buffer, format="PNG", compress_level=PNG_COMPRESSION)
    return buffer.getvalue()


class Service:
    """The server's state: settings, the IEM segmenters by preset, admission count, the queue."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.segmenters: Dict[str, Segmenter] = {}
        self.admitted = 0
        self.served = 0
        self.batcher = Batcher(self._compute, settings.max_batch, settings.batch_wait_s)

    def _compute(self, key: Hashable, images: torch.Tensor, init: Optional[torch.Tensor], fixed: Optional[torch.Tensor]) -> torch.Tensor:
        preset = key[0]  # type: ignore[index]
        if preset not in self.segmenters:
            self.segmenters[preset] = Segmenter(IEMConfig.preset(preset), self.settings.device)
        return self.segmenters[preset].soft_masks(images, init, fixed)

    async def segment(self, request: Request) -> Response:
        settings = self.settings
        if self.admitted >= settings.queue_limit:
            raise RequestError(503, f"the server is busy ({self.admitted} requests in progress); retry later",
                               {"Retry-After": str(settings.retry_after_s)})
        self.admitted += 1
        started = time.perf_counter()
        try:
            with anyio.fail_after(settings.timeout_s):
                body = await read_body(request.stream(), request.headers.get("content-length"), settings.max_upload_bytes)
                upload = parse_upload(body, request.headers.get("content-type", ""), IMAGE_FIELD)
                del body
                options = Options.parse({**request.query_params, **upload.fields}, settings.preset)
                prepared = await anyio.to_thread.run_sync(prepare, upload, options, settings, abandon_on_cancel=True)
                del upload
                outcome = await self.batcher.submit(prepared.job)
                png = await anyio.to_thread.run_sync(finish, prepared, outcome.soft, options.output, abandon_on_cancel=True)
        except TimeoutError:
            raise RequestError(504, f"the request took longer than the limit of {settings.timeout_s:g} s") from None
        finally:
            self.admitted -= 1
        self.served += 1
        headers = {"X-IEM-Batch": str(outcome.batch), "X-IEM-Seconds": f"{time.perf_counter() - started:.3f}"}
        return Response(png, media_type="image/png", headers=headers)


def _error(status: int, reason: str, headers: Optional[Dict[str, str]] = None) -> JSONResponse:
    return JSONResponse({"error": reason, "status": status}, status_code=status, headers=headers)


def _lifespan(service: Service) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await service.batcher.close()

    return lifespan


def create_app(settings: Optional[ServeSettings] = None) -> Starlette:
    """The ASGI app; ``uvicorn.run(create_app(), host="127.0.0.1", port=8000)`` serves it."""
    service = Service(settings or ServeSettings())

    async def segment(request: Request) -> Response:
        try:
            return await service.segment(request)
        except RequestError as err:
            return _error(err.status, err.reason, err.headers)
        except Exception as err:  # the server stays up; the client gets the one-line reason
            text = str(err).strip().splitlines()[0] if str(err).strip() else ""
            return _error(500, f"segmentation failed ({type(err).__name__}{': ' + text if text else ''})")

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "in_progress": service.admitted, "served": service.served,
                             "batches": service.batcher.batches, "version": iem.__version__})

    async def info(request: Request) -> JSONResponse:
        return JSONResponse({"presets": list(PRESETS), "outputs": list(OUTPUTS), "settings": asdict(service.settings)})

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(openapi_document(service.settings, list(PRESETS), list(OUTPUTS)))

    async def page(request: Request) -> FileResponse:
        return FileResponse(STATIC / "index.html")

    async def docs(request: Request) -> FileResponse:
        return FileResponse(STATIC / "docs.html")

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/docs", docs),
            Route("/healthz", healthz),
            Route("/api/info", info),
            Route("/api/segment", segment, methods=["POST"]),
            Route("/openapi.json", openapi),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        lifespan=_lifespan(service),
    )
    app.state.service = service
    return app
