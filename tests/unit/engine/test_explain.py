"""Explanations in the bundle: the feature-map output, the explain head (Paddle and ONNX), resnet's exact maps,
and the int8 variant explaining with the float head."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.backbones import build_backbone
from engine.bundle import BundleRejected, Preprocess, read_bundle, write_bundle
from engine.explain import EXPLAIN_FILES, EXPLAIN_ONNX_FILE, normalised, unavailable
from engine.quantize import INT8_FILE, _quantize
from engine.runtimes import ModelFiles, check_batch, open_session


@pytest.fixture(scope="module")
def resnet_bundle(tmp_path_factory):
    """An untrained resnet18 bundle at 64 px: a 2 x 2 feature map, enough to tell locations apart."""
    folder = tmp_path_factory.mktemp("explain") / "bundle"
    write_bundle(build_backbone("resnet18", 3, pretrained=False), folder, Preprocess.for_input_size(64),
                 {"classes": ["a", "b", "c"], "backbone": "resnet18"})
    return read_bundle(folder)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def test_the_bundle_lists_and_describes_its_explain_head(resnet_bundle):
    meta = resnet_bundle.meta
    for name in (*EXPLAIN_FILES, EXPLAIN_ONNX_FILE):
        assert name in meta["files"] and (resnet_bundle.folder / name).is_file()
    assert meta["explain"]["feature_size"] == [2, 2] and meta["explain"]["channels"] == 512
    assert meta["explain"]["exact"] is True and meta["explain"]["onnx_max_abs_diff"] <= 1e-4
    assert unavailable(meta, "onnx") is None and unavailable(meta, "paddle") is None


@pytest.mark.parametrize("runtime", ["paddle", "onnx"])
def test_resnet_maps_average_to_its_logits_on_each_runtime(resnet_bundle, runtime):
    session = open_session(resnet_bundle.files, runtime)
    batch = check_batch(64, 3)
    probabilities, features = session.with_features(batch)
    maps = session.class_maps(features)
    assert features.shape == (3, 512, 2, 2) and maps.shape == (3, 3, 2, 2)
    assert np.allclose(_softmax(maps.mean(axis=(2, 3))), probabilities, atol=1e-5)
    assert np.array_equal(session(batch), probabilities)  # output 0 stays the probabilities


def test_the_onnx_head_agrees_with_the_paddle_head(resnet_bundle):
    paddle_session = open_session(resnet_bundle.files, "paddle")
    features = paddle_session.with_features(check_batch(64, 2))[1]
    paddle_maps = paddle_session.class_maps(features)
    onnx_maps = open_session(resnet_bundle.files, "onnx").class_maps(features)
    assert np.abs(paddle_maps - onnx_maps).max() <= 1e-4


def test_the_int8_variant_keeps_the_feature_output_and_explains(resnet_bundle, tmp_path):
    files = resnet_bundle.files
    target = tmp_path / INT8_FILE
    _quantize(files.onnx, target, check_batch(64, 8))
    session = open_session(ModelFiles(files.model, files.params, files.onnx, target, files.explain), "onnx_int8")
    probabilities, features = session.with_features(check_batch(64, 2))
    maps = session.class_maps(features)
    assert features.shape == (2, 512, 2, 2) and maps.shape == (2, 3, 2, 2)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-2)


def test_a_bundle_from_before_explanations_still_reads_and_says_why(resnet_bundle, tmp_path):
    import shutil

    folder = tmp_path / "old"
    shutil.copytree(resnet_bundle.folder, folder)
    meta = json.loads((folder / "meta.json").read_text())
    for name in (*EXPLAIN_FILES, EXPLAIN_ONNX_FILE):
        (folder / name).unlink()
        meta["files"].pop(name)
    meta.pop("explain")
    (folder / "meta.json").write_text(json.dumps(meta))
    old = read_bundle(folder)
    assert old.files.explain is None
    assert "before explanations" in str(unavailable(old.meta, "paddle"))
    with pytest.raises(FileNotFoundError):
        open_session(old.files, "paddle").class_maps(np.zeros((1, 512, 2, 2), dtype=np.float32))


def test_a_tampered_explain_head_is_refused(resnet_bundle, tmp_path):
    import shutil

    folder = tmp_path / "tampered"
    shutil.copytree(resnet_bundle.folder, folder)
    (folder / EXPLAIN_ONNX_FILE).write_bytes(b"not a model")
    with pytest.raises(BundleRejected, match="integrity"):
        read_bundle(folder)


def test_a_map_is_normalised_to_0_1_and_a_flat_one_is_all_ones():
    scaled = normalised(np.array([[1.0, 3.0], [2.0, 5.0]]))
    assert scaled.min() == 0 and scaled.max() == 1 and scaled[1, 0] == pytest.approx(0.25)
    assert np.array_equal(normalised(np.full((1, 1), 7.0)), np.ones((1, 1)))


def test_a_head_that_did_not_convert_explains_on_paddle_only(resnet_bundle, tmp_path):
    from engine.explain import SavedHead, check_explain_head

    files = ModelFiles(resnet_bundle.folder / EXPLAIN_FILES[0], resnet_bundle.folder / EXPLAIN_FILES[1], None)
    entry = check_explain_head(SavedHead(files, tmp_path / EXPLAIN_ONNX_FILE, (512, 2, 2), {"exact": True}), True)
    assert entry["onnx_error"] == "paddle2onnx could not convert the explain head"
    meta = {**resnet_bundle.meta, "explain": {**resnet_bundle.meta["explain"], **entry},
            "files": {k: v for k, v in resnet_bundle.meta["files"].items() if k != EXPLAIN_ONNX_FILE}}
    assert unavailable(meta, "paddle") is None
    assert "could not convert the explain head" in str(unavailable(meta, "onnx"))
