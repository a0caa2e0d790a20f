"""The int8 variant: quantized from the bundle's ONNX model, judged on validation images against the float
model, kept and offered as a runtime only when faster within the accuracy bound, else reported and removed."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from engine import quantize
from engine.bundle import Preprocess, read_bundle
from engine.quantize import INT8_FILE, Int8Request, build_int8
from engine.runtimes import measure, open_session
from tests.images import make_samples


@pytest.fixture
def request_and_model(trained, tmp_path):
    bundle = read_bundle(trained[1])
    model = tmp_path / "model.onnx"
    shutil.copy(bundle.files.onnx, model)
    rule = Preprocess.for_input_size(32)
    from PIL import Image

    samples = make_samples(tmp_path / "val", 4, seed_offset=900)
    squares = np.stack([rule.square(Image.open(s.path)) for s in samples])
    labels = np.array([s.label for s in samples])
    return Int8Request(rule.batch(squares), rule.batch(squares), labels, 1.0), model


def test_the_variant_is_judged_and_the_report_says_so(request_and_model):
    request, model = request_and_model
    report = build_int8(model, request)
    for key in ("float_accuracy", "int8_accuracy", "accuracy_drop_points", "float_ms", "int8_ms"):
        assert key in report
    assert report["val_images"] == 12 and report["calibration_images"] == 12
    assert report["accuracy_drop_points"] == pytest.approx((report["float_accuracy"] - report["int8_accuracy"]) * 100,
                                                           abs=0.01)
    kept = (model.parent / INT8_FILE).is_file()
    assert kept == report["used"] and (report["reason"] is None) == report["used"]


def test_a_variant_that_is_faster_and_accurate_enough_is_kept_and_runs(request_and_model, monkeypatch):
    request, model = request_and_model
    times = iter([3.0, 1.0])  # float, then int8
    monkeypatch.setattr(quantize, "_ms_per_image", lambda session, image: next(times))
    report = build_int8(model, Int8Request(request.calibration, request.val_images, request.val_labels, 100.0))
    assert report["used"] is True and (model.parent / INT8_FILE).is_file()
    from engine.runtimes import ModelFiles

    import onnx

    quantized = onnx.load(str(model.parent / INT8_FILE))
    assert any(t.data_type == onnx.TensorProto.INT8 for t in quantized.graph.initializer)  # the weights themselves
    assert (model.parent / INT8_FILE).stat().st_size < 0.6 * model.stat().st_size
    files = ModelFiles(model, model, model, model.parent / INT8_FILE)
    probabilities = open_session(files, "onnx_int8")(request.val_images[:2])
    assert probabilities.shape == (2, 3) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-2)


def test_slower_or_less_accurate_variants_are_reported_and_removed(request_and_model, monkeypatch):
    request, model = request_and_model
    monkeypatch.setattr(quantize, "_ms_per_image", lambda session, image: 2.0)
    slower = build_int8(model, request)
    assert slower["used"] is False and "not faster" in slower["reason"] and not (model.parent / INT8_FILE).exists()
    times = iter([3.0, 1.0])
    monkeypatch.setattr(quantize, "_ms_per_image", lambda session, image: next(times))
    monkeypatch.setattr(quantize, "_accuracy", lambda session, images, labels: next(accuracies))
    accuracies = iter([0.9, 0.8])
    worse = build_int8(model, request)
    assert worse["used"] is False and "drops 10.00 points" in worse["reason"]


def test_a_model_the_quantizer_cannot_handle_is_reported(tmp_path, request_and_model):
    request, _ = request_and_model
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    report = build_int8(broken, request)
    assert report["used"] is False and report["reason"].startswith("quantization failed")
