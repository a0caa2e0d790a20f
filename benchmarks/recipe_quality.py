"""Time to a good model: the studio's recipes against the plain recipe, at equal epochs, in one run.

Prints JSON. Data sets:
- `digits`: scikit-learn's bundled handwritten digits (1,797 grayscale 8x8 images, 10 classes; real data
  that needs no download), written as PNG files, 20% of each class held out for validation;
- `photo_like`: a small synthetic photo set (240 images of 96x72: patterned objects of random size, place and
  colours on smooth, noisy, coloured backgrounds; the class is the pattern);
- any folder dataset given with `--folder DIR` (one sub-folder per class, e.g. an operator's own photos).

Recipes, each timed from the image files to a saved, exported model:
- `plain`: the article's recipe: resize, normalise, Adam 1e-3, cosine schedule, no augmentation,
  paddle.io.DataLoader decoding every image every epoch; saves its weights and exports with paddle.jit.save;
- `studio_default`: a studio job with the same backbone, image size, batch size and epochs and every other
  option at the studio's defaults: decode-once cache, checkpoint every epoch, best epoch kept, BatchNorm
  recalibration, final report, the bundle written with its ONNX conversion;
- `studio_suggested`: a studio job with every option the recommendation suggests for the data set (epochs as
  a ceiling with early stopping).
With `--ablations`, the suggestion also runs with each of its regime's choices undone in turn (e.g.
`suggested_with_augmentation_light`): the figures behind each default.
`time_ratio` is a recipe's seconds over the plain recipe's; `reached_plain_accuracy_at_seconds` is when the
studio run's validation accuracy first reached the plain recipe's final accuracy (from its epoch times).

    .venv/bin/python benchmarks/recipe_quality.py [--datasets digits photo_like] [--folder DIR]
        [--backbone resnet18] [--epochs 5] [--image-size 64] [--photo-image-size 72] [--recipes ...] [--ablations]
        [--per-class N] [--photo-size 96x72] [--suggested-epochs N] [--tiny]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import engine  # noqa: E402,F401  (CPU math settings before Paddle loads)
import paddle  # noqa: E402
from benchmarks.tiny_mode import parse_args  # noqa: E402
from engine.checkpoint import CheckpointStore  # noqa: E402
from engine.config import TrainConfig  # noqa: E402
from engine.data import Sample  # noqa: E402
from engine.recommend import DatasetProfile, suggest  # noqa: E402
from engine.trainer import Callbacks, Trainer, TrainData  # noqa: E402
from engine.weights import weights_status  # noqa: E402
from textbook import TextbookDataset  # noqa: E402

VAL_FRACTION = 0.2
# Every job exports its bundle (ONNX conversion included, a few seconds each): the tiny run trains the
# three recipes on digits only, without ablations (`--tiny --datasets photo_like --ablations` for the rest).
TINY = {"datasets": ["digits"], "epochs": 1, "batch_size": 8, "image_size": 32, "photo_image_size": 32,
        "per_class": 4, "photo_size": "48x36", "suggested_epochs": 1}


def _write(folder: Path, name: str, image: Image.Image, label: int) -> Sample:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    path = folder / name
    path.write_bytes(buffer.getvalue())
    return Sample(str(path), label, hashlib.sha256(buffer.getvalue()).hexdigest())


def digits(folder: Path, per_class: int | None = None) -> tuple[list[str], list[Sample]]:
    """The bundled digits as PNG files: all of them, or the first `per_class` of each class."""
    from sklearn.datasets import load_digits

    data = load_digits()
    folder.mkdir(parents=True)
    seen = np.zeros(len(data.target_names), dtype=int)
    samples = []
    for index, (image, label) in enumerate(zip(data.images, data.target)):
        seen[label] += 1
        if per_class is None or seen[label] <= per_class:
            samples.append(_write(folder, f"{index}.png", Image.fromarray((image * 255 / 16).astype(np.uint8)),
                                  int(label)))
    return [str(name) for name in data.target_names], samples


PATTERNS = ("horizontal", "vertical", "diagonal", "checked")


def photo_like(folder: Path, per_class: int = 60, size=(96, 72), seed: int = 7) -> tuple[list[str], list[Sample]]:
    """Photo-like images: a patterned object (the class: stripes across, stripes down, diagonal stripes or
    checks) of random size, place, colours and stripe width on a smooth, noisy, coloured background."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    samples = []
    for label, pattern in enumerate(PATTERNS):
        for index in range(per_class):
            small = rng.integers(0, 255, (height // 12 + 2, width // 12 + 2, 3), dtype=np.uint8)
            pixels = np.asarray(Image.fromarray(small).resize(size, Image.BICUBIC), dtype=np.int16)
            side = int(rng.integers(height // 2, height - 4))
            left, top = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
            period = int(rng.integers(6, 12))
            phase = {"horizontal": yy, "vertical": xx, "diagonal": xx + yy, "checked": None}[pattern]
            if phase is None:
                stripes = ((xx // (period // 2)) + (yy // (period // 2))) % 2 == 0
            else:
                stripes = (phase % period) < period // 2
            inside = (xx >= left) & (xx < left + side) & (yy >= top) & (yy < top + side)
            light, dark = rng.integers(150, 256, 3), rng.integers(0, 100, 3)
            pixels[inside & stripes] = light
            pixels[inside & ~stripes] = dark
            noise = rng.integers(-20, 21, (height, width, 3), dtype=np.int16)
            pixels = np.clip(pixels + noise, 0, 255).astype(np.uint8)
            samples.append(_write(folder, f"{pattern}_{index}.png", Image.fromarray(pixels), label))
    return list(PATTERNS), samples


def folder_dataset(root: Path) -> tuple[list[str], list[Sample]]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    samples = []
    for label, name in enumerate(classes):
        for path in sorted((root / name).rglob("*")):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"):
                samples.append(Sample(str(path), label, hashlib.sha256(path.read_bytes()).hexdigest()))
    return classes, samples


def split(classes: list[str], samples: list[Sample]) -> TrainData:
    """20% of each class (by content hash, like the studio's own split) for validation."""
    train, val = [], []
    for label in range(len(classes)):
        mine = sorted((s for s in samples if s.label == label), key=lambda s: s.key)
        take = max(1, round(len(mine) * VAL_FRACTION))
        val += mine[:take]
        train += mine[take:]
    return TrainData(classes, train, val)


def profile_of(data: TrainData) -> DatasetProfile:
    rows = []
    for split_name, samples in (("train", data.train), ("val", data.val)):
        for sample in samples:
            with Image.open(sample.path) as image:
                rows.append((data.class_names[sample.label], split_name, *image.size))
    return DatasetProfile.from_images(rows)


def plain_recipe(data: TrainData, backbone: str, image_size: int, epochs: int, batch_size: int,
                 out: Path) -> dict:
    """The article's training script, timed from the files to the saved and exported model."""
    from paddle.static import InputSpec
    from paddle.vision import models

    started = time.perf_counter()
    paddle.seed(42)
    model = getattr(models, backbone)(num_classes=len(data.class_names))
    train = paddle.io.DataLoader(TextbookDataset(data.train, image_size, augment=False), batch_size=batch_size,
                                 shuffle=True)
    val = paddle.io.DataLoader(TextbookDataset(data.val, image_size, augment=False), batch_size=batch_size)
    schedule = paddle.optimizer.lr.CosineAnnealingDecay(1e-3, T_max=epochs * len(train))
    optimizer = paddle.optimizer.Adam(schedule, parameters=model.parameters())
    loss_fn = paddle.nn.CrossEntropyLoss()
    history = []
    for _ in range(epochs):
        model.train()
        for x, y in train:
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
            schedule.step()
        model.eval()
        correct = 0
        with paddle.no_grad():
            for x, y in val:
                correct += int((model(x).argmax(axis=1) == y).sum())
        history.append({"val_acc": round(correct / len(data.val), 5),
                        "at_seconds": round(time.perf_counter() - started, 1)})
    paddle.save(model.state_dict(), str(out / "plain.pdparams"))
    paddle.jit.save(model, str(out / "plain"), input_spec=[InputSpec([None, 3, image_size, image_size], "float32")])
    return {"val_acc": history[-1]["val_acc"], "seconds": round(time.perf_counter() - started, 1),
            "config": {"backbone": backbone, "image_size": image_size, "epochs": epochs, "batch_size": batch_size,
                       "optimizer": "adam", "learning_rate": 1e-3, "augmentation": "none", "label_smoothing": 0.0},
            "history": history}


def studio_job(data: TrainData, config: TrainConfig, out: Path) -> dict:
    """What a studio job does on the worker, timed from the files to the written bundle."""
    started = time.perf_counter()
    trainer = Trainer(config, data, out / "cache", Callbacks(), device="cpu")
    result = trainer.fit(CheckpointStore(out / "checkpoints", b"benchmark"))
    trainer.export(out / "bundle", {"dataset": {"id": None}}, result)
    seconds = time.perf_counter() - started
    fixed = seconds - sum(stats.seconds for stats in result.history)  # preparing, checkpoints, report, export
    elapsed, history = 0.0, []
    for stats in result.history:
        elapsed += stats.seconds
        history.append({"val_acc": stats.val_acc, "at_seconds": round(elapsed, 1)})
    return {"val_acc": result.best_val_acc, "best_epoch": result.best_epoch, "epochs_run": len(result.history),
            "stopped_early": result.stopped_early, "seconds": round(seconds, 1),
            "seconds_outside_epochs": round(fixed, 1), "config": config.to_dict(), "history": history}


# Each suggested choice undone one at a time, per regime (`--ablations`).
ABLATIONS = {
    "tiny_images": [{"augmentation": "light"}, {"label_smoothing": 0.0}, {"warmup_epochs": 0.0}],
    "small_photo_set": [{"augmentation": "none"}, {"label_smoothing": 0.0}],
    "large_photo_set": [{"augmentation": "light"}],
}


def reached(history: list[dict], target: float, fixed: float = 0.0) -> float | None:
    return next((round(row["at_seconds"] + fixed, 1) for row in history if row["val_acc"] >= target), None)


def run_dataset(name: str, classes: list[str], samples: list[Sample], args, image_size: int, root: Path) -> dict:
    data = split(classes, samples)
    profile = profile_of(data)
    suggestion = suggest(profile, weights_status())
    suggested = dict(suggestion.options)
    if args.suggested_epochs:
        suggested["epochs"] = min(suggested["epochs"], args.suggested_epochs)
    rows = {}
    equal = dict(backbone=args.backbone, image_size=image_size, epochs=args.epochs, batch_size=args.batch_size)
    if "plain" in args.recipes:
        (root / "plain").mkdir()
        rows["plain"] = plain_recipe(data, args.backbone, image_size, args.epochs, args.batch_size, root / "plain")
    if "studio_default" in args.recipes:
        rows["studio_default"] = studio_job(data, TrainConfig(pretrained=False, **equal), root / "default")
    if "studio_suggested" in args.recipes:
        config = TrainConfig.from_dict(suggested)
        rows["studio_suggested"] = studio_job(data, config, root / "suggested")
        rows["studio_suggested"]["reasons"] = suggestion.reasons
    for change in ABLATIONS[profile.regime] if args.ablations else ():
        # the suggestion with one of its choices undone: the evidence for that choice
        option, value = next(iter(change.items()))
        key = f"suggested_with_{option}_{value}"
        options = {**suggested, **change}
        rows[key] = studio_job(data, TrainConfig.from_dict(options), root / key)
    if "plain" in rows:
        base = rows["plain"]
        for key, row in rows.items():
            row["time_ratio"] = round(row["seconds"] / base["seconds"], 3)
            row["accuracy_minus_plain"] = round(row["val_acc"] - base["val_acc"], 4)
            if key != "plain":
                row["reached_plain_accuracy_at_seconds"] = reached(row["history"], base["val_acc"],
                                                                   row["seconds_outside_epochs"])
    return {"dataset": name, "profile": asdict(profile), "regime": profile.regime, "recipes": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=["digits", "photo_like"])
    parser.add_argument("--folder", type=Path, help="a folder dataset (one sub-folder per class) to measure too")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=64, help="equal-settings size on digits and --folder")
    parser.add_argument("--photo-image-size", type=int, default=72)
    parser.add_argument("--recipes", nargs="*", default=["plain", "studio_default", "studio_suggested"])
    parser.add_argument("--ablations", action="store_true",
                        help="also run the suggestion with each of its regime's choices undone, one at a time")
    parser.add_argument("--per-class", type=int, help="images per class of digits and photo_like (default: all, 60)")
    parser.add_argument("--photo-size", default="96x72", help="WIDTHxHEIGHT of the photo_like images")
    parser.add_argument("--suggested-epochs", type=int, help="at most this many epochs for the suggestion's runs")
    args = parse_args(parser, TINY)
    photo_size = tuple(int(side) for side in args.photo_size.split("x"))
    makers = {"digits": lambda folder: digits(folder, args.per_class),
              "photo_like": lambda folder: photo_like(folder, args.per_class or 60, photo_size)}
    paddle.set_device("cpu")
    report = {"device": "cpu", "paddle": paddle.__version__, "datasets": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in args.datasets:
            classes, samples = makers[name](root / name / "files")
            size = args.photo_image_size if name == "photo_like" else args.image_size
            report["datasets"].append(run_dataset(name, classes, samples, args, size, root / name))
            print(json.dumps(report["datasets"][-1]), file=sys.stderr, flush=True)
        if args.folder:
            classes, samples = folder_dataset(args.folder)
            (root / "folder").mkdir()
            report["datasets"].append(run_dataset(str(args.folder), classes, samples, args, args.image_size,
                                                  root / "folder"))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
