"""Augmentation policies for training batches: presets, RandAugment, random erasing, Mixup and CutMix.

Per-image operations work on uint8 RGB arrays (Pillow does the geometry and colour maths); random
erasing works on the normalised batch; Mixup and CutMix mix whole batches and return soft labels
(rows that sum to 1) for the soft-label cross-entropy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

PRESETS = ("none", "light", "strong")
MAX_MAGNITUDE = 10  # RandAugment magnitudes run 0..10, as in PaddleClas and timm


@dataclass(frozen=True)
class Policy:
    """What a training batch goes through; `crop` False means the evaluation crop (the "none" preset)."""

    crop: bool = True
    flip: bool = True
    jitter: float = 0.2
    randaugment_n: int = 0
    randaugment_m: int = 0
    random_erasing: float = 0.0
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0

    @property
    def mixes(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    @property
    def needs_pixels(self) -> bool:
        """Whether any step works on the image itself (which rules out training on cached features)."""
        return bool(self.crop or self.flip or self.jitter or self.randaugment_n or self.random_erasing or self.mixes)


# The presets' own values; options given with a job override them one by one. "strong" follows the
# recipe PaddleClas and timm use for ImageNet-scale training: RandAugment 2 ops at magnitude 9, random
# erasing at 0.25, Mixup 0.2 or CutMix 1.0 (one of the two per batch).
PRESET_OPTIONS: dict[str, dict] = {
    "none": {"randaugment_n": 0, "randaugment_m": 0, "random_erasing": 0.0, "mixup_alpha": 0.0, "cutmix_alpha": 0.0},
    "light": {"randaugment_n": 0, "randaugment_m": 0, "random_erasing": 0.0, "mixup_alpha": 0.0, "cutmix_alpha": 0.0},
    "strong": {"randaugment_n": 2, "randaugment_m": 9, "random_erasing": 0.25, "mixup_alpha": 0.2, "cutmix_alpha": 1.0},
}


def policy_for(preset: str, randaugment_n: int, randaugment_m: int, random_erasing: float, mixup_alpha: float,
               cutmix_alpha: float) -> Policy:
    base = preset != "none"
    return Policy(crop=base, flip=base, jitter=0.2 if base else 0.0, randaugment_n=randaugment_n,
                  randaugment_m=randaugment_m, random_erasing=random_erasing, mixup_alpha=mixup_alpha,
                  cutmix_alpha=cutmix_alpha)


def _level(magnitude: int, high: float, rng: np.random.Generator) -> float:
    """The operation's strength for `magnitude`, with a random sign."""
    value = magnitude / MAX_MAGNITUDE * high
    return value if rng.random() < 0.5 else -value


FILL = (128, 128, 128)  # what rotations, shears and shifts uncover


def _affine(image: Image.Image, matrix: tuple) -> Image.Image:
    return image.transform(image.size, Image.AFFINE, matrix, resample=Image.BILINEAR, fillcolor=FILL)


def _op(name: str, image: Image.Image, magnitude: int, rng: np.random.Generator) -> Image.Image:
    size = image.size[0]
    if name == "identity":
        return image
    if name == "autocontrast":
        return ImageOps.autocontrast(image)
    if name == "equalize":
        return ImageOps.equalize(image)
    if name == "rotate":
        return image.rotate(_level(magnitude, 30, rng), resample=Image.BILINEAR, fillcolor=FILL)
    if name == "solarize":
        return ImageOps.solarize(image, 256 - int(magnitude / MAX_MAGNITUDE * 256))
    if name == "posterize":
        return ImageOps.posterize(image, max(1, 8 - int(magnitude / MAX_MAGNITUDE * 4)))
    if name in ("color", "contrast", "brightness", "sharpness"):
        enhancer = {"color": ImageEnhance.Color, "contrast": ImageEnhance.Contrast,
                    "brightness": ImageEnhance.Brightness, "sharpness": ImageEnhance.Sharpness}[name]
        return enhancer(image).enhance(1 + _level(magnitude, 0.9, rng))
    if name == "shear_x":
        return _affine(image, (1, _level(magnitude, 0.3, rng), 0, 0, 1, 0))
    if name == "shear_y":
        return _affine(image, (1, 0, 0, _level(magnitude, 0.3, rng), 1, 0))
    if name == "translate_x":
        return _affine(image, (1, 0, _level(magnitude, 0.45, rng) * size, 0, 1, 0))
    if name == "translate_y":
        return _affine(image, (1, 0, 0, 0, 1, _level(magnitude, 0.45, rng) * size))
    raise ValueError(f"unknown operation {name}")


OPERATIONS = ("identity", "autocontrast", "equalize", "rotate", "solarize", "posterize", "color", "contrast",
              "brightness", "sharpness", "shear_x", "shear_y", "translate_x", "translate_y")


def rand_augment(image: np.ndarray, n: int, magnitude: int, rng: np.random.Generator) -> np.ndarray:
    """RandAugment (Cubuk et al. 2020): `n` operations drawn uniformly, each at `magnitude` (0..10)."""
    if n <= 0:
        return image
    picture = Image.fromarray(image)
    for index in rng.integers(0, len(OPERATIONS), n):
        picture = _op(OPERATIONS[index], picture, magnitude, rng)
    return np.asarray(picture.convert("RGB"))


def random_erasing(batch: np.ndarray, probability: float, rng: np.random.Generator,
                   area=(0.02, 1 / 3), aspect=(0.3, 3.3)) -> np.ndarray:
    """Random erasing (Zhong et al. 2020) on a normalised NCHW batch: a rectangle of noise per chosen image."""
    if probability <= 0:
        return batch
    n, _, height, width = batch.shape
    for index in np.flatnonzero(rng.random(n) < probability):
        for _ in range(10):
            target = height * width * rng.uniform(*area)
            ratio = np.exp(rng.uniform(np.log(aspect[0]), np.log(aspect[1])))
            h, w = int(round(np.sqrt(target * ratio))), int(round(np.sqrt(target / ratio)))
            if 0 < h < height and 0 < w < width:
                top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
                batch[index, :, top:top + h, left:left + w] = rng.standard_normal((batch.shape[1], h, w))
                break
    return batch


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    out = np.zeros((len(labels), num_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


def mix_batch(batch: np.ndarray, labels: np.ndarray, num_classes: int, mixup_alpha: float,
              cutmix_alpha: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mixup (Zhang et al. 2018) or CutMix (Yun et al. 2019), one of them per batch when both are on.

    Returns the mixed NCHW batch and soft labels: lam * one-hot(y) + (1 - lam) * one-hot(y[perm]),
    with lam the share of pixels (CutMix) or of intensity (Mixup) that comes from each image."""
    targets = one_hot(labels, num_classes)
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or rng.random() < 0.5)
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    if alpha <= 0:
        return batch, targets
    lam = float(rng.beta(alpha, alpha))
    perm = rng.permutation(len(labels))
    if use_cutmix:
        _, _, height, width = batch.shape
        cut = np.sqrt(1 - lam)
        h, w = int(height * cut), int(width * cut)
        cy, cx = rng.integers(0, height), rng.integers(0, width)
        top, bottom = max(cy - h // 2, 0), min(cy + h // 2, height)
        left, right = max(cx - w // 2, 0), min(cx + w // 2, width)
        batch = batch.copy()
        batch[:, :, top:bottom, left:right] = batch[perm, :, top:bottom, left:right]
        lam = 1 - (bottom - top) * (right - left) / (height * width)
    else:
        batch = lam * batch + (1 - lam) * batch[perm]
    return batch.astype(np.float32), (lam * targets + (1 - lam) * targets[perm]).astype(np.float32)
