"""Where web processes serve: the CPU unless SERVING_DEVICE=gpu, TensorRT refused in words on a build without
it, ONNX Runtime's silent CPU fallback said, and runtime measurements applied only on the device they name."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnxruntime
import pytest

from engine import bundle as bundle_module
from engine.bundle import read_bundle, runtime_key
from engine.device import load_paddle
from engine.runtimes import onnx_fallback, onnx_providers, paddle_config
from engine import runtimes, tensorrt
from engine.tensorrt import converted, engine_key, tensorrt_missing
from webapp.config import ServingOptions, default_config, serving_options
from webapp.predict import serving
from webapp.predict.serving import ModelServer, choose_runtime, tensorrt_refusal

paddle = load_paddle()


@pytest.fixture
def models(trained, tmp_path) -> Path:
    """A models folder holding the trained bundle as version 1 (a copy: tests change its meta)."""
    shutil.copytree(trained[1], tmp_path / "models" / "1")
    return tmp_path / "models"


@pytest.fixture
def cuda_looking(monkeypatch):
    """This CPU build made to look like a CUDA build with one GPU, and ONNX Runtime like onnxruntime-gpu."""
    monkeypatch.setattr(paddle.device, "is_compiled_with_cuda", lambda: True)
    monkeypatch.setattr(paddle.device.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    preloads = []
    monkeypatch.setattr(onnxruntime, "preload_dlls", lambda **asked: preloads.append(asked))
    runtimes.preload_cuda_libraries.cache_clear()
    yield preloads
    runtimes.preload_cuda_libraries.cache_clear()


def test_a_cuda_session_first_loads_the_cuda_libraries_of_the_nvidia_wheels_once(cuda_looking):
    assert onnx_providers("cpu") == ["CPUExecutionProvider"] and cuda_looking == []
    for _ in range(3):
        assert onnx_providers("gpu:0") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert cuda_looking == [{"cuda": True, "cudnn": True, "msvc": False}]  # once per process


def test_a_preload_that_fails_is_logged_and_the_session_still_opens(monkeypatch, caplog):
    def broken(**_):
        raise OSError("libcudnn.so.9: cannot open shared object file")

    monkeypatch.setattr(onnxruntime, "preload_dlls", broken)
    runtimes.preload_cuda_libraries.cache_clear()
    try:
        runtimes.preload_cuda_libraries()
    finally:
        runtimes.preload_cuda_libraries.cache_clear()
    assert "could not preload the CUDA libraries of the nvidia-* wheels: libcudnn.so.9" in caplog.text


def set_runtimes(folder: Path, runtimes: dict) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    meta["runtimes"] = runtimes
    (folder / "meta.json").write_text(json.dumps(meta))


def test_the_web_tier_serves_on_the_cpu_by_default_even_on_a_cuda_build(cuda_looking, trained, tmp_path):
    server = ModelServer(tmp_path, ServingOptions())
    assert server.device == "cpu" and server.device_note is None
    files = read_bundle(trained[1]).files
    config = paddle_config(files, server.device, 1)
    assert config.use_gpu() is False and config.cpu_math_library_num_threads() == 1
    assert onnx_providers(server.device) == ["CPUExecutionProvider"]
    assert onnx_providers("gpu:0") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert ModelServer(tmp_path, ServingOptions(device="gpu")).device == "gpu:0"


def test_serving_device_is_cpu_by_default_and_a_bad_value_stops_the_start_in_words():
    options = serving_options(default_config())
    assert (options.device, options.gpu) == ("cpu", 0)
    assert serving_options({**default_config(), "SERVING_DEVICE": "gpu", "SERVING_GPU": 1}).gpu == 1
    with pytest.raises(ValueError, match="SERVING_DEVICE must be cpu or gpu, not 'cuda'"):
        serving_options({**default_config(), "SERVING_DEVICE": "cuda"})


def test_serving_device_gpu_on_this_cpu_build_serves_on_the_cpu_and_says_why(models):
    loaded = ModelServer(models, ServingOptions(device="gpu", runtime="paddle", threads=1)).get(1)
    assert loaded.runtime == "paddle" and loaded.threads.fallback is None
    assert loaded.note == "SERVING_DEVICE=gpu, but this Paddle build has no CUDA; serving on the CPU."
    assert ModelServer(models, ServingOptions(device="gpu", gpu=3)).device == "cpu"


def test_an_onnx_session_that_fell_back_to_the_cpu_is_said_so(models):
    loaded = ModelServer(models, ServingOptions(runtime="onnx", threads=1), device="gpu:0").get(1)
    assert loaded.runtime == "onnx" and loaded.note == (
        "ONNX Runtime was asked for the GPU but runs on CPUExecutionProvider (is onnxruntime-gpu installed, with "
        "its CUDA libraries?).")
    note = onnx_fallback("gpu:0", ["CPUExecutionProvider"])
    assert note.startswith("ONNX Runtime was asked for the GPU but runs on CPUExecutionProvider")
    assert onnx_fallback("gpu:0", ["CUDAExecutionProvider", "CPUExecutionProvider"]) is None
    assert onnx_fallback("cpu", ["CPUExecutionProvider"]) is None


def test_tensorrt_is_refused_in_words_on_this_wheel_and_every_version_still_loads(models, monkeypatch):
    assert tensorrt_missing() == "this Paddle build has no CUDA"
    loaded = ModelServer(models, ServingOptions(tensorrt="fp16", runtime="paddle", threads=1), device="cpu").get(1)
    assert loaded.runtime == "paddle" and "PADDLE_TRT=fp16 applies to GPU serving only" in loaded.note
    monkeypatch.setattr(paddle.device, "is_compiled_with_cuda", lambda: True)  # a CUDA build without TensorRT
    refusal = tensorrt_refusal(ServingOptions(tensorrt="fp16"), "gpu:0")
    assert refusal == "PADDLE_TRT=fp16, but this Paddle build was compiled without TensorRT; serving without TensorRT."
    assert tensorrt_refusal(ServingOptions(), "gpu:0") is None


def test_tensorrt_asked_beside_a_forced_onnx_runtime_is_said_to_be_unused(models, monkeypatch):
    monkeypatch.setattr(serving, "tensorrt_missing", lambda: None)  # a wheel with TensorRT
    loaded = ModelServer(models, ServingOptions(tensorrt="fp16", runtime="onnx", threads=1), device="gpu:0").get(1)
    assert loaded.runtime == "onnx"
    assert loaded.note.startswith("PADDLE_TRT=fp16 applies to Paddle Inference; SERVING_RUNTIME=onnx serves without "
                                  "TensorRT. ONNX Runtime was asked for the GPU but runs on CPUExecutionProvider")


def test_measurements_are_keyed_by_device_model_and_apply_only_where_they_were_taken(models, monkeypatch):
    monkeypatch.setattr(bundle_module, "device_model", lambda device: "NVIDIA H100 80GB HBM3")
    gpu_key = runtime_key("gpu:0", 2)
    assert gpu_key == "gpu-nvidia-h100-80gb-hbm3-2t" and runtime_key("cpu", 2) == "cpu-2t"
    folder = models / "1"
    set_runtimes(folder, {"cpu-1t": {"runtime": "paddle", "ms": {"paddle": 1.0, "onnx": 9.0}}})
    options = ServingOptions(threads=1, cpu_threads=1)
    assert choose_runtime(read_bundle(folder), options, "cpu") == ("paddle", None)
    assert not (folder / "runtimes-cpu-1t.json").exists()  # the matching measurement was taken as it is
    set_runtimes(folder, {gpu_key: {"runtime": "paddle", "ms": {"paddle": 0.1, "onnx": 9.0}}})
    runtime, note = choose_runtime(read_bundle(folder), options, "cpu")
    recorded = json.loads((folder / "runtimes-cpu-1t.json").read_text())
    assert runtime == recorded["runtime"] == min(recorded["ms"], key=recorded["ms"].get)
    assert recorded["where"]["device"] == "cpu" and recorded["where"]["onnx_providers"] == ["CPUExecutionProvider"]
    assert note == ("The runtimes were measured at export on another device (gpu-nvidia-h100-80gb-hbm3-2t), not "
                    "this server's (cpu-1t): measured again here.")


def test_a_converted_program_is_made_once_per_digest_and_settings_and_then_reused(trained, tmp_path, monkeypatch):
    made = []

    def convert(files, folder, input_size, max_batch):
        made.append((folder.name, input_size, max_batch))
        folder.mkdir(parents=True)
        (folder / "model.json").write_text("{}")

    monkeypatch.setattr(tensorrt, "_convert", convert)
    files = read_bundle(trained[1]).files
    key = engine_key("digest", 32, 8, "fp16", "NVIDIA H100 80GB HBM3")
    first, second = (converted(files, tmp_path, key, 32, 8) for _ in range(2))
    assert first == second and first.model == tmp_path / key / "model.json" and first.onnx is None
    assert made == [(key, 32, 8)]
    assert key != engine_key("digest", 32, 1, "fp16", "NVIDIA H100 80GB HBM3") != engine_key(
        "digest", 32, 8, "fp16", "NVIDIA A100-SXM4-40GB")


def test_paddle_loads_tensorrt_from_the_wheels_folder_once_its_library_is_linked(tmp_path):
    folder = tmp_path / "tensorrt_libs"
    folder.mkdir()
    (folder / "libnvinfer.so.10").write_bytes(b"")
    assert tensorrt.unlinked_library(None) is None  # no wheel: a system TensorRT on the library path
    assert tensorrt.unlinked_library(folder) == (
        "TensorRT's wheel has no libnvinfer.so for Paddle to load (run `python deploy/paddle_build.py gpu "
        "--link-tensorrt` to link it)")
    (folder / "libnvinfer.so").symlink_to("libnvinfer.so.10")
    assert tensorrt.unlinked_library(folder) is None
    before = paddle.get_flags([tensorrt.TENSORRT_DIR_FLAG])[tensorrt.TENSORRT_DIR_FLAG]
    try:
        tensorrt.point_paddle_at(paddle, None)
        assert paddle.get_flags([tensorrt.TENSORRT_DIR_FLAG])[tensorrt.TENSORRT_DIR_FLAG] == before
        tensorrt.point_paddle_at(paddle, folder)
        assert paddle.get_flags([tensorrt.TENSORRT_DIR_FLAG])[tensorrt.TENSORRT_DIR_FLAG] == str(folder)
    finally:
        paddle.set_flags({tensorrt.TENSORRT_DIR_FLAG: before})

