"""Check that bytes are an image we accept, and make its thumbnail."""
from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from worker.engine.imageio import to_rgb

ALLOWED_FORMATS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "BMP": "bmp", "WEBP": "webp"}
THUMB_SIZE = 192


@dataclass
class CheckedImage:
    format: str
    extension: str
    width: int
    height: int
    thumbnail: bytes


class RejectedImage(Exception):
    """Bytes that are not an image we accept; the message is the reason for a person."""


def check_image(data: bytes, max_pixels: int) -> CheckedImage:
    """Decode `data` completely (by content, not name) and return its facts and thumbnail."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ALLOWED_FORMATS:
                raise RejectedImage(f"unsupported format ({image.format}); use JPEG, PNG, GIF, BMP or WEBP")
            width, height = image.size
            if width * height > max_pixels:
                raise RejectedImage(
                    f"too large ({width}x{height} pixels; the limit is {max_pixels / 1e6:.0f} megapixels)"
                )
            image.draft("RGB", (THUMB_SIZE * 2, THUMB_SIZE * 2))
            image.load()
            return CheckedImage(image.format, ALLOWED_FORMATS[image.format], width, height,
                                _thumbnail(image))
    except RejectedImage:
        raise
    except Image.DecompressionBombError as exc:
        raise RejectedImage("too large (decompression bomb protection)") from exc
    except UnidentifiedImageError as exc:
        raise RejectedImage("not an image") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise RejectedImage("truncated or corrupt image") from exc


def _thumbnail(image: Image.Image) -> bytes:
    thumb = ImageOps.exif_transpose(image)
    thumb = to_rgb(thumb)
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=82)
    return out.getvalue()

