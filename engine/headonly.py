"""The fast head-only path: with a frozen pretrained backbone, every image's features are computed once
(and cached per backbone, weights, image size and image content), then the head trains on them.

The model is not rebuilt: the backbone's trunk (the children registered before its head) is swapped for
identities while the head trains, so the same layers, optimizer, checkpoints and export serve both paths.
"""
from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ContextManager, Iterator

import numpy as np
import paddle
from paddle import nn

from engine.backbones import BACKBONES
from engine.data import Sample
from engine.digest import file_digest
from engine.feed import DeviceFeed
from engine.weights import ensure_weights

if TYPE_CHECKING:  # the trainer imports this module for its training path
    from engine.trainer import Trainer


def trunk_names(backbone: str, model: nn.Layer) -> list[str]:
    """The children that run before the head, in the order the model registers (and runs) them."""
    first_head = BACKBONES[backbone].head[0]
    names = []
    for name, _ in model.named_children():
        if name == first_head:
            return names
        names.append(name)
    raise ValueError(f"{backbone} has no child named {first_head}")


@contextmanager
def on_features(backbone: str, model: nn.Layer) -> Iterator[None]:
    """Within the block the model takes the head's input (cached features) instead of images."""
    names = trunk_names(backbone, model)
    saved = {name: getattr(model, name) for name in names}
    try:
        for name in names:
            setattr(model, name, nn.Identity())
        yield
    finally:
        for name, layer in saved.items():
            setattr(model, name, layer)


@paddle.no_grad()
def head_inputs(backbone: str, model: nn.Layer, batches: Iterator[np.ndarray],
                feed: DeviceFeed | None = None) -> np.ndarray:
    """What the head receives for each image of `batches` (NCHW float32), from the frozen trunk; the batches
    reach the model's device through `feed` (the training feed; the CPU's without one)."""
    head = getattr(model, BACKBONES[backbone].head[0])
    captured: list[np.ndarray] = []
    hook = head.register_forward_pre_hook(lambda layer, inputs: captured.append(inputs[0].numpy()))
    model.eval()
    try:
        for (x,) in (feed or DeviceFeed("cpu")).batches((batch,) for batch in batches):
            model(x)
    finally:
        hook.remove()
    return np.concatenate(captured)


class CachedFeatures:
    """The head-only training path (see `engine.trainer.TrainingPath`): every step trains the head on a batch
    of cached head inputs, shuffled per epoch like images; validation runs on the cached features too."""

    head_only = True

    def __init__(self, trainer: "Trainer") -> None:
        self.trainer = trainer
        self.features: dict[str, np.ndarray] = {}

    def prepare(self) -> None:
        """Head inputs of the training and validation images, from the feature cache or computed once."""
        trainer, config = self.trainer, self.trainer.config
        cache = FeatureCache(trainer.feature_cache, config.backbone, config.image_size, self._weights_origin())
        for split, loader, samples in (("train", trainer.train_loader, trainer.data.train),
                                       ("val", trainer.val_loader, trainer.data.val)):
            def compute(indices: list[int], images=loader.images) -> np.ndarray:
                trainer.callbacks.on_phase("features", 0, len(indices))
                batch = config.batch_size
                return head_inputs(config.backbone, trainer.model, (
                    trainer.preprocess.batch(images[indices[start:start + batch]])
                    for start in range(0, len(indices), batch)), trainer.feed)
            self.features[split] = cache.load(samples, compute)
        trainer.callbacks.on_phase("features", 1, 1)

    def _weights_origin(self) -> str:
        """What the frozen trunk's weights came from: the features are valid for that origin only."""
        trainer, config = self.trainer, self.trainer.config
        if trainer.init_weights is not None:
            return file_digest(trainer.init_weights)
        return file_digest(ensure_weights(config.backbone)) if config.pretrained else f"scratch-seed{config.seed}"

    def _starts(self) -> list[int]:
        """Where each training batch starts; a last batch of one image is left out, as the image loader does."""
        size, count = self.trainer.config.batch_size, len(self.trainer.train_loader.labels)
        return [start for start in range(0, count, size) if min(size, count - start) >= 2]

    @property
    def steps(self) -> int:
        return len(self._starts())

    def batches(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        labels, size = self.trainer.train_loader.labels, self.trainer.config.batch_size
        order = np.random.default_rng([self.trainer.config.seed, epoch]).permutation(len(labels))
        for start in self._starts():
            index = np.sort(order[start:start + size])
            yield self.features["train"][index], labels[index].astype(np.int64)

    def step_inputs(self, x: paddle.Tensor, y: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor, None]:
        return x, y, None

    def validation_batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        labels, size = self.trainer.val_loader.labels, self.trainer.config.batch_size
        for start in range(0, len(labels), size):
            yield self.features["val"][start:start + size], labels[start:start + size].astype(np.int64)

    def model_input(self) -> ContextManager[None]:
        return on_features(self.trainer.config.backbone, self.trainer.model)

    def before_validation(self, first_epoch: bool) -> None:
        """Nothing to recalibrate: only the head trains, and the frozen trunk keeps its BatchNorm statistics."""


class FeatureCache:
    """Head inputs kept as float32 files, one per image, under a folder named for what produced them."""

    def __init__(self, root: Path | str, backbone: str, image_size: int, weights_digest: str) -> None:
        self.root = Path(root) / f"{backbone}-{image_size}-{weights_digest[:16]}"
        self.hits = self.misses = 0

    def _file(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.f32"

    def load(self, samples: list[Sample], compute: Callable[[list[int]], np.ndarray]) -> np.ndarray:
        """Features of every sample: read from the cache, or computed for the misses (by their indices)."""
        shape_file = self.root / "shape"
        try:
            shape = tuple(int(v) for v in shape_file.read_text().split())
        except (OSError, ValueError):
            shape = None
        found: dict[int, np.ndarray] = {}
        for index, sample in enumerate(samples if shape else []):
            try:
                data = np.fromfile(self._file(sample.key), dtype=np.float32)
            except OSError:
                continue
            if data.size == int(np.prod(shape)):
                found[index] = data.reshape(shape)
        missing = [index for index in range(len(samples)) if index not in found]
        self.hits, self.misses = len(found), len(missing)
        if missing:
            computed = compute(missing)
            shape = tuple(computed.shape[1:])
            for index, features in zip(missing, computed):
                _write(self._file(samples[index].key), np.ascontiguousarray(features, dtype=np.float32).tobytes())
                found[index] = features
            _write(shape_file, " ".join(map(str, shape)).encode())
        return np.stack([found[index] for index in range(len(samples))]).astype(np.float32)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.part")
    partial.write_bytes(data)
    os.replace(partial, path)
