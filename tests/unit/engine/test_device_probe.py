"""The device probe runs kernels: on this CPU machine it answers `cpu` with no problem; a GPU whose kernels
fail (a broken CUDA install) gives `cpu` and the reason, and a Paddle that runs no kernel at all gives none."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from engine import device
from engine.device import NO_DEVICE, pick_device, print_probe, probe_kernels


@pytest.fixture
def broken_gpu(monkeypatch):
    """A CUDA build with one visible GPU whose kernels cannot load cuDNN; the CPU is this machine's."""
    paddle = device.load_paddle()

    def set_device(name):
        if name.startswith("gpu"):
            raise RuntimeError("(PreconditionNotMet) Cannot load cudnn shared library.\n  [Hint: ...]")
        paddle.set_device(name)

    fake = SimpleNamespace(
        __version__=paddle.__version__, get_device=paddle.get_device, set_device=set_device, ones=paddle.ones,
        matmul=paddle.matmul, nn=paddle.nn,
        device=SimpleNamespace(is_compiled_with_cuda=lambda: True, cuda=SimpleNamespace(
            device_count=lambda: 1, get_device_name=lambda index: "NVIDIA H100 80GB HBM3")),
        version=SimpleNamespace(cuda=lambda: "12.6", cudnn=lambda: "9.5.0"))
    monkeypatch.setattr(device, "load_paddle", lambda: fake)
    pick_device.cache_clear()
    yield fake
    pick_device.cache_clear()


def test_on_this_cpu_machine_the_probe_answers_cpu_as_one_json_line(capsys):
    print_probe()
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report == {"device": "cpu", "problem": None, "paddle": device.load_paddle().__version__}


def test_a_gpu_whose_kernels_fail_gives_the_cpu_and_the_reason(broken_gpu):
    report = probe_kernels()
    assert report["device"] == "cpu"
    assert report["problem"] == "gpu:0 failed its check: RuntimeError: (PreconditionNotMet) Cannot load cudnn " \
                                "shared library."
    assert (report["gpu_name"], report["cuda"], report["cudnn"]) == ("NVIDIA H100 80GB HBM3", "12.6", "9.5.0")
    assert pick_device() == "cpu"  # the trainer's own choice in a pool process agrees


def test_a_paddle_that_runs_no_kernel_gives_no_device_and_both_reasons(broken_gpu, monkeypatch):
    monkeypatch.setattr(broken_gpu, "matmul", lambda a, b: (_ for _ in ()).throw(MemoryError("out of memory")))
    monkeypatch.setattr(broken_gpu, "set_device", lambda name: None)
    report = probe_kernels()
    assert report["device"] == NO_DEVICE
    assert report["problem"] == "gpu:0 failed its check: MemoryError: out of memory; cpu: MemoryError: out of memory"


def test_a_paddle_that_cannot_be_imported_is_a_reason(monkeypatch):
    def no_paddle():
        raise ImportError("libcudart.so.12: cannot open shared object file")

    monkeypatch.setattr(device, "load_paddle", no_paddle)
    assert probe_kernels() == {"device": NO_DEVICE, "paddle": None,
                               "problem": "ImportError: libcudart.so.12: cannot open shared object file"}


def test_wrong_values_are_a_failure_too(broken_gpu, monkeypatch):
    monkeypatch.setattr(broken_gpu, "set_device", lambda name: None)
    monkeypatch.setattr(broken_gpu, "matmul", lambda a, b: a)  # ones, not eights
    report = probe_kernels()
    assert report["device"] == NO_DEVICE and "ArithmeticError: the kernels on gpu:0 computed wrong values" in \
        report["problem"]
