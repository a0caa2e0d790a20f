"""Sticky assignment of clients to the candidate: stable, proportional, fewest moved on a share change."""
import random

from webapp.release.routing import BUCKETS, bucket, takes_candidate

KEYS = [f"client-{i}" for i in range(10_000)]


def test_a_key_always_lands_in_the_same_bucket():
    assert [bucket(key, 4) for key in KEYS[:100]] == [bucket(key, 4) for key in KEYS[:100]]
    assert all(0 <= bucket(key, 4) < BUCKETS for key in KEYS)


def test_the_share_of_keys_sent_to_the_candidate_is_within_three_points():
    for share in (1, 5, 25, 50):
        taken = sum(takes_candidate(key, 7, share) for key in KEYS) / len(KEYS) * 100
        assert abs(taken - share) <= 3, (share, taken)
    assert not any(takes_candidate(key, 7, 0) for key in KEYS[:500])
    assert all(takes_candidate(key, 7, 100) for key in KEYS[:500])


def test_raising_the_share_only_adds_clients_and_moves_no_more_than_needed():
    at_5 = {key for key in KEYS if takes_candidate(key, 3, 5)}
    at_25 = {key for key in KEYS if takes_candidate(key, 3, 25)}
    assert at_5 <= at_25  # nobody on the candidate goes back to production
    assert abs(len(at_25 - at_5) / len(KEYS) * 100 - 20) <= 3  # only the 20% difference moves
    at_1 = {key for key in KEYS if takes_candidate(key, 3, 1)}
    assert at_1 <= at_5


def test_each_experiment_draws_its_own_slice_of_clients():
    first = {key for key in KEYS if takes_candidate(key, 3, 25)}
    second = {key for key in KEYS if takes_candidate(key, 4, 25)}
    overlap = len(first & second) / len(first)
    assert 0.15 < overlap < 0.35  # independent draws overlap by about the share itself


def test_requests_without_a_key_are_split_at_random():
    rng = random.Random(1)
    taken = sum(takes_candidate(None, 3, 25, rng) for _ in range(10_000)) / 100
    assert abs(taken - 25) <= 3
