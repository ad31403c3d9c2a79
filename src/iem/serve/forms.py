"""The body of ``POST /api/segment``: read with a size cap, multipart parsed in memory.

Uploads never touch the disk: the body is held in memory (at most ``max_upload_bytes`` per
request, and at most the queue limit of requests at once), so no temporary file is ever
left behind, whatever happens to the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Dict, Mapping, Optional

from python_multipart.multipart import MultipartParser, parse_options_header


class RequestError(Exception):
    """A request the server refuses: an HTTP status and a one-line reason."""

    def __init__(self, status: int, reason: str, headers: Optional[Mapping[str, str]] = None) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason
        self.headers = dict(headers or {})


@dataclass
class Upload:
    """What a request sent: the files by field name and the text fields."""

    files: Dict[str, bytes] = field(default_factory=dict)
    fields: Dict[str, str] = field(default_factory=dict)


async def read_body(chunks: AsyncIterator[bytes], declared: Optional[str], limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    too_large = RequestError(413, f"the upload is larger than the limit of {limit:,} bytes")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    parts, total = [], 0
    async for chunk in chunks:
        total += len(chunk)
        if total > limit:
            raise too_large
        parts.append(chunk)
    return b"".join(parts)


def parse_upload(body: bytes, content_type: str, image_field: str) -> Upload:
    """A multipart/form-data body as an :class:`Upload`; any other body is the image itself."""
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        return Upload(files={image_field: body} if body else {})
    boundary = params.get(b"boundary")
    if not boundary:
        raise RequestError(400, "multipart/form-data without a boundary")
    upload = Upload()
    state: Dict[str, object] = {}

    def on_part_begin() -> None:
        state.update(headers={}, data=[], header_field=b"", header_value=b"")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header_field"] = state["header_field"] + data[start:end]  # type: ignore[operator]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["header_value"] = state["header_value"] + data[start:end]  # type: ignore[operator]

    def on_header_end() -> None:
        state["headers"][bytes(state["header_field"]).lower()] = state["header_value"]  # type: ignore[index]
        state.update(header_field=b"", header_value=b"")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        state["data"].append(data[start:end])  # type: ignore[attr-defined]

    def on_part_end() -> None:
        disposition, options = parse_options_header(state["headers"].get(b"content-disposition", b""))  # type: ignore[attr-defined]
        name = options.get(b"name", b"").decode("utf-8", "replace")
        content = b"".join(state["data"])  # type: ignore[arg-type]
        if b"filename" in options:
            upload.files[name] = content
        else:
            upload.fields[name] = content.decode("utf-8", "replace")

    callbacks = {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_part_data": on_part_data, "on_part_end": on_part_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except Exception as err:  # python-multipart signals malformed bodies with several types
        raise RequestError(400, f"malformed multipart body ({err})") from None
    return upload
