"""Check that bytes are an image we accept (the engine's rule), and make its thumbnail."""
from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from engine.images import ACCEPTED_FORMATS, open_checked, upright_rgb

THUMB_SIZE = 192


@dataclass
class CheckedImage:
    format: str
    extension: str
    width: int
    height: int
    thumbnail: bytes


def check_image(data: bytes, max_pixels: int) -> CheckedImage:
    """Decode `data` completely (by content, not name) and return its facts and thumbnail.

    Raises engine.images.ImageRejected with the reason.
    """
    image, (width, height) = open_checked(data, max_pixels, draft=THUMB_SIZE * 2)
    with image:
        return CheckedImage(image.format, ACCEPTED_FORMATS[image.format], width, height, _thumbnail(image))


def _thumbnail(image: Image.Image) -> bytes:
    thumb = upright_rgb(image)
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=82)
    return out.getvalue()
