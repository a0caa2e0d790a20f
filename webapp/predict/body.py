"""Read a prediction request's body: a bounded multipart form, or the image itself.

A prediction body is small and bounded, so it is read whole and split with bytes searches instead of
Werkzeug's streaming form parser, which compiles two regular expressions for every new boundary (a
millisecond of a request that is otherwise a few milliseconds of work).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from werkzeug.http import parse_options_header

from engine.errors import StudioError
from webapp.multipart import form_boundary

# The media types of a body that is the image itself (as the API document names them), and their prefixes.
RAW_MEDIA = ("image/*", "application/octet-stream")
RAW_TYPES = tuple(media.removesuffix("*") for media in RAW_MEDIA)
MAX_PARTS = 16


@dataclass
class PredictBody:
    image: bytes | None
    fields: dict[str, str] = field(default_factory=dict)


def parse_body(data: bytes, content_type: str | None) -> PredictBody:
    """The image and the text fields of a prediction request; raw image bodies have no fields."""
    mimetype, boundary = form_boundary(content_type)
    if mimetype.startswith(RAW_TYPES):
        return PredictBody(data)
    if mimetype != "multipart/form-data":
        raise StudioError("missing_field", "Send the image as the multipart field 'image' (or as the body, with "
                                           "an image Content-Type).", field="image")
    if boundary is None:
        raise StudioError("invalid_body", "The multipart body is malformed (no usable boundary).")
    return PredictBody(*_parts(data, boundary))


def _parts(data: bytes, boundary: bytes) -> tuple[bytes | None, dict[str, str]]:
    delimiter = b"--" + boundary
    if data.startswith(delimiter):
        position = len(delimiter)
    else:  # a preamble before the first delimiter is allowed and ignored
        found = data.find(b"\r\n" + delimiter)
        if found < 0:
            raise StudioError("invalid_body", "The multipart body is malformed (the boundary never appears).")
        position = found + 2 + len(delimiter)
    image, fields = None, {}
    for _ in range(MAX_PARTS):
        if data.startswith(b"--", position):
            return image, fields
        position = data.find(b"\r\n", position)  # transport padding may precede the line break
        if position < 0:
            raise StudioError("invalid_body", "The multipart body is malformed (a part has no headers).")
        header_end = data.find(b"\r\n\r\n", position)
        if header_end < 0:
            raise StudioError("invalid_body", "The multipart body is malformed (a part's headers never end).")
        headers = _headers(data[position + 2:header_end])
        # an empty part may end right after its headers, the blank line's break then starting the delimiter
        end = data.find(b"\r\n" + delimiter, header_end + 2)
        if end < 0:
            raise StudioError("invalid_body", "The multipart body is malformed (the closing boundary is missing).")
        start = min(header_end + 4, end)
        disposition, params = parse_options_header(headers.get("content-disposition", ""))
        name = params.get("name")
        if disposition == "form-data" and name == "image" and "filename" in params and image is None:
            image = data[start:end]
        elif disposition == "form-data" and name and "filename" not in params and end - start <= 1000:
            try:
                fields.setdefault(name, data[start:end].decode("utf-8"))
            except UnicodeDecodeError:
                raise StudioError("invalid_field", "'%(name)s' must be UTF-8 text.", {"name": name[:40]},
                                  field=name[:40]) from None
        position = end + 2 + len(delimiter)
    raise StudioError("invalid_body", "The multipart body is malformed (more than %(max)s parts).", {"max": MAX_PARTS})


def _headers(block: bytes) -> dict[str, str]:
    headers = {}
    if not block:
        return headers
    for line in block.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon:
            raise StudioError("invalid_body", "The multipart body is malformed (a header line without a colon).")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("utf-8", "replace")
    return headers
