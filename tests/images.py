"""Tiny images and archives made on the fly for tests."""
from __future__ import annotations

import hashlib
import io
import zipfile

import numpy as np
from PIL import Image, ImageDraw

from engine.data import Sample


def image_bytes(color=(200, 30, 30), size=(32, 24), fmt="JPEG", mode="RGB", **save_args) -> bytes:
    image = Image.new(mode, size, color)
    out = io.BytesIO()
    image.save(out, fmt, **save_args)
    return out.getvalue()


def varied_image(seed: int, color=(200, 30, 30), size=(32, 24), fmt="PNG") -> bytes:
    """A distinct image per seed (so none are exact duplicates) of roughly `color`."""
    image = Image.new("RGB", size, color)
    image.putpixel((seed % size[0], (seed // size[0]) % size[1]), (seed * 37 % 256, seed * 91 % 256, 7))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def noisy_image(seed: int, color, size=(40, 40), fmt="PNG", noise: int = 40) -> bytes:
    """`color` with per-pixel noise: an easy class to learn that still has texture."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(color, dtype=np.int16) + rng.integers(-noise, noise + 1, (size[1], size[0], 3)), 0, 255)
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, fmt)
    return out.getvalue()


def class_files(classes: dict[str, int], prefix: str = "", fmt: str = "PNG", seed: int = 0) -> dict[str, bytes]:
    """{'prefix/class/img3.png': bytes} with `count` distinct images per class."""
    palette = [(220, 40, 40), (40, 200, 60), (40, 60, 220), (230, 200, 40), (160, 40, 200), (40, 200, 200)]
    files = {}
    for index, (name, count) in enumerate(classes.items()):
        for n in range(count):
            seed += 1
            files[f"{prefix}{name}/img{n}.{fmt.lower()}"] = varied_image(seed, palette[index % len(palette)], fmt=fmt)
    return files


def zip_bytes(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(path, data)
    return out.getvalue()


class _GbkZipInfo(zipfile.ZipInfo):
    """A zip entry whose name is stored in GBK without the UTF-8 flag, as Chinese Windows does."""

    def _encodeFilenameFlags(self):
        return self.filename.encode("gbk"), self.flag_bits


def gbk_zip_bytes(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            archive.writestr(_GbkZipInfo(path), data)
    return out.getvalue()


COLORS = [(220, 40, 40), (40, 200, 60), (40, 60, 220)]


def make_samples(folder, per_class: int, seed_offset: int = 0, size=(40, 40)) -> list[Sample]:
    """`per_class` noisy images of each of COLORS written under `folder`, as engine samples."""
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for label, color in enumerate(COLORS):
        for n in range(per_class):
            data = noisy_image(seed_offset + label * 1000 + n, color, size=size)
            path = folder / f"{label}_{n}.png"
            path.write_bytes(data)
            samples.append(Sample(str(path), label, hashlib.sha256(data).hexdigest()))
    return samples


def scene(seed: int, size=(64, 48)) -> Image.Image:
    """A distinct picture per seed: a few coloured shapes on a shaded background (what near-duplicate
    detection tells apart, unlike flat images that differ by a pixel)."""
    rng = np.random.default_rng(seed)
    width, height = size
    image = Image.new("RGB", size, tuple(int(value) for value in rng.integers(40, 216, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, width - 12)), int(rng.integers(0, height - 12))
        box = (x0, y0, x0 + int(rng.integers(8, width // 2)), y0 + int(rng.integers(8, height // 2)))
        colour = tuple(int(value) for value in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    return image


def encoded(image: Image.Image, fmt: str = "PNG", **save_args) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **save_args)
    return out.getvalue()


def near_copy(image: Image.Image, scale: float = 0.75, quality: int = 60) -> bytes:
    """`image` resized and re-encoded as a JPEG: another file of the same picture."""
    resized = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)
    return encoded(resized, "JPEG", quality=quality)


def scene_files(classes: dict[str, int], prefix: str = "", seed: int = 0) -> dict[str, bytes]:
    """{'prefix/class/scene3.png': bytes} with `count` distinct scenes per class."""
    files = {}
    for name, count in classes.items():
        for n in range(count):
            seed += 1
            files[f"{prefix}{name}/scene{n}.png"] = encoded(scene(seed))
    return files
