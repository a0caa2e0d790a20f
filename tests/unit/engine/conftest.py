"""A tiny colour dataset on disk for engine tests."""
from __future__ import annotations

import pytest

from engine.trainer import TrainData
from tests.images import make_samples


@pytest.fixture
def colour_data(tmp_path) -> TrainData:
    return TrainData(["red", "green", "blue"], make_samples(tmp_path / "train", 30),
                     make_samples(tmp_path / "val", 4, seed_offset=500))
