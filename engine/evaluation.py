"""Evaluate a model bundle on labelled images exactly as serving answers them: the bundle's
preprocessing, its measured runtime, one image at a time (so the latency is the per-request one)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from engine.bundle import Bundle, runtime_key
from engine.images import ImageRejected, open_checked
from engine.metrics import calibration_sample, confusion_matrix, per_class_report, top_k_accuracy
from engine.runtimes import open_session

MAX_PIXELS = 200_000_000  # images were checked at upload; this only bounds a file changed on disk


@dataclass
class EvaluationReport:
    runtime: str
    images: int
    accuracy: float
    macro_f1: float
    per_class: list[dict]
    confusion: list[list[int]]
    latency_ms: dict  # p50, p95, mean per image: decode + preprocess + inference
    calibration: dict
    unreadable: list[str] = field(default_factory=list)


def evaluate_bundle(bundle: Bundle, samples: list[tuple[Path, int]], device: str = "cpu", cpu_threads: int = 1,
                    progress: Callable[[int, int], None] | None = None) -> EvaluationReport:
    """Classify every (path, class index) of `samples` with `bundle`; class indexes follow `bundle.classes`."""
    measured = bundle.measurement(runtime_key(device, cpu_threads)) or {}
    runtime = measured.get("runtime") if bundle.files.onnx is not None else "paddle"
    runtime = runtime or ("onnx" if bundle.files.onnx is not None else "paddle")
    session = open_session(bundle.files, runtime, device, cpu_threads)
    rule = bundle.preprocess
    session(np.zeros((1, 3, rule.input_size, rule.input_size), dtype=np.float32))  # warm, not timed
    probabilities, labels, latencies, unreadable = [], [], [], []
    for done, (path, label) in enumerate(samples, 1):
        started = time.perf_counter()
        try:
            image, _ = open_checked(Path(path).read_bytes(), MAX_PIXELS, rule.decode_size)
        except (OSError, ImageRejected):
            unreadable.append(str(path))
            continue
        output = session(rule.batch(rule.square(image)[None]))[0]
        latencies.append((time.perf_counter() - started) * 1000)
        probabilities.append(output)
        labels.append(label)
        if progress and (done % 20 == 0 or done == len(samples)):
            progress(done, len(samples))
    if not labels:
        raise ValueError("none of the images could be read")
    probs, truth = np.stack(probabilities), np.asarray(labels)
    matrix = confusion_matrix(truth, probs.argmax(axis=1), len(bundle.classes))
    report = per_class_report(matrix, bundle.classes)
    present = [row for row in report if row["support"]]
    timings = np.asarray(latencies)
    return EvaluationReport(
        runtime=runtime, images=len(truth), accuracy=round(top_k_accuracy(probs, truth, 1), 5),
        macro_f1=round(float(np.mean([row["f1"] for row in present])), 4) if present else 0.0,
        per_class=report, confusion=matrix.tolist(),
        latency_ms={"p50": round(float(np.percentile(timings, 50)), 2),
                    "p95": round(float(np.percentile(timings, 95)), 2), "mean": round(float(timings.mean()), 2)},
        calibration=calibration_sample(probs, truth), unreadable=unreadable)
