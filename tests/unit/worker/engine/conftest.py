"""Tiny solid-colour datasets on disk for engine tests."""
from __future__ import annotations

import hashlib

import pytest

from tests.images import noisy_image
from worker.engine.data import Sample
from worker.engine.trainer import TrainData

COLORS = [(220, 40, 40), (40, 200, 60), (40, 60, 220)]


def make_samples(folder, per_class: int, seed_offset: int = 0, size=(40, 40)) -> list[Sample]:
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for label, color in enumerate(COLORS):
        for n in range(per_class):
            data = noisy_image(seed_offset + label * 1000 + n, color, size=size)
            path = folder / f"{label}_{n}.png"
            path.write_bytes(data)
            samples.append(Sample(str(path), label, hashlib.sha256(data).hexdigest()))
    return samples


@pytest.fixture
def colour_data(tmp_path) -> TrainData:
    return TrainData(["red", "green", "blue"], make_samples(tmp_path / "train", 30),
                     make_samples(tmp_path / "val", 4, seed_offset=500))
