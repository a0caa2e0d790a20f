"""Likely label errors found on a training split with planted wrong labels, and the time the search takes.

Prints JSON. The bundled digits of scikit-learn (as PNG files, the training split of
`benchmarks/recipe_quality.py`) with a share of the training labels (5%) flipped at random to another class
(seeded); out-of-sample probabilities of every training image by stratified K-fold training
(`engine.label_errors.out_of_sample_probabilities`) with the dataset's suggested recipe on this CPU (the
head-only path when pretrained weights of its backbone are present: `engine.label_ranking.search_options`),
then the confident-learning ranking (`rank_label_issues`). `precision_at_k` and `recall_at_k`: how many of the
k top-ranked images are flipped ones, k = the number flipped (the two are equal at that k). `estimate_seconds`
is the pre-flight estimate from a timed probe of the recipe's training step, beside the `seconds` it took.

    .venv/bin/python benchmarks/label_errors.py [--folds 5] [--flip-share 0.05] [--epochs N] [--per-class N]
        [--seed 0] [--tiny]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

import engine  # noqa: E402,F401  (CPU math settings before Paddle loads)
import paddle  # noqa: E402
from benchmarks.recipe_quality import digits, profile_of, split  # noqa: E402
from benchmarks.tiny_mode import parse_args  # noqa: E402
from engine.config import TrainConfig  # noqa: E402
from engine.data import Sample  # noqa: E402
from engine.label_errors import out_of_sample_probabilities  # noqa: E402
from engine.label_ranking import estimate_seconds, rank_label_issues, search_options  # noqa: E402
from engine.recommend import suggest  # noqa: E402
from engine.trainer import measure_seconds_per_image  # noqa: E402
from engine.weights import weights_status  # noqa: E402

TINY = {"folds": 2, "epochs": 1, "per_class": 4, "flip_share": 0.1}


def flip_labels(samples: list[Sample], classes: int, share: float, seed: int) -> tuple[list[Sample], np.ndarray]:
    """The samples with `share` of them (at least one) given another class at random; the flipped indices."""
    rng = np.random.default_rng(seed)
    flipped = np.sort(rng.choice(len(samples), max(1, round(len(samples) * share)), replace=False))
    out = list(samples)
    for index in flipped:
        out[index] = replace(samples[index], label=int((samples[index].label + rng.integers(1, classes)) % classes))
    return out, flipped


def search_config(data, epochs: int | None) -> TrainConfig:
    """The dataset's suggested recipe as the search runs it (at most `epochs` epochs when given)."""
    options = search_options(suggest(profile_of(data), weights_status()).options, weights_status())
    if epochs:
        options["epochs"] = epochs
        options["warmup_epochs"] = min(options["warmup_epochs"], epochs)
    return TrainConfig.from_dict(options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--flip-share", type=float, default=0.05, help="share of training labels flipped")
    parser.add_argument("--epochs", type=int, help="at most this many epochs per fold (default: the suggestion's)")
    parser.add_argument("--per-class", type=int, help="images per class of digits (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="which labels are flipped, and to what")
    args = parse_args(parser, TINY)
    paddle.set_device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        classes, samples = digits(Path(tmp) / "files", args.per_class)
        data = split(classes, samples)
        config = search_config(data, args.epochs)
        train, flipped = flip_labels(data.train, len(classes), args.flip_share, args.seed)
        per_image = measure_seconds_per_image(config, len(classes), "cpu")
        started = time.perf_counter()
        probabilities = out_of_sample_probabilities(train, classes, config, args.folds, "cpu", Path(tmp) / "work")
        search_seconds = time.perf_counter() - started
    given = np.array([sample.label for sample in train])
    truth = np.array([sample.label for sample in data.train])
    issues = rank_label_issues(probabilities, given)
    k = len(flipped)
    hits = len(set(issue.index for issue in issues[:k]) & set(flipped.tolist()))
    report = {
        "device": "cpu", "paddle": paddle.__version__, "dataset": "digits", "train_images": len(train),
        "classes": len(classes), "flipped": k, "folds": args.folds, "config": config.to_dict(),
        "seconds": round(search_seconds, 1),
        "estimate_seconds": round(estimate_seconds(len(train), args.folds, config, per_image), 1),
        "probe_seconds_per_image": round(per_image, 6),
        "out_of_sample_accuracy": {"given_labels": round(float((probabilities.argmax(1) == given).mean()), 4),
                                   "true_labels": round(float((probabilities.argmax(1) == truth).mean()), 4)},
        "issues_found": len(issues), "k": k,
        "precision_at_k": round(hits / max(min(k, len(issues)), 1), 4), "recall_at_k": round(hits / k, 4),
        "suggested_true_class": round(sum(issue.suggested == truth[issue.index] for issue in issues[:k]
                                          if issue.index in set(flipped.tolist())) / max(hits, 1), 4),
        "top": [issue.as_dict() for issue in issues[:5]],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
