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
from typing import Callable, Iterator

import numpy as np
import paddle
from paddle import nn

from engine.backbones import BACKBONES
from engine.data import Sample


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
def head_inputs(backbone: str, model: nn.Layer, batches: Iterator[np.ndarray]) -> np.ndarray:
    """What the head receives for each image of `batches` (NCHW float32), from the frozen trunk."""
    head = getattr(model, BACKBONES[backbone].head[0])
    captured: list[np.ndarray] = []
    hook = head.register_forward_pre_hook(lambda layer, inputs: captured.append(inputs[0].numpy()))
    model.eval()
    try:
        for batch in batches:
            model(paddle.to_tensor(batch))
    finally:
        hook.remove()
    return np.concatenate(captured)


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
