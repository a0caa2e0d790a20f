"""Image decoding shared by ingest, training and the bundle's preprocessing rule (Pillow only)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB on a white background for transparent images; RGB for every other mode."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def resize_shorter_and_crop(image: Image.Image, shorter: int) -> np.ndarray:
    """Upright RGB, shorter side resized to `shorter` (bilinear), centre square crop: uint8 HxWx3.

    JPEGs are decoded at a reduced DCT scale first (Pillow's draft mode) when they are much larger.
    """
    image.draft("RGB", (shorter, shorter))
    image = to_rgb(ImageOps.exif_transpose(image))
    width, height = image.size
    scale = shorter / min(width, height)
    size = (max(shorter, round(width * scale)), max(shorter, round(height * scale)))
    image = image.resize(size, Image.BILINEAR)
    left, top = (size[0] - shorter) // 2, (size[1] - shorter) // 2
    return np.asarray(image.crop((left, top, left + shorter, top + shorter)), dtype=np.uint8)


def load_square(path: str, shorter: int) -> np.ndarray:
    with Image.open(path) as image:
        return resize_shorter_and_crop(image, shorter)
