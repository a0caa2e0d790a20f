"""Training data: a decode-once image cache, augmentation on uint8 arrays, and batches."""
from __future__ import annotations

import logging
import os
import queue
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from engine.augment import Policy, mix_batch, rand_augment, random_erasing
from engine.bundle import Preprocess, center_crop, normalize

log = logging.getLogger(__name__)
AUGMENT_THREADS = max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class Sample:
    path: str
    label: int
    key: str  # content hash: the cache key, so jobs and datasets share decoded images


class ImageCache:
    """Each image decoded once per decode size (the bundle's `Preprocess.square`), kept as raw uint8 files."""

    def __init__(self, root: Path | str, preprocess: Preprocess) -> None:
        self.preprocess = preprocess
        self.side = preprocess.decode_size
        self.root = Path(root) / str(self.side)
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def _file(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.u8"

    def get(self, sample: Sample) -> np.ndarray:
        path = self._file(sample.key)
        expected = self.side * self.side * 3
        try:
            data = np.fromfile(path, dtype=np.uint8)
            if data.size == expected:
                self._count(hit=True)
                return data.reshape(self.side, self.side, 3)
        except OSError:
            pass
        with Image.open(sample.path) as image:
            array = self.preprocess.square(image)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.part")
        array.tofile(partial)
        os.replace(partial, path)
        self._count(hit=False)
        return array

    def _count(self, hit: bool) -> None:
        with self._lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1

    def load_all(self, samples: list[Sample], progress: Callable[[int, int], None] | None = None,
                 threads: int = 2) -> np.ndarray:
        """All samples as one N x side x side x 3 uint8 array (decoding misses in threads)."""
        out = np.empty((len(samples), self.side, self.side, 3), dtype=np.uint8)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for index, array in enumerate(pool.map(self.get, samples)):
                out[index] = array
                if progress and (index % 32 == 31 or index == len(samples) - 1):
                    progress(index + 1, len(samples))
        return out


def random_resized_crop(image: np.ndarray, size: int, rng: np.random.Generator,
                        scale=(0.35, 1.0), ratio=(3 / 4, 4 / 3)) -> np.ndarray:
    side = image.shape[0]
    for _ in range(10):
        area = side * side * rng.uniform(*scale)
        aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
        width, height = int(round(np.sqrt(area * aspect))), int(round(np.sqrt(area / aspect)))
        if 0 < width <= side and 0 < height <= side:
            left, top = rng.integers(0, side - width + 1), rng.integers(0, side - height + 1)
            break
    else:
        left, top, width, height = 0, 0, side, side
    box = (int(left), int(top), int(left + width), int(top + height))
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR, box=box))


def color_jitter(batch: np.ndarray, rng: np.random.Generator, strength: float = 0.2) -> np.ndarray:
    """Light brightness, contrast and saturation changes, one draw per image."""
    n = batch.shape[0]
    x = batch.astype(np.float32)
    x *= rng.uniform(1 - strength, 1 + strength, (n, 1, 1, 1)).astype(np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) * rng.uniform(1 - strength, 1 + strength, (n, 1, 1, 1)).astype(np.float32) + mean
    gray = (x @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    x = (x - gray) * rng.uniform(1 - strength, 1 + strength, (n, 1, 1, 1)).astype(np.float32) + gray
    return np.clip(x, 0, 255)


def augment_image(image: np.ndarray, size: int, rng: np.random.Generator, policy: Policy) -> np.ndarray:
    """One training image: crop (random resized, or the evaluation crop), flip, RandAugment; uint8 HWC."""
    out = random_resized_crop(image, size, rng) if policy.crop else center_crop(image, size)
    if policy.flip and rng.random() < 0.5:
        out = out[:, ::-1]
    return rand_augment(np.ascontiguousarray(out), policy.randaugment_n, policy.randaugment_m, rng)


def train_batch(images: np.ndarray, labels: np.ndarray, size: int, rng: np.random.Generator, policy: Policy,
                num_classes: int, pool: ThreadPoolExecutor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A training batch as the policy says: NCHW float32, and int64 labels or soft labels when mixed.

    Each image draws from its own generator seeded from the batch's, so the result does not depend on
    which thread handled which image."""
    seeds = rng.integers(0, 2**63 - 1, len(images))

    def one(index: int) -> np.ndarray:
        return augment_image(images[index], size, np.random.default_rng(seeds[index]), policy)

    crops = np.stack(list(pool.map(one, range(len(images))) if pool else map(one, range(len(images)))))
    batch = normalize(color_jitter(crops, rng, policy.jitter) if policy.jitter else crops)
    batch = random_erasing(batch, policy.random_erasing, rng)
    if policy.mixes:
        return mix_batch(batch, labels, num_classes, policy.mixup_alpha, policy.cutmix_alpha, rng)
    return batch, labels.astype(np.int64)


class BatchLoader:
    """Batches of (images, labels); training batches are augmented in a background thread, evaluation
    batches follow the bundle's preprocessing rule exactly."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, preprocess: Preprocess,
                 train: bool, seed: int = 0, policy: Policy | None = None, num_classes: int = 0) -> None:
        self.images, self.labels = images, labels
        self.batch_size, self.preprocess, self.train, self.seed = batch_size, preprocess, train, seed
        self.policy, self.num_classes = policy or Policy(), num_classes or int(labels.max(initial=0)) + 1

    def __len__(self) -> int:
        full, rest = divmod(len(self.labels), self.batch_size)
        return full + (1 if rest > (1 if self.train else 0) else 0)

    def _batches(self, epoch: int, pool: ThreadPoolExecutor | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.labels)) if self.train else np.arange(len(self.labels))
        for start in range(0, len(self.labels), self.batch_size):
            index = np.sort(order[start:start + self.batch_size])
            if self.train and len(index) < 2:
                continue
            images, labels = self.images[index], self.labels[index]
            if self.train:
                yield train_batch(images, labels, self.preprocess.input_size, rng, self.policy, self.num_classes, pool)
            else:
                yield self.preprocess.batch(images), labels.astype(np.int64)

    def epoch(self, epoch: int = 0, prefetch: int = 2) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Iterate one epoch, preparing the next batches while the model runs."""
        buffer: queue.Queue = queue.Queue(maxsize=prefetch)
        done = object()
        stop = threading.Event()

        def produce() -> None:
            # per-image augmentation in a small pool: Pillow releases the GIL, so heavy policies keep up
            pool = ThreadPoolExecutor(max_workers=AUGMENT_THREADS) if self.train else None
            try:
                for item in self._batches(epoch, pool):
                    if stop.is_set():
                        return
                    buffer.put(item)
            except BaseException as exc:  # surfaced in the consumer
                buffer.put(exc)
            finally:
                if pool:
                    pool.shutdown(wait=False, cancel_futures=True)
            buffer.put(done)

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        try:
            while (item := buffer.get()) is not done:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():
                try:
                    buffer.get_nowait()
                except queue.Empty:
                    thread.join(0.05)
