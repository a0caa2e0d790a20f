"""Images in, pixels out: the one inspection rule for uploads (ingest and prediction) and RGB decoding.

Pillow only. Every refusal is an ImageRejected with a stable code and a message for a person.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from engine.errors import StudioError

ACCEPTED_FORMATS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "BMP": "bmp", "WEBP": "webp"}
# What a refusal names as accepted: "JPEG, PNG, GIF, BMP" and "WEBP" (the message puts the "or" between).
_FORMATS = {"formats": ", ".join(list(ACCEPTED_FORMATS)[:-1]), "last": list(ACCEPTED_FORMATS)[-1]}
# A longer side beyond 20x the shorter is a strip, not a photo: resizing its shorter side to the model's
# size would make the longer side (and the memory and time) explode.
MAX_ASPECT_RATIO = 20
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)


class ImageRejected(StudioError):
    """Bytes that are not an image the studio accepts."""


def _corrupt() -> ImageRejected:
    return ImageRejected("image_corrupt", "The image is truncated or corrupt.")


def open_checked(data: bytes, max_pixels: int, draft: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Open `data` by its content, check format and pixel count before decoding, then decode it fully.

    Returns the decoded image and its stored size. With `draft`, a large JPEG is decoded at a reduced
    DCT scale whose shorter side stays >= `draft`; the whole stream is still read, so truncation is
    still caught.
    """
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageRejected("not_an_image", "The file is not an image; send a %(formats)s or %(last)s.",
                            _FORMATS) from None
    except Image.DecompressionBombError:
        raise ImageRejected("image_too_large", "The image has too many pixels to be decoded safely.") from None
    except _DECODE_ERRORS:
        raise _corrupt() from None
    if image.format not in ACCEPTED_FORMATS:
        raise ImageRejected("unsupported_image_format",
                            "%(format)s images are not supported; send a %(formats)s or %(last)s.",
                            {"format": image.format, **_FORMATS})
    width, height = image.size
    check_geometry(width, height, max_pixels)
    try:
        if draft:
            image.draft("RGB", (draft, draft))
        image.load()
    except Image.DecompressionBombError:
        raise ImageRejected("image_too_large", "The image has too many pixels to be decoded safely.") from None
    except _DECODE_ERRORS:
        raise _corrupt() from None
    return image, (width, height)


def check_geometry(width: int, height: int, max_pixels: int | None = None) -> None:
    """Bound the work an image implies before it is decoded or resized: its pixels and its aspect ratio."""
    if max_pixels is not None and width * height > max_pixels:
        raise ImageRejected("image_too_large", "The image is %(width)sx%(height)s pixels; the limit is "
                                               "%(megapixels)s megapixels.",
                            {"width": width, "height": height, "megapixels": format(max_pixels / 1e6, "g")})
    if min(width, height) < 1 or max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise ImageRejected("image_aspect_ratio", "The image is %(width)sx%(height)s pixels; an image whose longer "
                                                  "side is over %(ratio)s times its shorter side is not accepted.",
                            {"width": width, "height": height, "ratio": MAX_ASPECT_RATIO})


ORIENTATION_TAG = ExifTags.Base.Orientation


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB on a white background for transparent images; RGB for every other mode."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def upright_rgb(image: Image.Image) -> Image.Image:
    """The image as a person sees it: EXIF orientation applied, in RGB (the same object when it already is)."""
    if image.getexif().get(ORIENTATION_TAG, 1) != 1:
        image = ImageOps.exif_transpose(image)
    return image if image.mode == "RGB" else to_rgb(image)


def upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of the image as a person sees it (EXIF orientations 5-8 turn it a quarter)."""
    width, height = image.size
    return (height, width) if image.getexif().get(ORIENTATION_TAG, 1) in (5, 6, 7, 8) else (width, height)


def resize_shorter_and_crop(image: Image.Image, shorter: int) -> np.ndarray:
    """Upright RGB, shorter side resized to `shorter` (bilinear), centre square crop: uint8 HxWx3.

    JPEGs are decoded at a reduced DCT scale first (Pillow's draft mode) when they are much larger.
    Only the source region under the crop is resampled: the same pixels as resizing the whole image and
    cropping, without computing the margins. Raises ImageRejected for a strip whose resize would be unbounded.
    """
    check_geometry(*image.size)
    image.draft("RGB", (shorter, shorter))
    image = upright_rgb(image)
    width, height = image.size
    scale = shorter / min(width, height)
    size = (max(shorter, round(width * scale)), max(shorter, round(height * scale)))
    left, top = (size[0] - shorter) // 2, (size[1] - shorter) // 2
    step_x, step_y = width / size[0], height / size[1]
    box = (left * step_x, top * step_y, (left + shorter) * step_x, (top + shorter) * step_y)
    return np.asarray(image.resize((shorter, shorter), Image.BILINEAR, box=box), dtype=np.uint8)
