"""Likely label errors: the confident-learning ranking on probabilities made here, the folds, the estimate,
and one tiny K-fold run through the trainer."""
from __future__ import annotations

import numpy as np
import pytest

from engine.config import TrainConfig
from engine.label_errors import out_of_sample_probabilities
from engine.label_ranking import (LabelIssue, class_thresholds, estimate_seconds, rank_label_issues, search_options,
                                  stratified_folds)
from engine.trainer import Trainer, TrainingCancelled
from tests.images import make_samples

TINY = dict(backbone="mobilenet_v3_small", pretrained=False, image_size=32, batch_size=4, epochs=1,
            warmup_epochs=0, augmentation="none")


def confident_model(truth: np.ndarray, classes: int, seed: int = 0, sure=()) -> np.ndarray:
    """Probabilities of a good model: 0.6 to 0.95 on the true class (0.98 for the images `sure` names), the
    rest spread at random."""
    rng = np.random.default_rng(seed)
    rest = rng.dirichlet(np.ones(classes - 1), len(truth))
    top = rng.uniform(0.6, 0.95, len(truth))
    top[list(sure)] = 0.98
    probabilities = np.empty((len(truth), classes))
    for row, (label, share) in enumerate(zip(truth, top)):
        probabilities[row] = np.insert(rest[row] * (1 - share), label, share)
    return probabilities


def test_planted_flips_rank_first_with_their_true_class():
    truth = np.repeat(np.arange(4), 50)
    flipped = np.array([3, 47, 60, 111, 150, 199])
    probabilities = confident_model(truth, 4, sure=flipped)
    given = truth.copy()
    given[flipped] = (truth[flipped] + 1) % 4
    issues = rank_label_issues(probabilities, given)
    assert sorted(issue.index for issue in issues[:len(flipped)]) == flipped.tolist()
    assert len(issues) == len(flipped)
    first = issues[0]
    assert first.given == given[first.index] and first.suggested == truth[first.index]
    assert first.given_probability == pytest.approx(probabilities[first.index, first.given])
    assert first.score == pytest.approx(first.given_probability - first.suggested_probability)
    assert [issue.score for issue in issues] == sorted(issue.score for issue in issues)


def test_a_clean_set_gives_no_issues():
    truth = np.repeat(np.arange(3), 40)
    assert rank_label_issues(confident_model(truth, 3, seed=1), truth) == []


def test_ranking_is_deterministic_and_ties_go_by_index():
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.2, 0.8], [0.2, 0.8], [0.9, 0.1]])
    labels = np.array([0, 0, 1, 1, 1])
    issues = rank_label_issues(probabilities, labels)
    assert issues == [LabelIssue(4, 1, 0, 0.1, 0.9, pytest.approx(-0.8))]
    assert rank_label_issues(probabilities, labels) == issues
    tied = rank_label_issues(np.array([[0.2, 0.8], [0.2, 0.8], [0.9, 0.1], [0.9, 0.1]]), np.array([0, 0, 0, 1]))
    assert [issue.index for issue in tied] == [3, 0, 1]


def test_an_image_the_model_prefers_in_another_class_is_doubted_below_confident_ones():
    probabilities = np.array([[0.95, 0.05], [0.95, 0.05], [0.1, 0.9], [0.1, 0.9], [0.6, 0.4], [0.95, 0.05]])
    issues = rank_label_issues(probabilities, np.array([0, 0, 1, 1, 1, 1]))
    assert [(issue.index, issue.suggested) for issue in issues] == [(5, 0), (4, 0)]
    assert [issue.score for issue in issues] == pytest.approx([-0.9, -0.2])


def test_thresholds_are_each_class_mean_own_probability():
    probabilities = np.array([[0.9, 0.1, 0.0], [0.7, 0.3, 0.0], [0.4, 0.6, 0.0]])
    thresholds = class_thresholds(probabilities, np.array([0, 0, 1]))
    assert thresholds[:2] == pytest.approx([0.8, 0.6]) and thresholds[2] == np.inf


def test_a_class_nobody_is_labelled_with_is_never_suggested():
    probabilities = np.array([[0.1, 0.1, 0.8], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1]])
    assert rank_label_issues(probabilities, np.array([0, 0, 1])) == []


def test_edge_cases():
    assert rank_label_issues(np.ones((3, 1)), np.zeros(3, dtype=int)) == []
    assert rank_label_issues(np.zeros((0, 3)), np.zeros(0, dtype=int)) == []
    with pytest.raises(ValueError, match="sum to 1"):
        rank_label_issues(np.array([[0.5, 0.2], [0.5, 0.5]]), np.array([0, 1]))
    with pytest.raises(ValueError, match="NaN"):
        rank_label_issues(np.array([[np.nan, 1.0], [0.5, 0.5]]), np.array([0, 1]))
    with pytest.raises(ValueError, match="class indices"):
        rank_label_issues(np.array([[0.5, 0.5]]), np.array([2]))
    with pytest.raises(ValueError, match="expected"):
        rank_label_issues(np.array([[0.5, 0.5]]), np.array([0, 1]))


def test_folds_are_stratified_balanced_and_seeded():
    labels = np.array([0] * 10 + [1] * 7 + [2] * 3)
    folds = stratified_folds(labels, 3, seed=5)
    assert sorted(np.bincount(folds).tolist()) == [6, 7, 7]
    for label in range(3):
        counts = np.bincount(folds[labels == label], minlength=3)
        assert counts.max() - counts.min() <= 1
    assert (stratified_folds(labels, 3, seed=5) == folds).all()
    assert not (stratified_folds(labels, 3, seed=6) == folds).all()


def test_estimate_counts_every_fold_and_head_only_is_cheap():
    config = TrainConfig(**TINY)
    one = estimate_seconds(1000, 5, config, 0.001)
    assert estimate_seconds(1000, 10, config, 0.001) > 1.5 * one
    assert estimate_seconds(2000, 5, config, 0.001) == pytest.approx(2 * one, rel=0.1)
    assert estimate_seconds(1000, 5, config.model_copy(update={"epochs": 3}), 0.001) > 2 * one
    head_only = TrainConfig(**{**TINY, "freeze_backbone": True})
    assert estimate_seconds(1000, 5, head_only, 0.001) < one


def test_search_takes_the_head_only_path_when_weights_are_present():
    suggested = {"backbone": "mobilenet_v3_small", "pretrained": True, "augmentation": "light", "epochs": 20}
    assert search_options(suggested, {"mobilenet_v3_small": True}) == {
        **suggested, "freeze_backbone": True, "augmentation": "none"}
    assert search_options(suggested, {}) == suggested


@pytest.mark.slow  # trains two tiny models
@pytest.mark.parametrize("head_only", [False, True])
def test_out_of_sample_probabilities_end_to_end(tmp_path, monkeypatch, head_only):
    train = make_samples(tmp_path / "train", 3)
    answered = {}
    real_predict = Trainer.predict

    def predict(trainer, samples):
        probabilities = real_predict(trainer, samples)
        answered.update({sample.key: row for sample, row in zip(samples, probabilities)})
        assert all(sample not in trainer.data.train + trainer.data.val for sample in samples)
        return probabilities

    monkeypatch.setattr(Trainer, "predict", predict)
    seen = []
    config = TrainConfig(**TINY, freeze_backbone=head_only)
    probabilities = out_of_sample_probabilities(train, ["red", "green", "blue"], config, 2, "cpu",
                                                tmp_path / "work", progress=lambda done, total: seen.append(
                                                    (done, total)))
    assert probabilities.shape == (9, 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert len(answered) == 9
    assert all((probabilities[i] == answered[sample.key]).all() for i, sample in enumerate(train))
    assert seen[-1] == (2, 2) and [done for done, _ in seen] == sorted(done for done, _ in seen)
    features = tmp_path / "work" / "features"  # the head-only path caches backbone features beside the images
    assert features.is_dir() == head_only


def test_a_stop_request_cancels_before_training(tmp_path):
    with pytest.raises(TrainingCancelled):
        out_of_sample_probabilities(make_samples(tmp_path / "train", 2), ["red", "green", "blue"],
                                    TrainConfig(**TINY), 2, "cpu", tmp_path / "work", should_stop=lambda: True)
