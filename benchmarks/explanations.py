"""Explanations: does the map point at the evidence, and what does asking for it cost?

It makes a synthetic set whose class evidence is a textured, coloured patch (a quarter of the image's side) at
a random place on a noisy background, trains a small resnet18 on the CPU through the Trainer (exact maps), and
exports it as a job does. Then, for each runtime the bundle offers (paddle, onnx, and onnx_int8, quantized here
on training images), it reports the share of correctly classified test images whose map's peak cell overlaps
the patch (target >= 0.9), and the median time of one answer with `explain` (the map and its PNG) against one
without, through the serving path (`LoadedVersion.classify` on a decoded image), interleaved in one run
(target <= 1.5x).

    .venv/bin/python benchmarks/explanations.py [--backbone resnet18] [--image-size 128] [--epochs 4] [--tiny]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.tiny_mode import parse_args  # noqa: E402
from engine.bundle import Preprocess  # noqa: E402
from engine.data import Sample  # noqa: E402
from engine.digest import file_digest  # noqa: E402
from engine.quantize import INT8_FILE, _quantize  # noqa: E402

TINY = {"image_size": 64, "train_per_class": 6, "test_per_class": 4, "epochs": 1, "repeats": 3}
CLASSES = ["checks", "stripes", "bars", "diagonals"]


def patch(label: int, side: int, rng: np.random.Generator) -> np.ndarray:
    """The class's evidence: a texture in the class's colour, side x side x 3."""
    y, x = np.mgrid[0:side, 0:side]
    period = 6
    pattern = [((x // period + y // period) % 2), (y // period) % 2, (x // period) % 2, ((x + y) // period) % 2][label]
    colour = np.array([(230, 40, 40), (40, 200, 60), (40, 70, 230), (235, 215, 40)][label], dtype=np.float32)
    texture = pattern[..., None] * colour + (1 - pattern[..., None]) * 25.0
    return np.clip(texture + rng.normal(0, 12, (side, side, 3)), 0, 255)


def synthetic_image(label: int, rule: Preprocess, rng: np.random.Generator) -> tuple[Image.Image, tuple[int, int, int]]:
    """A decode_size square of noise with the class's patch somewhere inside the model's centre crop; the
    patch's box (x, y, side) in the crop's pixels."""
    size, crop = rule.decode_size, rule.input_size
    side = size // 4
    offset = (size - crop) // 2
    pixels = np.clip(rng.normal(rng.uniform(70, 180), 45, (size, size, 3)), 0, 255)
    x, y = (int(v) for v in rng.integers(0, crop - side + 1, 2))
    pixels[offset + y:offset + y + side, offset + x:offset + x + side] = patch(label, side, rng)
    return Image.fromarray(pixels.astype(np.uint8)), (x, y, side)


def write_set(folder: Path, per_class: int, rule: Preprocess, seed: int) -> list[tuple[Sample, tuple]]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    made = []
    for label in range(len(CLASSES)):
        for n in range(per_class):
            image, box = synthetic_image(label, rule, rng)
            path = folder / f"{label}_{n}.png"
            image.save(path)
            made.append((Sample(str(path), label, hashlib.sha256(path.read_bytes()).hexdigest()), box))
    return made


def train_bundle(root: Path, args) -> tuple[Path, list[tuple[Sample, tuple]]]:
    """Train on the synthetic set and export the bundle (with its int8 variant added); the test images."""
    from engine.trainer import TrainConfig, TrainData, Trainer

    rule = Preprocess.for_input_size(args.image_size)
    train = write_set(root / "train", args.train_per_class, rule, 1)
    val = write_set(root / "val", max(2, args.test_per_class // 2), rule, 2)
    test = write_set(root / "test", args.test_per_class, rule, 3)
    config = TrainConfig(backbone=args.backbone, pretrained=False, epochs=args.epochs, batch_size=32,
                         image_size=args.image_size, learning_rate=3e-3, warmup_epochs=0, optimizer="adam")
    trainer = Trainer(config, TrainData(CLASSES, [s for s, _ in train], [s for s, _ in val]), root / "cache",
                      device="cpu")
    result = trainer.fit()
    folder = root / "bundle"
    trainer.export(folder, {"dataset": {"id": None}}, result)
    add_int8(folder, rule, [s for s, _ in train])
    return folder, test


def add_int8(folder: Path, rule: Preprocess, samples: list[Sample]) -> None:
    """Quantize the bundle's ONNX model on training images and list the variant in its meta, as an export
    that kept it would (whether it is faster does not matter here: the benchmark measures explaining)."""
    meta = json.loads((folder / "meta.json").read_text())
    if "model.onnx" not in meta["files"]:
        return
    squares = np.stack([rule.square(Image.open(s.path)) for s in samples[:32]])
    _quantize(folder / "model.onnx", folder / INT8_FILE, rule.batch(squares))
    meta["files"][INT8_FILE] = file_digest(folder / INT8_FILE)
    (folder / "meta.json").write_text(json.dumps(meta))


def peak_overlaps(explanation: dict, box: tuple[int, int, int], crop: int) -> bool:
    """Whether the map's highest cell overlaps the patch's box (both in the crop's pixels)."""
    grid = np.asarray(explanation["map"])
    row, column = np.unravel_index(int(np.argmax(grid)), grid.shape)
    cell_h, cell_w = crop / grid.shape[0], crop / grid.shape[1]
    x, y, side = box
    return (column * cell_w < x + side and x < (column + 1) * cell_w and
            row * cell_h < y + side and y < (row + 1) * cell_h)


def localisation(loaded, test: list[tuple[Sample, tuple]], crop: int) -> dict:
    correct = overlapping = 0
    for sample, box in test:
        answer = loaded.classify(Image.open(sample.path), 1, explain=True)
        if answer["top_k"][0]["class"] != CLASSES[sample.label]:
            continue
        correct += 1
        overlapping += peak_overlaps(answer["explanation"], box, crop)
    return {"test_images": len(test), "correct": correct, "accuracy": round(correct / len(test), 4),
            "peak_in_box": round(overlapping / correct, 4) if correct else None}


def cost(loaded, image: Image.Image, repeats: int) -> dict:
    """Median ms of one answer without and with the explanation (and its PNG), interleaved."""
    plain, explained = [], []
    for _ in range(3):
        loaded.classify(image, 5)
        loaded.classify(image, 5, explain=True, heat_map=True)
    for _ in range(repeats):
        started = time.perf_counter()
        loaded.classify(image, 5)
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        loaded.classify(image, 5, explain=True, heat_map=True)
        explained.append(time.perf_counter() - started)
    plain_ms, explained_ms = statistics.median(plain) * 1000, statistics.median(explained) * 1000
    return {"ms": round(plain_ms, 3), "ms_explained": round(explained_ms, 3),
            "explained_over_plain": round(explained_ms / plain_ms, 3)}


def main() -> None:
    from engine.bundle import read_bundle
    from webapp.config import ServingOptions
    from webapp.predict.serving import load_version

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--train-per-class", type=int, default=60)
    parser.add_argument("--test-per-class", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=60)
    args = parse_args(parser, TINY)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        folder, test = train_bundle(Path(tmp), args)
        train_seconds = round(time.perf_counter() - started, 1)
        bundle = read_bundle(folder)
        runtimes = [r for r, path in (("paddle", 1), ("onnx", bundle.files.onnx), ("onnx_int8", bundle.files.int8))
                    if path is not None]
        results = {}
        probe = Image.open(test[0][0].path)
        probe.load()
        for runtime in runtimes:
            loaded = load_version(folder, 1, ServingOptions(runtime=runtime, threads=1, max_batch=1))
            try:
                results[runtime] = {**localisation(loaded, test, args.image_size), **cost(loaded, probe, args.repeats)}
            finally:
                loaded.threads.close()
    print(json.dumps({"backbone": args.backbone, "image_size": args.image_size,
                      "feature_size": bundle.meta["explain"]["feature_size"], "exact": bundle.meta["explain"]["exact"],
                      "epochs": args.epochs, "train_seconds": train_seconds, "cpu_threads": 1,
                      "targets": {"peak_in_box": 0.9, "explained_over_plain": 1.5}, "runtimes": results}, indent=2))


if __name__ == "__main__":
    main()
