"""Training data: a decode-once image cache, augmentation on uint8 arrays, and batches."""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import numpy as np
from PIL import Image

from engine.augment import Policy, mix_batch, rand_augment, random_erasing
from engine.bundle import Preprocess, center_crop, normalize, normalizing

log = logging.getLogger(__name__)
RAM_LIMIT_BYTES = 1 << 30  # above this, a job's decoded images are memory-mapped instead of held in RAM
TOUCH_SECONDS = 3600  # a cache hit refreshes its file's mtime (the LRU clock) at most this often
READ_AHEAD = 8  # images decoded ahead of load_all's consumer, per thread
PACKS = "packs"  # <cache root>/packs: the mapped files behind large jobs' arrays


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (which containers and `taskset` narrow), else
    every CPU of the machine."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class LoaderPace:
    """How a training loader keeps up with its model: the threads that augment images, and the batches kept
    ready ahead of the model."""

    threads: int
    prefetch: int


def loader_pace(gpu: bool, cpus: int | None = None) -> LoaderPace:
    """On the CPU the model's math needs the cores too: at most 4 threads augment, 2 batches ahead. On a GPU
    the CPUs have nothing to do but feed it: every usable CPU (`cpus`, by default `usable_cpus()`) but the
    one running the training loop augments, and 4 batches wait ready, absorbing strong augmentation's
    uneven batch times. Several GPU workers on one host share its CPUs unless each is given its own
    (compose `cpuset`), which the affinity mask then shows."""
    cpus = cpus or usable_cpus()
    if gpu:
        return LoaderPace(threads=max(1, cpus - 1), prefetch=4)
    return LoaderPace(threads=max(1, min(4, cpus)), prefetch=2)


def class_order(names) -> list[str]:
    """The order of a model's outputs: its dataset's class names, each once, sorted by code point. The
    trainer, the checks of a teacher or of weights to continue from, and every reader of a bundle agree
    on it."""
    return sorted(set(names))


@dataclass(frozen=True)
class Sample:
    path: str
    label: int
    key: str  # content hash: the cache key, so jobs and datasets share decoded images


class ImageCache:
    """Each image decoded once per decode size (the bundle's `Preprocess.square`), kept as raw uint8 files
    `<root>/<side>/<key[:2]>/<key>.u8`, shared by every job and data set (see `prune_cache`)."""

    def __init__(self, root: Path | str, preprocess: Preprocess, ram_limit_bytes: int = RAM_LIMIT_BYTES) -> None:
        self.preprocess = preprocess
        self.side = preprocess.decode_size
        self.base = Path(root)
        self.root = self.base / str(self.side)
        self.ram_limit_bytes = ram_limit_bytes
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def _file(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.u8"

    def get(self, sample: Sample) -> np.ndarray:
        path = self._file(sample.key)
        cached = self._read(path)
        if cached is not None:
            self._count(hit=True)
            return cached
        with Image.open(sample.path) as image:
            array = self.preprocess.square(image)
        self._write(path, array)
        self._count(hit=False)
        return array

    def _read(self, path: Path) -> np.ndarray | None:
        try:
            with open(path, "rb") as file:
                data = np.fromfile(file, dtype=np.uint8)
                _touch(file)
        except OSError:
            return None
        return data.reshape(self.side, self.side, 3) if data.size == self.side * self.side * 3 else None

    @staticmethod
    def _write(path: Path, array: np.ndarray) -> None:
        """Write to a .part file, then rename: readers see the whole file or none. A prune may remove the
        emptied folder between mkdir and open, hence the retries."""
        partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.part")
        for attempt in range(3):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                array.tofile(partial)
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        os.replace(partial, path)

    def _count(self, hit: bool) -> None:
        with self._lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1

    def load_all(self, samples: list[Sample], progress: Callable[[int, int], None] | None = None,
                 threads: int = 2) -> np.ndarray:
        """All samples as one N x side x side x 3 uint8 array (decoding misses in threads): in RAM up to
        `ram_limit_bytes`, memory-mapped above it."""
        shape = (len(samples), self.side, self.side, 3)
        with closing(self._decoded(samples, progress, threads)) as arrays:
            if int(np.prod(shape)) > self.ram_limit_bytes:
                return self._packed(shape, arrays)
            out = np.empty(shape, dtype=np.uint8)
            for index, array in enumerate(arrays):
                out[index] = array
            return out

    def _decoded(self, samples: list[Sample], progress: Callable[[int, int], None] | None,
                 threads: int) -> Iterator[np.ndarray]:
        """The samples' arrays in order, decoded in threads at most READ_AHEAD per thread ahead of the
        consumer, so a slow consumer never piles up decoded images in memory."""
        pool = ThreadPoolExecutor(max_workers=threads)
        queued = iter(samples)
        ahead = deque(pool.submit(self.get, sample) for sample in islice(queued, threads * READ_AHEAD))
        try:
            for done in range(1, len(samples) + 1):
                array = ahead.popleft().result()
                ahead.extend(pool.submit(self.get, sample) for sample in islice(queued, 1))
                yield array
                if progress and (done % 32 == 0 or done == len(samples)):
                    progress(done, len(samples))
        finally:
            pool.shutdown(cancel_futures=True)  # a failed or cancelled load decodes nothing more

    def _packed(self, shape: tuple[int, ...], arrays: Iterable[np.ndarray]) -> np.memmap:
        """`arrays` written in order to a file under packs/ that is mapped and unlinked at once: its pages sit
        in the page cache, which the kernel can drop and read back, and nothing is left behind on exit."""
        folder = self.base / PACKS
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{uuid.uuid4().hex}.pack"
        with open(path, "xb+") as file:
            try:
                os.posix_fallocate(file.fileno(), 0, int(np.prod(shape)))  # a full disk fails now, not mid-way
                packed = np.memmap(file, dtype=np.uint8, mode="r+", shape=shape)
            finally:
                path.unlink()
            _write_in_order(file, arrays)
        return packed


def _touch(file: BinaryIO) -> None:
    """Mark a cache hit as recently used, at most once per TOUCH_SECONDS (one fstat per hit otherwise)."""
    try:
        if time.time() - os.fstat(file.fileno()).st_mtime > TOUCH_SECONDS:
            os.utime(file.fileno())
    except OSError:
        pass  # read-only cache: the entry just looks older to prune_cache


def _write_in_order(file: BinaryIO, arrays: Iterable[np.ndarray]) -> None:
    # through the file, not the mapping: written pages never count as this process's memory
    file.seek(0)
    for array in arrays:
        file.write(np.ascontiguousarray(array, dtype=np.uint8).data)
    file.flush()


@dataclass(frozen=True)
class CacheEntry:
    """One file under an ImageCache root, with what pruning needs to know of it."""

    path: Path
    key: str
    size: int
    mtime: float


def cache_entries(root: Path | str) -> list[CacheEntry]:
    """Every decoded image under an ImageCache root, at every decode size."""
    entries = []
    for path in Path(root).glob("*/*/*.u8"):
        if not path.parent.parent.name.isdigit():
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:  # pruned or replaced meanwhile
            continue
        entries.append(CacheEntry(path, path.stem, stat.st_size, stat.st_mtime))
    return entries


def cache_bytes(root: Path | str) -> int:
    """Bytes of decoded images held under an ImageCache root."""
    return sum(entry.size for entry in cache_entries(root))


def prune_cache(root: Path | str, keep_keys: set[str] | None = None, max_bytes: int | None = None) -> dict:
    """Remove decoded images whose key is not in `keep_keys` (when given), then the least recently used
    ones until at most `max_bytes` remain (when given), then empty folders.

    Safe beside running jobs: writers rename whole files into place, readers hold what they opened, and a
    removed image is simply decoded again on its next miss."""
    entries = cache_entries(root)
    to_remove = [entry for entry in entries if keep_keys is not None and entry.key not in keep_keys]
    kept = sorted((entry for entry in entries if keep_keys is None or entry.key in keep_keys),
                  key=lambda entry: entry.mtime)
    total, oldest = sum(entry.size for entry in kept), 0
    while max_bytes is not None and oldest < len(kept) and total > max_bytes:
        total -= kept[oldest].size
        oldest += 1
    to_remove, kept = to_remove + kept[:oldest], kept[oldest:]
    removed = _remove(to_remove)
    _remove_empty_folders({entry.path.parent for entry in to_remove})
    return {"removed_files": len(removed), "removed_bytes": sum(entry.size for entry in removed),
            "remaining_files": len(kept), "remaining_bytes": total}


def _remove(entries: list[CacheEntry]) -> list[CacheEntry]:
    removed = []
    for entry in entries:
        try:
            entry.path.unlink()
            removed.append(entry)
        except FileNotFoundError:
            pass
    return removed


def _remove_empty_folders(folders: set[Path]) -> None:
    """Key folders, then their decode-size folders; rmdir refuses any that is not empty."""
    for folder in [*folders, *{folder.parent for folder in folders}]:
        try:
            folder.rmdir()
        except OSError:
            pass


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


GRAY = (0.299, 0.587, 0.114)  # the luma weights saturation blends towards; they sum to 1
# Pixels a thread augments per task: one large image, or several small ones, so that numpy's cost per call
# stays small beside the work on small images.
TASK_PIXELS = 1 << 15


def jitter_factors(count: int, rng: np.random.Generator, strength: float = 0.2) -> np.ndarray:
    """Light brightness, contrast and saturation changes: one draw of each per image, a `count` x 3 array."""
    draws = [rng.uniform(1 - strength, 1 + strength, count).astype(np.float32) for _ in range(3)]
    return np.stack(draws, axis=1)


def normalize_into(crops: np.ndarray, out: np.ndarray, factors: np.ndarray | None = None) -> None:
    """uint8 NHWC crops into their float32 NCHW slots `out`, normalised as `engine.bundle.normalize` does;
    with `factors` (per image: brightness b, contrast c, saturation s) colour-jittered first.

    The jitter's three steps (x *= b; x = (x - mean) * c + mean; x = (x - gray) * s + gray) are one affine
    map of the uint8 pixels, k * (s * x + (1 - s) * gray(x)) + (1 - c) * b * mean(x) with k = c * b (the
    luma weights sum to 1), so the pixels are read once per channel instead of copied to float and walked
    a dozen times; the result is clipped to 0..255 before normalising, as before."""
    if factors is None:
        normalize(crops, out=out)
        return
    scale, shift = normalizing()  # training batches are normalised as bundles are
    brightness, contrast, saturation = (factors[:, index, None, None].astype(np.float32) for index in range(3))
    k = contrast * brightness
    gray = np.multiply(crops[..., 0], GRAY[0] * k * (1 - saturation), dtype=np.float32)
    for channel in (1, 2):
        gray += np.multiply(crops[..., channel], GRAY[channel] * k * (1 - saturation), dtype=np.float32)
    gray += (1 - contrast) * brightness * crops.mean(axis=(1, 2, 3)).astype(np.float32)[:, None, None]
    for channel in range(3):
        plane = out[:, channel]
        np.multiply(crops[..., channel], k * saturation, out=plane, dtype=np.float32, casting="unsafe")
        plane += gray
        np.clip(plane, 0, 255, out=plane)
        plane *= scale[channel]
        plane += shift[channel]


def augment_image(image: np.ndarray, size: int, rng: np.random.Generator, policy: Policy) -> np.ndarray:
    """One training image: crop (random resized, or the evaluation crop), flip, RandAugment; uint8 HWC."""
    out = random_resized_crop(image, size, rng) if policy.crop else center_crop(image, size)
    if policy.flip and rng.random() < 0.5:
        out = out[:, ::-1]
    return rand_augment(np.ascontiguousarray(out), policy.randaugment_n, policy.randaugment_m, rng)


def train_batch(images: np.ndarray, labels: np.ndarray, size: int, rng: np.random.Generator, policy: Policy,
                num_classes: int, pool: ThreadPoolExecutor | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A training batch as the policy says: NCHW float32, and int64 labels or soft labels when mixed.

    Images are augmented, jittered and normalised a few at a time (about TASK_PIXELS per task, in `pool`'s
    threads when given), each from its own generator seeded from the batch's, so the result does not depend
    on which thread handled which image; the batch's generator then draws the erasing and the mixing."""
    seeds = rng.integers(0, 2**63 - 1, len(images))
    factors = jitter_factors(len(images), rng, policy.jitter) if policy.jitter else None
    batch = np.empty((len(images), 3, size, size), dtype=np.float32)
    per_task = max(1, TASK_PIXELS // (size * size))

    def task(start: int) -> None:
        stop = min(start + per_task, len(images))
        crops = np.stack([augment_image(images[index], size, np.random.default_rng(seeds[index]), policy)
                          for index in range(start, stop)])
        normalize_into(crops, batch[start:stop], None if factors is None else factors[start:stop])

    starts = range(0, len(images), per_task)
    for _ in pool.map(task, starts) if pool else map(task, starts):
        pass
    batch = random_erasing(batch, policy.random_erasing, rng)
    if policy.mixes:
        return mix_batch(batch, labels, num_classes, policy.mixup_alpha, policy.cutmix_alpha, rng)
    return batch, labels.astype(np.int64)


class BatchLoader:
    """Batches of (images, labels); training batches are augmented in a background thread, evaluation
    batches follow the bundle's preprocessing rule exactly."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, preprocess: Preprocess,
                 train: bool, seed: int = 0, policy: Policy | None = None, num_classes: int = 0,
                 pace: LoaderPace | None = None) -> None:
        self.images, self.labels = images, labels
        self.pace = pace or loader_pace(gpu=False)
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

    def epoch(self, epoch: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Iterate one epoch, preparing the next batches (`pace.prefetch` of them) while the model runs."""
        buffer: queue.Queue = queue.Queue(maxsize=self.pace.prefetch)
        done = object()
        stop = threading.Event()

        def produce() -> None:
            # per-image work in a pool: Pillow and numpy release the GIL, so heavy policies keep up
            pool = ThreadPoolExecutor(max_workers=self.pace.threads) if self.train else None
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
