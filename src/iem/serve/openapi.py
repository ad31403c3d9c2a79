"""The OpenAPI 3 document of the server, written out so that it names every field exactly."""

from __future__ import annotations

from typing import Any, Dict, List

import iem


def _error(description: str) -> Dict[str, Any]:
    schema = {"type": "object", "properties": {"error": {"type": "string"}, "status": {"type": "integer"}}}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def openapi_document(settings: Any, presets: List[str], outputs: List[str]) -> Dict[str, Any]:
    """The document served at ``/openapi.json`` (rendered by the page at ``/docs``)."""
    fields = {
        "output": {"type": "string", "enum": outputs, "default": "mask",
                   "description": "mask: 8-bit PNG, 255 on the foreground; cutout: RGBA PNG, background transparent."},
        "preset": {"type": "string", "enum": presets, "default": settings.preset, "description": "IEM settings by name."},
        "box": {"type": "string", "example": "40,30,600,470",
                "description": "x0,y0,x1,y1 in the photo's pixels (x1, y1 exclusive): IEM starts from this rectangle."},
    }
    marks = {
        "foreground": {"type": "string", "format": "binary",
                       "description": "Image of the photo's size; its white pixels stay foreground."},
        "background": {"type": "string", "format": "binary",
                       "description": "Image of the photo's size; its white pixels stay background."},
    }
    multipart = {
        "type": "object",
        "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary", "description": "The photo (any format Pillow reads)."},
                       **marks, **fields},
    }
    parameters = [{"name": name, "in": "query", "required": False, "schema": schema} for name, schema in fields.items()]
    return {
        "openapi": "3.0.3",
        "info": {"title": "iem serve", "version": iem.__version__,
                 "description": "Foreground masks by Inpainting Error Maximization (IEM), guided by a box and strokes."},
        "paths": {
            "/api/segment": {
                "post": {
                    "summary": "Segment one photo",
                    "description": (
                        "The photo as a multipart file field 'file' (with optional 'foreground' and 'background' marks "
                        "images) or as the raw request body. Settings as form fields or query parameters. Requests "
                        f"arriving within {settings.batch_wait_s:g} s of each other are computed in one batch "
                        f"(at most {settings.max_batch})."
                    ),
                    "parameters": parameters,
                    "requestBody": {"required": True, "content": {
                        "multipart/form-data": {"schema": multipart},
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                        "image/*": {"schema": {"type": "string", "format": "binary"}},
                    }},
                    "responses": {
                        "200": {"description": "PNG at the photo's resolution. X-IEM-Batch: images in the batch "
                                               "that computed it; X-IEM-Seconds: time in the server.",
                                "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
                        "400": _error("Bad settings, marks of the wrong size, or an image that cannot be used."),
                        "413": _error(f"Body over {settings.max_upload_bytes:,} bytes or image over "
                                      f"{settings.max_pixels:,} pixels (decompression-bomb guard)."),
                        "415": _error("The upload is not an image."),
                        "503": _error(f"{settings.queue_limit} requests already in progress; see Retry-After."),
                        "504": _error(f"The request took longer than {settings.timeout_s:g} s."),
                    },
                }
            },
            "/healthz": {"get": {"summary": "Liveness and counters", "responses": {"200": {"description": "JSON"}}}},
            "/api/info": {"get": {"summary": "Presets, outputs and the server's limits", "responses": {"200": {"description": "JSON"}}}},
        },
    }
