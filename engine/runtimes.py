"""Inference runtimes for a bundle: Paddle Inference and ONNX Runtime, the ONNX export and its check,
and the measurement that chooses between them.

A session returned by `open_session` belongs to the thread that opened it: Paddle Inference keeps
per-thread state (oneDNN caches), so a predictor must be created and run on one thread only.

A bundle's model has two outputs: the probabilities (always the first, so anything that fetches output 0 gets
them) and the last feature map, fetched only by `Session.with_features`. The explain head (a second, small
program: feature map -> class maps) runs on the same runtime as the model, opened on first use.
"""
from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from engine.device import gpu_index, is_gpu
from engine.messages import N_, Message

log = logging.getLogger(__name__)
RUNTIMES = ("onnx", "paddle", "onnx_int8")  # onnx_int8 only in bundles whose int8 variant was kept
ONNX_FILE = "model.onnx"
ONNX_OPSET = 13
ONNX_TOLERANCE = 1e-4
EXPORT_TIMEOUT_SECONDS = 600

Run = Callable[[np.ndarray], np.ndarray]
RunWithFeatures = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class OnnxExportFailed(Exception):
    """paddle2onnx could not convert the model, or the result does not match Paddle Inference."""


@dataclass(frozen=True)
class ExplainFiles:
    """The explain head: a Paddle program and, when its conversion passed its check, its ONNX model."""

    model: Path
    params: Path
    onnx: Path | None


@dataclass(frozen=True)
class ModelFiles:
    """The files a runtime reads; `onnx` is None when the bundle has no ONNX model."""

    model: Path
    params: Path
    onnx: Path | None
    int8: Path | None = None  # the quantized ONNX model, when it was kept
    explain: ExplainFiles | None = None  # None in bundles made before explanations


class Session:
    """One runtime's model for the calling thread: `session(batch)` -> probabilities; `with_features(batch)`
    -> (probabilities, last feature map); `class_maps(features)` -> N x K x h x w (the explain head)."""

    def __init__(self, run: Run, with_features: RunWithFeatures | None, open_head: Callable[[], Run] | None,
                 fallback: Message | None = None) -> None:
        self._run, self._with_features, self._open_head = run, with_features, open_head
        self.fallback = fallback  # why it does not run on the device asked for (see `onnx_fallback`), or None
        self._head: Run | None = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self._run(batch)

    def close(self) -> None:
        """End the runtime's model now, on the calling thread; the session cannot run afterwards. Its owner
        chooses when a predictor ends (serving on a GPU: when no other predictor runs), rather than leaving it
        to whichever thread happens to drop the last reference."""
        self._run = self._with_features = self._open_head = _closed
        self._head = None

    @property
    def explains(self) -> bool:
        return self._with_features is not None and self._open_head is not None

    def with_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._with_features is None:
            raise FileNotFoundError("this model has no feature-map output")
        return self._with_features(batch)

    def class_maps(self, features: np.ndarray) -> np.ndarray:
        if self._open_head is None:
            raise FileNotFoundError("this bundle has no explain head for this runtime")
        if self._head is None:
            self._head = self._open_head()
        return self._head(features)


def _closed(*_) -> None:
    raise RuntimeError("this session was closed")


def open_session(files: ModelFiles, runtime: str, device: str = "cpu", cpu_threads: int = 1) -> Session:
    """The bundle's model on `runtime`, for use on the calling thread only (see `Session`). For TensorRT,
    `files` is the converted program (engine.tensorrt), which Paddle Inference runs like any other."""
    head = files.explain
    if runtime in ("onnx", "onnx_int8"):
        model = files.onnx if runtime == "onnx" else files.int8
        open_head = (lambda: _onnx_run(head.onnx, device, cpu_threads)[0]) if head and head.onnx else None
        run, with_features, fallback = _onnx_run(model, device, cpu_threads)
        return Session(run, with_features, open_head, fallback)
    open_head = (lambda: _paddle_run(ModelFiles(head.model, head.params, None), device, cpu_threads)[0]) \
        if head else None
    return Session(*_paddle_run(files, device, cpu_threads), open_head)


def paddle_config(files: ModelFiles, device: str, cpu_threads: int):
    """Paddle Inference's configuration for `device`: the GPU only when `device` names one (a CUDA build
    serving on "cpu" keeps off the GPU), else the CPU with `cpu_threads` math threads."""
    from engine.device import load_paddle

    inference = load_paddle().inference
    config = inference.Config(str(files.model), str(files.params))
    config.disable_glog_info()
    config.switch_ir_optim(True)
    if is_gpu(device):
        config.enable_use_gpu(256, gpu_index(device))
    else:
        config.disable_gpu()
        config.set_cpu_math_library_num_threads(cpu_threads)
    return config


def _paddle_run(files: ModelFiles, device: str, cpu_threads: int) -> tuple[Run, RunWithFeatures | None]:
    from engine.device import load_paddle

    predictor = load_paddle().inference.create_predictor(paddle_config(files, device, cpu_threads))
    source = predictor.get_input_handle(predictor.get_input_names()[0])
    outputs = [predictor.get_output_handle(name) for name in predictor.get_output_names()]

    def run(batch: np.ndarray) -> np.ndarray:
        source.reshape(list(batch.shape))
        source.copy_from_cpu(np.ascontiguousarray(batch, dtype=np.float32))
        predictor.run()
        return outputs[0].copy_to_cpu()

    def with_features(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return run(batch), outputs[1].copy_to_cpu()

    return run, (with_features if len(outputs) > 1 else None)


def onnx_providers(device: str) -> list[str]:
    """ONNX Runtime's providers for `device`: only the CPU's unless `device` is a GPU and this build has CUDA."""
    import onnxruntime

    if is_gpu(device) and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        preload_cuda_libraries()
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


@functools.cache
def preload_cuda_libraries() -> None:
    """Load the CUDA and cuDNN libraries of the nvidia-* wheels (site-packages/nvidia/) into this process once,
    before the first CUDA session: onnxruntime-gpu looks for them on the system's library path only, where the
    studio's install route puts none. A failure is logged; the session then says where it really runs."""
    import onnxruntime

    try:
        onnxruntime.preload_dlls(cuda=True, cudnn=True, msvc=False)
    except Exception as exc:  # an older onnxruntime without it, or a library that does not load
        log.warning("ONNX Runtime could not preload the CUDA libraries of the nvidia-* wheels: %s", exc)


def onnx_fallback(device: str, providers: list[str]) -> Message | None:
    """Why an ONNX session for `device` does not run where asked (`providers`: what the session reports it
    uses, `get_providers()`), or None: a GPU asked for and the CUDA provider missing is a silent CPU run."""
    if not is_gpu(device) or "CUDAExecutionProvider" in providers:
        return None
    return Message(N_("ONNX Runtime was asked for the GPU but runs on %(providers)s (is onnxruntime-gpu installed, "
                      "with its CUDA libraries?)."), {"providers": ", ".join(providers)})


def _onnx_run(model: Path | None, device: str, cpu_threads: int) \
        -> tuple[Run, RunWithFeatures | None, Message | None]:
    import onnxruntime

    if model is None:
        raise FileNotFoundError("this bundle has no such ONNX model")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = cpu_threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(model), options, providers=onnx_providers(device))
    fallback = onnx_fallback(device, session.get_providers())
    if fallback is not None:
        log.warning("%s", fallback)
    name = session.get_inputs()[0].name
    outputs = [output.name for output in session.get_outputs()]

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(outputs[:1], {name: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    def with_features(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities, features = session.run(outputs[:2], {name: np.ascontiguousarray(batch, dtype=np.float32)})
        return probabilities, features

    return run, (with_features if len(outputs) > 1 else None), fallback


def check_batch(input_size: int, count: int = 4) -> np.ndarray:
    """A fixed, normalised-looking batch for comparing runtimes."""
    return np.random.default_rng(1234).standard_normal((count, 3, input_size, input_size)).astype(np.float32)


def export_onnx(files: ModelFiles, target: Path, input_size: int, sessions: dict[str, Session] | None = None,
                check: np.ndarray | None = None, along: tuple[tuple[ModelFiles, Path], ...] = ()) -> float:
    """Convert the Paddle model to ONNX (opset >= 13) in a child process, so that a converter crash cannot
    take the caller down, then compare it with Paddle Inference on a fixed batch (`check`, by default
    `check_batch(input_size)`) by their first outputs. CPU sessions opened for the comparison are left in
    `sessions` (by runtime) for the caller to reuse. The models in `along` are converted by the same child
    process after this one (one start instead of several); a target of theirs that is missing afterwards
    failed, and the caller checks the others with `compare_onnx`.

    Returns the largest absolute difference; raises OnnxExportFailed (the file is then removed).
    """
    env = {**os.environ, "POLYGRAPHY_AUTOINSTALL_DEPS": "0"}  # never pip-install anything at run time
    command = [sys.executable, "-m", "engine.onnx_export"]
    for source, destination in ((files, target), *along):
        command += [str(source.model), str(source.params), str(destination)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=EXPORT_TIMEOUT_SECONDS,
                              cwd=Path(__file__).resolve().parent.parent)
    except subprocess.TimeoutExpired:
        raise OnnxExportFailed(Message(N_("paddle2onnx took longer than %(seconds)s s"),
                                       {"seconds": EXPORT_TIMEOUT_SECONDS})) from None
    if done.returncode != 0 or not target.is_file():
        target.unlink(missing_ok=True)
        lines = [line for line in (done.stderr or "").splitlines() if line.strip()]
        raise OnnxExportFailed(lines[-1] if lines else Message(N_("paddle2onnx exited with %(code)s"),
                                                               {"code": done.returncode}))
    return compare_onnx(files, target, check_batch(input_size) if check is None else check, sessions)


def compare_onnx(files: ModelFiles, target: Path, batch: np.ndarray, sessions: dict[str, Session] | None = None) -> float:
    """The largest absolute difference between the converted `target` and the Paddle model on `batch` (their
    first outputs); raises OnnxExportFailed (the file is then removed) when it cannot run or differs too much."""
    sessions = {} if sessions is None else sessions
    try:
        sessions["onnx"] = open_session(ModelFiles(files.model, files.params, target), "onnx")
        sessions.setdefault("paddle", open_session(files, "paddle"))
        difference = float(np.abs(sessions["onnx"](batch) - sessions["paddle"](batch)).max())
    except Exception as exc:
        target.unlink(missing_ok=True)
        raise OnnxExportFailed(Message(N_("ONNX Runtime cannot run the converted model: %(error)s"),
                                       {"error": str(exc)})) from None
    if not difference <= ONNX_TOLERANCE:
        target.unlink(missing_ok=True)
        raise OnnxExportFailed(Message(N_("the ONNX model differs from Paddle by %(difference)s (limit %(limit)s)"),
                                       {"difference": format(difference, ".2g"), "limit": format(ONNX_TOLERANCE, "g")}))
    return difference


def measure(files: ModelFiles, input_size: int, device: str, cpu_threads: int, repeats: int = 20,
            sessions: dict[str, Session] | None = None) -> dict:
    """Median milliseconds per single-image run of each runtime the bundle has, and the faster one.
    `sessions` holds already opened sessions for this device and thread count, by runtime; the sessions this
    opens join it, so that the caller decides when they end (on a GPU, at a quiet moment)."""
    batch = check_batch(input_size, 1)
    timings, fell_back = {}, False
    sessions = {} if sessions is None else sessions
    for runtime in RUNTIMES:
        if (runtime == "onnx" and files.onnx is None) or (runtime == "onnx_int8" and files.int8 is None):
            continue
        if runtime not in sessions:
            sessions[runtime] = open_session(files, runtime, device, cpu_threads)
        session = sessions[runtime]
        fell_back = fell_back or session.fallback is not None
        timings[runtime] = median_ms(session, batch, repeats)
    return {"runtime": min(timings, key=timings.get), "ms": timings, "cpu_threads": cpu_threads,
            "where": measured_where(device, cpu_threads, fell_back)}


def measured_where(device: str, cpu_threads: int, onnx_fell_back: bool = False) -> dict:
    """Where a measurement was taken: the device's kind and model, and the runtime options it ran with
    (ONNX Runtime's providers: the CPU's alone when a GPU session fell back to it, so a GPU worker's
    timing of ONNX on its CPU is not mistaken for one on its GPU)."""
    from engine.device import device_kind, device_model

    providers = ["CPUExecutionProvider"] if onnx_fell_back else onnx_providers(device)
    return {"device": device_kind(device), "model": device_model(device), "cpu_threads": cpu_threads,
            "onnx_providers": providers}


def median_ms(session: Session, batch: np.ndarray, repeats: int = 20) -> float:
    """Median milliseconds of `session` on `batch`, after three warm-up runs."""
    for _ in range(3):
        session(batch)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        session(batch)
        samples.append(time.perf_counter() - started)
    return round(float(np.median(samples)) * 1000, 3)
