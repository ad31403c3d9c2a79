"""``iem serve``: the page and the HTTP API on uvicorn; a thin shell over :mod:`iem.serve`."""

from __future__ import annotations

import ipaddress

import click

from iem.config import DEFAULT_PRESET, PRESETS

_DEVICES = ("auto", "cpu", "cuda")
_MIB = 1024 * 1024


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("serve", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on; loopback only by default.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="TCP port.")
@click.option("--preset", type=click.Choice(PRESETS), default=DEFAULT_PRESET, show_default=True,
              help="Settings used when a request names none (as in iem segment).")
@click.option("--device", type=click.Choice(_DEVICES), default="auto", show_default=True, help="Where to compute.")
@click.option("--max-upload-mb", type=click.FloatRange(min=0.01), default=25.0, show_default=True,
              help="Largest request body, in MiB (413 above).")
@click.option("--max-pixels", type=click.IntRange(min=1), default=50_000_000, show_default=True,
              help="Largest image, in pixels (413 above: the decompression-bomb guard).")
@click.option("--queue-limit", type=click.IntRange(min=1), default=32, show_default=True,
              help="Requests in the server at once; more get 503 with Retry-After.")
@click.option("--max-batch", type=click.IntRange(min=1), default=8, show_default=True,
              help="Images segmented together in one call.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=120.0, show_default=True,
              help="Time limit of one request, in seconds (504 past it).")
def serve(host: str, port: int, preset: str, device: str, max_upload_mb: float, max_pixels: int,
          queue_limit: int, max_batch: int, timeout_s: float) -> None:
    """Serve a web page and an HTTP API that segment photos with IEM.

    Open http://HOST:PORT/ for the page: drop photos, draw a box or paint foreground and
    background strokes, re-run, download the mask and the cut-out. The API is
    POST /api/segment (the photo as the body or as the multipart field 'file'; settings
    'output', 'preset', 'box' and the 'foreground' / 'background' marks images as form fields
    or query parameters); GET /healthz; the OpenAPI document at /openapi.json, shown at /docs.
    Needs the 'serve' extra: pip install 'iem[serve]'.

    \b
    Examples:
      iem serve
      iem serve --port 9000 --preset released --max-upload-mb 10
      curl -F file=@photo.jpg http://127.0.0.1:8000/api/segment -o mask.png
      curl --data-binary @photo.jpg 'http://127.0.0.1:8000/api/segment?output=cutout&box=40,30,600,470' -o cut.png
    """
    try:
        import uvicorn

        from iem.serve import ServeSettings, create_app
    except ImportError as err:
        raise click.UsageError(f"iem serve needs the 'serve' extra ({err.name} is missing): pip install 'iem[serve]'") from None
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise click.BadParameter("CUDA was requested but no CUDA GPU is available", param_hint="'--device'")
    if not _is_loopback(host):
        click.echo(f"warning: listening on {host}: anyone who can reach it can use the server (no authentication)", err=True)
    settings = ServeSettings(preset=preset, device=device, max_upload_bytes=int(max_upload_mb * _MIB),
                             max_pixels=max_pixels, queue_limit=queue_limit, max_batch=max_batch, timeout_s=timeout_s)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
