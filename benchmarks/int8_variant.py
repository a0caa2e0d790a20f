"""The int8 variant against the float ONNX model, on this machine's CPU.

For each backbone it exports an (untrained) bundle at 224 px as a job does, quantizes its ONNX model the way
`export_int8` does (calibrated on 64 photo-like images), and prints JSON with the float and int8 ms per
image (median of single-image runs), their ratio, the share of images on which both give the same top class,
and whether the export would keep the variant (at most 95% of the float time; accuracy is judged on real
validation images at export, which an untrained model cannot stand in for).

    .venv/bin/python benchmarks/int8_variant.py [--backbones mobilenet_v3_small resnet50] [--tiny]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.tiny_mode import parse_args  # noqa: E402
from engine.backbones import build_backbone  # noqa: E402
from engine.bundle import Preprocess, write_bundle  # noqa: E402
from engine.quantize import FASTER_BY, INT8_FILE, _ms_per_image, _quantize  # noqa: E402
from engine.runtimes import ModelFiles, open_session  # noqa: E402

TINY = {"backbones": ["mobilenet_v3_small"], "image_size": 32}


def photos(count: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth noise images, normalised NCHW: what calibration sees from real photos, roughly."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    rule = Preprocess.for_input_size(size)
    squares = []
    for _ in range(count):
        small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        squares.append(np.asarray(Image.fromarray(small).resize((rule.decode_size,) * 2, Image.BICUBIC)))
    return rule.batch(np.stack(squares))


def bench(backbone: str, size: int, folder: Path) -> dict:
    write_bundle(build_backbone(backbone, 5, pretrained=False), folder, Preprocess.for_input_size(size),
                 {"classes": [str(i) for i in range(5)], "backbone": backbone})
    onnx = folder / "model.onnx"
    target = folder / INT8_FILE
    _quantize(onnx, target, photos(64, size))
    files = ModelFiles(onnx, onnx, onnx, target)
    float_session, int8_session = open_session(files, "onnx"), open_session(files, "onnx_int8")
    images = photos(32, size, seed=1)
    same = float((float_session(images).argmax(1) == int8_session(images).argmax(1)).mean())
    float_ms, int8_ms = _ms_per_image(float_session, images[:1], 40), _ms_per_image(int8_session, images[:1], 40)
    return {"backbone": backbone, "image_size": size, "float_ms": float_ms, "int8_ms": int8_ms,
            "int8_over_float": round(int8_ms / float_ms, 3), "same_top_class": same,
            "float_mb": round(onnx.stat().st_size / 2**20, 2), "int8_mb": round(target.stat().st_size / 2**20, 2),
            "would_be_kept_if_accurate": int8_ms <= float_ms * FASTER_BY}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["mobilenet_v3_small", "resnet50"])
    parser.add_argument("--image-size", type=int, default=224)
    args = parse_args(parser, TINY)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for backbone in args.backbones:
            results.append(bench(backbone, args.image_size, Path(tmp) / backbone))
    print(json.dumps({"cpu_threads": 1, "results": results}, indent=2))


if __name__ == "__main__":
    main()
