"""The preprocessing rule shared by training and serving: fast paths give the textbook results."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from engine.bundle import IMAGENET_MEAN, IMAGENET_STD, normalize
from engine.images import resize_shorter_and_crop, to_rgb


def textbook_normalize(batch: np.ndarray) -> np.ndarray:
    scaled = batch.astype(np.float64) / 255
    return ((scaled - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)).transpose(0, 3, 1, 2)


def resize_then_crop(image: Image.Image, shorter: int) -> np.ndarray:
    image.draft("RGB", (shorter, shorter))
    image = to_rgb(image)
    width, height = image.size
    scale = shorter / min(width, height)
    size = (max(shorter, round(width * scale)), max(shorter, round(height * scale)))
    image = image.resize(size, Image.BILINEAR)
    left, top = (size[0] - shorter) // 2, (size[1] - shorter) // 2
    return np.asarray(image.crop((left, top, left + shorter, top + shorter)))


def encoded(width: int, height: int, mode: str, orientation: int = 1) -> bytes:
    rng = np.random.default_rng(width * height)
    image = Image.fromarray(rng.integers(0, 255, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8))
    image = image.resize((width, height), Image.BICUBIC)
    image = image.quantize(64) if mode == "P" else image.convert(mode)
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG" if mode in ("RGB", "L") else "PNG", exif=exif)
    return out.getvalue()


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_normalize_matches_the_textbook_formula(dtype):
    batch = np.random.default_rng(0).integers(0, 256, (3, 17, 11, 3)).astype(dtype)
    out = normalize(batch)
    assert out.dtype == np.float32 and out.shape == (3, 3, 17, 11) and out.flags.c_contiguous
    assert np.abs(out - textbook_normalize(batch)).max() < 1e-5


@pytest.mark.parametrize("width,height", [(1024, 768), (300, 301), (999, 97), (50, 700), (257, 256)])
@pytest.mark.parametrize("mode", ["RGB", "P", "RGBA", "L"])
@pytest.mark.parametrize("shorter", [224, 37])
def test_resampling_only_the_crop_gives_the_pixels_of_resize_then_crop(width, height, mode, shorter):
    data = encoded(width, height, mode)
    fast = resize_shorter_and_crop(Image.open(io.BytesIO(data)), shorter).astype(int)
    reference = resize_then_crop(Image.open(io.BytesIO(data)), shorter).astype(int)
    assert fast.shape == (shorter, shorter, 3)
    assert np.abs(fast - reference).max() <= 1  # rounding of the last bit only


def test_exif_orientation_is_applied_before_the_crop():
    upright = resize_shorter_and_crop(Image.open(io.BytesIO(encoded(400, 200, "RGB"))), 64)
    rotated_file = Image.open(io.BytesIO(encoded(400, 200, "RGB", orientation=6)))
    rotated = resize_shorter_and_crop(rotated_file, 64)
    assert rotated.shape == upright.shape == (64, 64, 3)
    # Orientation 6 means "rotate 90 degrees clockwise to view": the stored pixels are not what is seen.
    stored = Image.open(io.BytesIO(encoded(400, 200, "RGB")))
    stored.draft("RGB", (64, 64))  # the same reduced DCT scale as the rule decodes at
    seen = stored.transpose(Image.Transpose.ROTATE_270)
    assert np.abs(rotated.astype(int) - resize_then_crop(seen, 64).astype(int)).max() <= 1
