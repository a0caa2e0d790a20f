"""benchmarks/gpu_smoke.py on this CPU machine: every check reports, the GPU ones skipped with their reason and
the CPU ones passed, on the session's trained bundle and a few 32 px images; a failing check fails the run."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from benchmarks import gpu_smoke
from benchmarks.gpu_smoke import GpuSampler

TINY = ["--images", "10", "--image-size", "32", "--batch-size", "5", "--soak-seconds", "0.5", "--clients", "2"]
GPU_ONLY = {"train_resnet50", "serve_tensorrt_fp16"}


@pytest.fixture(scope="module")
def smoke(trained, tmp_path_factory):
    """(exit code, the JSON report) of a tiny run that checks the trained bundle instead of exporting one."""
    out = tmp_path_factory.mktemp("gpu_smoke") / "gpu-smoke.json"
    code = gpu_smoke.main([*TINY, "--bundle", str(trained[1]), "--out", str(out)])
    return code, json.loads(out.read_text(encoding="utf-8"))


def test_on_a_cpu_the_gpu_checks_are_skipped_with_the_reason_and_the_others_pass(smoke):
    code, report = smoke
    checks = report["checks"]
    assert code == 0
    assert list(checks) == [name for name, _ in gpu_smoke.CHECKS]
    assert {name: c["status"] for name, c in checks.items()} == {
        name: "skipped" if name in GPU_ONLY else "passed" for name in checks}
    for name in GPU_ONLY:
        assert checks[name]["reason"].startswith("no CUDA build"), checks[name]
    assert report["device"] == "cpu" and report["gpu_checks_skipped_because"] == "no CUDA build"
    assert report["machine"]["paddle_cuda_build"] is False and report["machine"]["gpu"] is None
    assert "CPUExecutionProvider" in report["machine"]["onnxruntime_providers"]
    assert report["sizes"]["image_size"] == 32 and report["total_seconds"] > 0


def test_the_cpu_checks_report_their_figures(smoke):
    checks = smoke[1]["checks"]
    assert checks["probe"]["device"] == "cpu"
    training = checks["train_mobilenet_v3_small"]
    assert training["amp_dtype"] == "float32" and training["skipped_steps"] == 0
    assert training["images_per_s"] > 0 and training["plain_loop_images_per_s"] > 0
    assert training["losses_read"] and all(math.isfinite(loss) for loss in training["losses_read"])
    assert training["gpu"] == {"skipped": "no CUDA build"} and training["peak_gpu_memory_mb"] is None
    resume = checks["resume_round_trip"]
    assert (resume["on_cpu"]["weights_max_abs_diff"], resume["back"]["weights_max_abs_diff"]) == (0, 0)
    assert resume["on_cpu"]["resumed_from_epoch"] == 1 and resume["back"]["resumed_from_epoch"] == 2
    assert checks["export"]["exported"] is False and checks["export"]["onnx"]["max_abs_diff"] <= 1e-4
    parity = checks["onnx_parity"]
    assert parity["converted_here"] is False and parity["cpu_max_abs_diff"] <= parity["threshold"] == 1e-4
    serving = checks["serve_tensorrt_off"]
    assert serving["runtime"] == "paddle" and serving["p50_ms_batch_1"] > 0 and serving["p50_ms_batch_8"] > 0
    soak = checks["soak_with_eviction"]
    assert soak["requests"] > 0 and soak["errors"] == 0 and soak["version_1_unloaded"] is True


def test_a_failing_check_fails_the_run_with_its_reason(monkeypatch, tmp_path):
    def broken(run):
        raise RuntimeError("the kernel computed nonsense")

    monkeypatch.setattr(gpu_smoke, "CHECKS", (("install", gpu_smoke.check_install), ("probe", broken)))
    monkeypatch.setattr(gpu_smoke, "probe_in_child", lambda: {"device": "cpu", "problem": None})
    out = tmp_path / "report.json"
    assert gpu_smoke.main(["--out", str(out)]) == 1
    checks = json.loads(out.read_text(encoding="utf-8"))["checks"]
    assert checks["install"]["status"] == "passed"
    assert (checks["probe"]["status"], checks["probe"]["reason"]) == (
        "failed", "RuntimeError: the kernel computed nonsense")


BROKEN_CUDNN = {"device": "cpu", "problem": "gpu:0 failed its check: RuntimeError: Cannot load cudnn shared library"}


@pytest.mark.parametrize("machine, reason", [
    ({"paddle_cuda_build": False, "gpu": None}, "no CUDA build"),
    ({"paddle_cuda_build": True, "gpu": None}, "no GPU"),
    ({"paddle_cuda_build": True, "gpu": {"name": "NVIDIA H100"}, "probe": BROKEN_CUDNN},
     "gpu:0 failed the probe: gpu:0 failed its check: RuntimeError: Cannot load cudnn shared library"),
    ({"paddle_cuda_build": True, "gpu": {"name": "NVIDIA H100"}, "probe": {"device": "gpu:0", "problem": None}}, None)])
def test_the_gpu_checks_say_why_they_cannot_run(machine, reason):
    assert gpu_smoke.gpu_missing_reason(machine) == reason


class HalvedTwice:
    """A trainer whose fp16 loss scaler met inf/nan gradients twice: its scale went 65536 -> 16384."""

    class scaler:
        @staticmethod
        def state_dict():
            return {"scale": np.array([16384.0], dtype=np.float32), "incr_count": 0, "decr_count": 0}


def test_skipped_steps_are_read_from_the_loss_scale_and_are_none_without_a_scaler():
    assert gpu_smoke.skipped_steps(HalvedTwice())["skipped_steps"] == 2
    assert gpu_smoke.skipped_steps(SimpleNamespace(scaler=None))["skipped_steps"] == 0


def test_the_gpu_samples_say_why_there_are_none_or_sum_up():
    assert GpuSampler("no CUDA build").summary() == {"skipped": "no CUDA build"}
    sampler = GpuSampler(None)
    sampler.reason = None  # as on a machine with nvidia-smi
    sampler.samples += [(40.0, 1000.0), (80.0, 3000.0)]
    assert sampler.summary() == {"utilisation_mean": 60.0, "utilisation_max": 80.0, "memory_used_mb_max": 3000.0,
                                 "samples": 2}


def test_nvidia_smi_is_asked_about_the_gpu_paddle_trains_on(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu_smoke.smi_gpu() == "0"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")  # Paddle's gpu:0 is the host's GPU 3
    assert gpu_smoke.smi_gpu() == "3"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-5f2c1b7e-0000-4a2b-9c3d-000000000001")
    assert gpu_smoke.smi_gpu() == "GPU-5f2c1b7e-0000-4a2b-9c3d-000000000001"
