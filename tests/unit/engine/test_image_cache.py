"""The decode-once image cache: memory-mapped loads of large jobs, pruning, and sweeping interrupted writes."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from engine.bundle import Preprocess
from engine.data import (PACKS, READ_AHEAD, TOUCH_SECONDS, BatchLoader, ImageCache, Sample, cache_bytes, cache_entries,
                         prune_cache)
from tests.images import make_samples

PREPROCESS = Preprocess.for_input_size(28)  # decoded at 32 px
ENTRY_BYTES = 32 * 32 * 3


@pytest.fixture
def samples(tmp_path) -> list[Sample]:
    return make_samples(tmp_path / "images", 4)  # 12 images


def filled_cache(root, samples: list[Sample]) -> ImageCache:
    cache = ImageCache(root, PREPROCESS)
    cache.load_all(samples)
    return cache


def test_a_load_above_the_limit_is_memory_mapped_and_equals_the_in_ram_load(tmp_path, samples):
    root = tmp_path / "cache"
    mapped = ImageCache(root, PREPROCESS, ram_limit_bytes=1).load_all(samples)
    in_ram = ImageCache(root, PREPROCESS).load_all(samples)

    assert isinstance(mapped, np.memmap) and not isinstance(in_ram, np.memmap)
    assert mapped.shape == in_ram.shape == (12, 32, 32, 3)
    assert np.array_equal(mapped, in_ram)
    assert list((root / PACKS).iterdir()) == []  # unlinked while still mapped


def test_batches_from_a_mapped_load_equal_batches_from_ram(tmp_path, samples):
    mapped = ImageCache(tmp_path / "a", PREPROCESS, ram_limit_bytes=1).load_all(samples)
    in_ram = ImageCache(tmp_path / "b", PREPROCESS).load_all(samples)
    labels = np.array([sample.label for sample in samples])

    for train in (True, False):
        left = BatchLoader(mapped[2:], labels[2:], 4, PREPROCESS, train, seed=3)
        right = BatchLoader(in_ram[2:], labels[2:], 4, PREPROCESS, train, seed=3)
        for (x1, y1), (x2, y2) in zip(left.epoch(0), right.epoch(0), strict=True):
            assert np.array_equal(x1, x2) and np.array_equal(y1, y2)


@pytest.mark.parametrize("margin, mapped", [(0, False), (-1, True)])
def test_the_limit_is_the_array_size(tmp_path, samples, margin, mapped):
    limit = len(samples) * ENTRY_BYTES + margin
    out = ImageCache(tmp_path / "cache", PREPROCESS, ram_limit_bytes=limit).load_all(samples)
    assert isinstance(out, np.memmap) is mapped


def test_a_failed_mapped_load_leaves_no_pack(tmp_path, samples):
    broken = samples + [Sample(str(tmp_path / "missing.png"), 0, "ab" * 32)]
    with pytest.raises(FileNotFoundError):
        ImageCache(tmp_path / "cache", PREPROCESS, ram_limit_bytes=1).load_all(broken)
    assert list((tmp_path / "cache" / PACKS).iterdir()) == []


def test_a_slow_consumer_does_not_pile_up_decoded_images(tmp_path):
    samples = make_samples(tmp_path / "images", 30)  # 90 images: progress at 32, 64 and 90
    cache = ImageCache(tmp_path / "cache", PREPROCESS, ram_limit_bytes=1)
    decoded_at = {}

    def progress(done: int, total: int) -> None:
        decoded_at[done] = cache.hits + cache.misses
        time.sleep(0.2)  # ample time for the threads to decode every image if nothing held them back

    cache.load_all(samples, progress, threads=2)
    assert decoded_at[64] <= 64 + 2 * READ_AHEAD
    assert decoded_at[90] == 90


def test_prune_keeps_only_the_given_keys_and_removes_empty_folders(tmp_path, samples):
    root = tmp_path / "cache"
    filled_cache(root, samples)
    keep = {sample.key for sample in samples[:3]}
    writing = root / "32" / "zz" / "zz.u8.1234.part"  # another process's write in progress
    writing.parent.mkdir()
    writing.write_bytes(b"x")

    result = prune_cache(root, keep_keys=keep)

    assert {entry.key for entry in cache_entries(root)} == keep
    assert result == {"removed_files": 9, "removed_bytes": 9 * ENTRY_BYTES,
                      "remaining_files": 3, "remaining_bytes": 3 * ENTRY_BYTES}
    assert cache_bytes(root) == 3 * ENTRY_BYTES
    folders = {path.name for path in (root / "32").iterdir()}
    assert folders == {key[:2] for key in keep} | {"zz"}
    assert writing.exists()


def test_prune_to_a_size_removes_the_least_recently_used_first(tmp_path, samples):
    root = tmp_path / "cache"
    cache = filled_cache(root, samples)
    now = time.time()
    for age, sample in enumerate(samples):  # samples[0] is the newest
        path = cache._file(sample.key)
        os.utime(path, (now - 60 * age, now - 60 * age))

    result = prune_cache(root, max_bytes=4 * ENTRY_BYTES + 10)

    assert {entry.key for entry in cache_entries(root)} == {sample.key for sample in samples[:4]}
    assert result["removed_files"] == 8 and result["remaining_bytes"] == 4 * ENTRY_BYTES
    assert prune_cache(root, max_bytes=4 * ENTRY_BYTES)["removed_files"] == 0


def test_a_pruned_image_is_decoded_again(tmp_path, samples):
    root = tmp_path / "cache"
    before = filled_cache(root, samples).load_all(samples)
    prune_cache(root, keep_keys=set())
    assert cache_bytes(root) == 0 and not (root / "32").exists()

    cache = ImageCache(root, PREPROCESS)
    assert np.array_equal(cache.load_all(samples), before)
    assert cache.misses == len(samples) and cache.hits == 0


def test_a_hit_refreshes_the_mtime_of_an_entry_not_used_for_an_hour(tmp_path, samples):
    cache = filled_cache(tmp_path / "cache", samples)
    stale, recent = cache._file(samples[0].key), cache._file(samples[1].key)
    long_ago, a_minute_ago = time.time() - TOUCH_SECONDS - 60, time.time() - 60
    os.utime(stale, (long_ago, long_ago))
    os.utime(recent, (a_minute_ago, a_minute_ago))

    cache.get(samples[0])
    cache.get(samples[1])

    assert stale.stat().st_mtime > time.time() - 10
    assert recent.stat().st_mtime == pytest.approx(a_minute_ago)
    assert cache.hits == 2


def test_sweep_removes_only_old_partial_writes_and_packs(tmp_path, samples):
    from webapp.storage import DataDir

    folders = DataDir(tmp_path)
    root = folders.image_cache
    filled_cache(root, samples)
    entry = cache_entries(root)[0].path
    old_part, new_part = entry.with_name("old.u8.1.part"), entry.with_name("new.u8.2.part")
    old_pack = root / PACKS / "left-behind.pack"
    old_pack.parent.mkdir(exist_ok=True)
    for path in (old_part, new_part, old_pack):
        path.write_bytes(b"12345")
    two_hours_ago = time.time() - 7200
    for path in (old_part, old_pack, entry):
        os.utime(path, (two_hours_ago, two_hours_ago))

    removed = folders.sweep_leftovers(unchanged_for=3600)  # what a start-up sweep beside other hosts does

    assert sorted(removed) == sorted([old_part, old_pack])
    assert not old_part.exists() and not old_pack.exists()
    assert new_part.exists() and entry.exists()
    assert len(cache_entries(root)) == len(samples)
