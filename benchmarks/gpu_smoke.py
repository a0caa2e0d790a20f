"""The GPU path in one command: install, probe, training, checkpoints, export and serving, with a readable report.

    python benchmarks/gpu_smoke.py [--out gpu-smoke.json] [--quick]

Each check is a function returning a dict with `status` ("passed", "failed" or "skipped") and, when it did not
pass, the `reason`. The run writes ONE JSON file (the checks, the machine, the sizes, total seconds), prints one
line per check and the file's path, and exits 1 when a check failed, else 0. On a machine without a usable GPU
the GPU checks are skipped with the reason ("no CUDA build", "no GPU", the probe's failure) and the CPU-side
ones run: the install report, the probe, the small model's training at a small size, the checkpoint round trip
CPU -> CPU, the ONNX parity, CPU serving and a short soak.

Sizes (SIZES). On a GPU: 768 generated 224 px images of 5 classes, batch 64, 2 epochs per model: 12 steps an
epoch, enough for the second epoch's images/s to be past cuDNN's first-step tuning, while the images are
generated and decoded in seconds; resnet50 at that size trains an epoch in about a second on an H100 and the
whole run (two trainings, the plain loops, the resume, the ONNX export, a TensorRT conversion, a 30 s soak with
32 clients) stays well under 10 minutes. On a CPU the small model trains on 96 images at 64 px (resnet50 is
left to the GPU run). `--quick` shortens every figure (fewer images, a 10 s soak; 32 px on a CPU), and each
size has its own flag for tests and tuning.

Weights start untrained (`pretrained=False`): a smoke run needs no download, and speed does not depend on them.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import inspect
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.amp import LossScaler, loss_scaler, scaler_state  # noqa: E402
from engine.backbones import build_backbone  # noqa: E402
from engine.bundle import Bundle, read_bundle  # noqa: E402
from engine.checkpoint import CheckpointStore  # noqa: E402
from engine.config import TrainConfig  # noqa: E402
from engine.data import Sample  # noqa: E402
from engine.device import NO_DEVICE, device_model, in_words, is_gpu, load_paddle  # noqa: E402
from engine.runtimes import (ONNX_FILE, ONNX_TOLERANCE, ModelFiles, check_batch, export_onnx, median_ms,  # noqa: E402
                             open_session)
from engine.tensorrt import tensorrt_missing  # noqa: E402
from engine.trainer import Callbacks, FitResult, Trainer, TrainData, reads_loss  # noqa: E402

log = logging.getLogger("gpu_smoke")
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
SMALL, LARGE = "mobilenet_v3_small", "resnet50"
PALETTE = ((200, 60, 50), (60, 170, 80), (50, 80, 190), (200, 180, 60), (150, 70, 170))
CHECKPOINT_KEY = b"gpu-smoke"  # signs the run's own checkpoints, which live only in its temporary folder
LATENCY_REPEATS = 30
VERSION_LOOKUPS = 3  # a request looks its version up again this often when it was unloaded meanwhile (as the API)


@dataclass(frozen=True)
class Sizes:
    """How much the run does: generated images, their size, the batch, the soak."""

    images: int
    image_size: int
    batch_size: int
    soak_seconds: float
    clients: int
    epochs: int = 2


# (on a GPU, --quick): see the module's docstring for why these sizes.
SIZES = {(True, False): Sizes(768, 224, 64, 30.0, 32), (True, True): Sizes(256, 224, 64, 10.0, 32),
         (False, False): Sizes(96, 64, 16, 10.0, 8), (False, True): Sizes(32, 32, 8, 3.0, 4)}


@dataclass
class Trained:
    """A finished training check's trainer, its result and its first epoch's checkpoint, for the checks after it."""

    trainer: Trainer
    result: FitResult
    first_checkpoint: CheckpointStore


@dataclass
class SmokeRun:
    """What the checks share: the sizes, a work folder, the device and, as checks finish, what they made."""

    sizes: Sizes
    work: Path
    device: str  # where training and serving run: "gpu:0", or "cpu" when the GPU checks are skipped
    gpu_missing: str | None  # why the GPU checks are skipped (None on a working GPU)
    machine: dict
    bundle: Path | None = None  # given with --bundle, or exported by the export check
    trained: dict[str, Trained] = field(default_factory=dict)
    data: TrainData | None = None

    @property
    def studio(self):
        """The run's own data folder (webapp.storage.DataDir): its models folder and TensorRT cache."""
        from webapp.storage import DataDir

        return DataDir(self.work / "studio")

    def training_data(self) -> TrainData:
        """The generated images (made on first use): a quarter of them, at least one batch, for validation."""
        if self.data is None:
            side = self.sizes.image_size * 5 // 4
            val = max(self.sizes.batch_size, self.sizes.images // 4)
            self.data = TrainData([f"colour {i}" for i in range(len(PALETTE))],
                                  generated_images(self.work / "train", self.sizes.images, side, seed=1),
                                  generated_images(self.work / "val", val, side, seed=2))
        return self.data


def generated_images(folder: Path, count: int, side: int, seed: int) -> list[Sample]:
    """`count` PNGs of noisy colour, one class per colour of PALETTE in turn."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for index in range(count):
        label = index % len(PALETTE)
        noise = rng.integers(-40, 41, (side, side, 3))
        pixels = np.clip(np.array(PALETTE[label]) + noise, 0, 255).astype(np.uint8)
        path = folder / f"{index}.png"
        Image.fromarray(pixels).save(path)
        samples.append(Sample(str(path), label, hashlib.sha256(path.read_bytes()).hexdigest()))
    return samples


def skipped(reason: str) -> dict:
    return {"status": SKIPPED, "reason": reason}


def failed_unless(problems: list[str], figures: dict) -> dict:
    """`figures` as a passed check, or a failed one whose reason lists `problems`."""
    if problems:
        return {"status": FAILED, "reason": "; ".join(problems), **figures}
    return {"status": PASSED, **figures}


# ---- the machine -------------------------------------------------------------------------------------------

def smi_gpu() -> str:
    """The GPU that Paddle calls gpu:0, as nvidia-smi's `-i` names it: the first of CUDA_VISIBLE_DEVICES (an
    index or a UUID) when that is set, else GPU 0 (nvidia-smi itself ignores CUDA_VISIBLE_DEVICES)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return visible or "0"


def nvidia_smi(*query: str) -> list[str] | None:
    """nvidia-smi's answer to `--query-gpu=<query>` for the training GPU (one value per field), or None."""
    if shutil.which("nvidia-smi") is None:
        return None
    done = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(query)}", "--format=csv,noheader,nounits",
                           "-i", smi_gpu()], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        return None
    return [value.strip() for value in done.stdout.strip().split(",")]


def gpu_facts(paddle) -> dict | None:
    """GPU 0 as Paddle sees it (name, memory, compute capability), or None when it sees none."""
    if not paddle.device.is_compiled_with_cuda() or paddle.device.cuda.device_count() == 0:
        return None
    properties = paddle.device.cuda.get_device_properties(0)
    return {"name": properties.name, "memory_mb": round(properties.total_memory / 2 ** 20),
            "compute_capability": f"{properties.major}.{properties.minor}",
            "count": paddle.device.cuda.device_count()}


def tensorrt_facts(paddle) -> dict:
    """Whether this build offers TensorRT (and why not), and the versions it was built with and finds."""
    missing = tensorrt_missing()
    facts = {"available": missing is None, "missing": None if missing is None else str(missing),
             "compiled_version": ".".join(map(str, paddle.inference.get_trt_compile_version()))}
    if missing is None:
        import tensorrt

        facts["runtime_version"] = ".".join(map(str, paddle.inference.get_trt_runtime_version()))
        facts["package_version"] = getattr(tensorrt, "__version__", None)
    return facts


def machine_facts() -> dict:
    """The CPU, the GPU and every version the checks depend on."""
    import onnxruntime

    paddle = load_paddle()
    driver, cuda_build = nvidia_smi("driver_version"), paddle.device.is_compiled_with_cuda()
    return {"cpu": device_model("cpu"), "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "paddle": paddle.__version__,
            "paddle_cuda_build": cuda_build, "cuda": str(paddle.version.cuda()) if cuda_build else None,
            "cudnn": str(paddle.version.cudnn()) if cuda_build else None, "gpu": gpu_facts(paddle),
            "nvidia_driver": driver[0] if driver else None, "tensorrt": tensorrt_facts(paddle),
            "onnxruntime": onnxruntime.__version__, "onnxruntime_providers": onnxruntime.get_available_providers()}


def probe_in_child() -> dict:
    """The worker's own device probe, run as the worker runs it: kernels in a child process, so that a CUDA
    install that crashes at the first convolution is reported instead of ending this run without its report."""
    from worker.beacon import probe_device

    found = probe_device()
    return {"device": found.device, "problem": found.problem}


def gpu_missing_reason(machine: dict) -> str | None:
    """Why the GPU checks cannot run here, or None: a CPU build, no visible GPU, or a GPU whose kernels fail."""
    if not machine["paddle_cuda_build"]:
        return "no CUDA build"
    if machine["gpu"] is None:
        return "no GPU"
    if not is_gpu(machine["probe"]["device"]):
        return f"gpu:0 failed the probe: {machine['probe']['problem']}"
    return None


class GpuSampler:
    """nvidia-smi's utilisation and memory of the training GPU, sampled every 200 ms by a thread inside its
    with-block."""

    def __init__(self, gpu_missing: str | None) -> None:
        self.reason = gpu_missing or (None if shutil.which("nvidia-smi") else "nvidia-smi not found")
        self.samples: list[tuple[float, float]] = []
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> "GpuSampler":
        if self.reason is None:
            self._process = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits", "-i",
                 smi_gpu(), "-lms", "200"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self._reader = threading.Thread(target=self._read, daemon=True)
            self._reader.start()
        return self

    def _read(self) -> None:
        for line in self._process.stdout:
            try:
                utilisation, memory = (float(value) for value in line.split(","))
            except ValueError:
                continue
            self.samples.append((utilisation, memory))

    def __exit__(self, *exc) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._reader.join(timeout=10)

    def summary(self) -> dict:
        """Mean and peak utilisation (%) and peak memory used (MB), or why there are none."""
        if self.reason is not None or not self.samples:
            return {"skipped": self.reason or "nvidia-smi gave no samples"}
        utilisation = [sample[0] for sample in self.samples]
        return {"utilisation_mean": round(float(np.mean(utilisation)), 1), "utilisation_max": max(utilisation),
                "memory_used_mb_max": max(sample[1] for sample in self.samples), "samples": len(self.samples)}


# ---- install and probe --------------------------------------------------------------------------------------

def check_install(run: SmokeRun) -> dict:
    """The install as versions; on a CUDA build with a GPU, the pieces the GPU route needs must be there
    (TensorRT is optional: without it the TensorRT check is skipped with Paddle's reason)."""
    facts, problems = run.machine, []
    if facts["paddle_cuda_build"] and facts["gpu"] is not None:
        if "CUDAExecutionProvider" not in facts["onnxruntime_providers"]:
            problems.append("ONNX Runtime has no CUDA provider (install onnxruntime-gpu instead of onnxruntime)")
    elif facts["paddle_cuda_build"]:
        problems.append("this CUDA build of Paddle sees no GPU (driver, CUDA_VISIBLE_DEVICES?)")
    keys = ("paddle", "paddle_cuda_build", "cuda", "cudnn", "tensorrt", "onnxruntime_providers", "gpu",
            "nvidia_driver")
    return failed_unless(problems, {key: facts[key] for key in keys})


def check_probe(run: SmokeRun) -> dict:
    """The worker's device probe (its kernels in a child process, run before any other check): a GPU machine
    must prove gpu:0, any machine a device."""
    report = run.machine["probe"]
    problems = []
    if report["device"] == NO_DEVICE:
        problems.append(report["problem"] or "no device ran the probe's kernels")
    elif run.machine["gpu"] is not None and not is_gpu(report["device"]):
        problems.append(report["problem"] or "the GPU did not run the probe's kernels")
    return failed_unless(problems, {"device": report["device"], "problem": report["problem"]})


# ---- training -----------------------------------------------------------------------------------------------

class JobWatch(Callbacks):
    """What a training check watches of the job: the losses it reports (every one read to the host during the
    steps) and a copy of its first checkpoint (the store keeps only the newest; a resume from the first one
    continues inside the learning-rate schedule). After the first epoch the GPU's samples start over, so they
    describe the steady epochs, not the image decoding and the first step's tuning."""

    def __init__(self, sampler: "GpuSampler", checkpoints: CheckpointStore, first_checkpoint: CheckpointStore) -> None:
        self.step_losses: list[float] = []
        self.sampler, self.checkpoints, self.first_checkpoint = sampler, checkpoints, first_checkpoint

    def on_step(self, epoch: int, step: int, steps: int, loss: float) -> None:
        if reads_loss(step, steps):  # other steps repeat the last loss read
            self.step_losses.append(loss)

    def on_epoch(self, stats) -> None:
        if stats.epoch == 1:
            self.sampler.samples.clear()

    def on_checkpoint(self, epoch: int, size_bytes: int) -> None:
        if epoch == 1:  # engine.checkpoint's layout: one folder `epoch-<k>` per checkpoint
            shutil.copytree(self.checkpoints.root / "epoch-1", self.first_checkpoint.root / "epoch-1")


def skipped_steps(trainer: Trainer) -> dict:
    """Steps the fp16 loss scaler skipped: each inf/nan step halves the scale (decr_every_n_nan_or_inf=1), and
    none doubles it before incr_every_n_steps (2000) finite steps, so in a shorter run the count is the
    scale's halvings from its start. bf16 and float32 have no scaler and skip nothing."""
    state = scaler_state(trainer.scaler)
    if state is None:
        return {"skipped_steps": 0, "skipped_steps_read_as": "no loss scaler (bf16 or float32 needs none)"}
    defaults = inspect.signature(LossScaler).parameters  # the scaler a job makes starts from Paddle's defaults
    start, doubling = defaults["init_loss_scaling"].default, defaults["incr_every_n_steps"].default
    return {"skipped_steps": round(math.log2(start / state["scale"])), "loss_scale": state["scale"],
            "skipped_steps_read_as": f"halvings of the loss scale from {start:g} (none doubles it in under "
                                     f"{doubling} steps)"}


def peak_memory_mb(paddle, device: str) -> float | None:
    return round(paddle.device.cuda.max_memory_allocated() / 2 ** 20, 1) if is_gpu(device) else None


def plain_amp_loop(backbone: str, classes: int, sizes: Sizes, device: str, dtype: str | None, steps: int) -> float:
    """Images/s of the minimum: the model, a loss, the loss scaler (fp16 only), Adam, on one batch already on
    the device, timed over `steps` steps after three warm-up steps."""
    paddle = load_paddle()
    paddle.set_device(device)
    model = build_backbone(backbone, classes, pretrained=False)
    model.train()
    optimizer = paddle.optimizer.Adam(1e-3, parameters=model.parameters(), use_multi_tensor=True)
    scaler = loss_scaler(dtype)
    x = paddle.randn([sizes.batch_size, 3, sizes.image_size, sizes.image_size])
    y = paddle.randint(0, classes, [sizes.batch_size])

    def step():
        with paddle.amp.auto_cast(enable=dtype is not None, dtype=dtype or "float16"):
            loss = paddle.nn.functional.cross_entropy(model(x), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        optimizer.clear_grad()
        return loss

    for _ in range(3):
        float(step())
    started = time.perf_counter()
    for _ in range(steps):
        loss = step()
    float(loss)  # waits for the device
    return steps * sizes.batch_size / (time.perf_counter() - started)


def check_training(run: SmokeRun, backbone: str) -> dict:
    """Train `backbone` for the run's epochs as a job does (the studio's Trainer, AMP on a GPU, checkpoints),
    then the plain AMP loop for as many steps: images/s of each and their ratio (target >= 0.9)."""
    if backbone != SMALL and run.gpu_missing:
        return skipped(f"{run.gpu_missing}: {backbone} trains in the GPU run only")
    paddle = load_paddle()
    if is_gpu(run.device):
        paddle.device.cuda.reset_max_memory_allocated()
    config = TrainConfig(backbone=backbone, pretrained=False, epochs=run.sizes.epochs,
                         batch_size=run.sizes.batch_size, image_size=run.sizes.image_size, warmup_epochs=0)
    data, sampler, plain_sampler = run.training_data(), GpuSampler(run.gpu_missing), GpuSampler(run.gpu_missing)
    store = CheckpointStore(run.work / f"checkpoints-{backbone}", CHECKPOINT_KEY)
    watch = JobWatch(sampler, store, CheckpointStore(run.work / f"first-checkpoint-{backbone}", CHECKPOINT_KEY))
    trainer = Trainer(config, data, run.work / "cache", watch, device=run.device)
    with sampler:
        result = trainer.fit(checkpoints=store)
    last = result.history[-1]
    with plain_sampler:
        plain = plain_amp_loop(backbone, len(data.class_names), run.sizes, run.device, trainer.amp_dtype,
                               len(trainer.train_loader))
    if backbone == SMALL:  # the later checks use the small model; the large one leaves the GPU's memory now
        run.trained[backbone] = Trained(trainer, result, watch.first_checkpoint)
    every_loss = [*watch.step_losses, *(value for s in result.history for value in (s.train_loss, s.val_loss))]
    problems = [] if all(math.isfinite(value) for value in every_loss) else ["a loss is not finite"]
    ratio = last.images_per_s / plain
    return failed_unless(problems, {
        "images_per_s": last.images_per_s, "plain_loop_images_per_s": round(plain, 2),
        "ratio_job_vs_plain": round(ratio, 3), "meets_target_0_9": ratio >= 0.9, "device": run.device,
        "amp_dtype": trainer.amp_dtype or "float32", **skipped_steps(trainer), "losses_read": every_loss,
        "epoch_seconds": [s.seconds for s in result.history], "gpu": sampler.summary(),
        "gpu_plain_loop": plain_sampler.summary(),
        "peak_gpu_memory_mb": peak_memory_mb(paddle, run.device), "train_images": len(data.train),
        "image_size": config.image_size, "batch_size": config.batch_size})


# ---- checkpoints ----------------------------------------------------------------------------------------------

def weights_difference(checkpoint, trainer: Trainer) -> float:
    """Load `checkpoint` into `trainer`'s model and optimizer on its device; the largest absolute difference
    between the weights loaded and the file's."""
    paddle = load_paddle()
    saved = paddle.load(str(checkpoint.folder / "model.pdparams"), return_numpy=True)
    checkpoint.load_into(trainer.model, trainer.optimizer)
    loaded = trainer.model.state_dict()
    return max(float(np.abs(loaded[name].numpy() - np.asarray(value)).max()) for name, value in saved.items())


def resume_on(run: SmokeRun, checkpoint, device: str, backbone: str, name: str) -> tuple[dict, CheckpointStore]:
    """Continue a run from `checkpoint` for one more epoch on `device` (on two batches of the images: what
    matters is that it continues): the weights' difference on loading, the new epoch's losses."""
    sizes, data = run.sizes, run.training_data()
    config = TrainConfig(backbone=backbone, pretrained=False, epochs=checkpoint.state.epoch + 1,
                         batch_size=sizes.batch_size, image_size=sizes.image_size, warmup_epochs=0)
    subset = TrainData(data.class_names, data.train[:2 * sizes.batch_size], data.val)
    trainer = Trainer(config, subset, run.work / "cache", device=device)
    trainer.prepare()
    trainer.build()
    difference = weights_difference(checkpoint, trainer)
    store = CheckpointStore(run.work / f"resumed-{name}", CHECKPOINT_KEY)
    result = trainer.fit(checkpoints=store, resume_from=checkpoint)
    epoch = result.history[-1]
    return {"device": device, "resumed_from_epoch": result.resumed_from_epoch, "weights_max_abs_diff": difference,
            "train_loss": epoch.train_loss, "val_loss": epoch.val_loss}, store


def check_resume(run: SmokeRun) -> dict:
    """The small model's first checkpoint (from the training device) resumed on the CPU, and the CPU's
    checkpoint resumed back on the training device: weights load exactly, losses stay finite."""
    trained = run.trained.get(SMALL)
    if trained is None:
        return skipped(f"{SMALL} did not train")
    checkpoint = trained.first_checkpoint.latest()
    on_cpu, cpu_store = resume_on(run, checkpoint, "cpu", SMALL, "cpu")
    back, _ = resume_on(run, cpu_store.latest(), run.device, SMALL, "back")
    problems = []
    for step in (on_cpu, back):
        if step["weights_max_abs_diff"] != 0:
            problems.append(f"weights changed loading on {step['device']} by {step['weights_max_abs_diff']:.3g}")
        if not (math.isfinite(step["train_loss"]) and math.isfinite(step["val_loss"])):
            problems.append(f"the loss after resuming on {step['device']} is not finite")
    return failed_unless(problems, {"from": run.device, "checkpoint_epoch": checkpoint.state.epoch,
                                    "scaler_state_kept": checkpoint.state.scaler is not None,
                                    "on_cpu": on_cpu, "back": back})


# ---- export and serving ---------------------------------------------------------------------------------------

def sample_batch(bundle: Bundle, run: SmokeRun, count: int) -> np.ndarray:
    """`count` generated images preprocessed by the bundle's own rule: the model's input."""
    squares = []
    for sample in generated_images(run.work / "probe-images", count, bundle.preprocess.decode_size, seed=3):
        with Image.open(sample.path) as image:
            squares.append(bundle.preprocess.square(image.convert("RGB")))
    return bundle.preprocess.batch(np.stack(squares))


def parity(files: ModelFiles, batch: np.ndarray, device: str) -> float:
    """The largest absolute difference of the probabilities of Paddle Inference and ONNX Runtime on `batch`."""
    paddle_session = open_session(files, "paddle", device)
    onnx_session = open_session(files, "onnx", device)
    return float(np.abs(paddle_session(batch) - onnx_session(batch)).max())


def check_export(run: SmokeRun) -> dict:
    """Export the small model's bundle as a job does (or take --bundle): it must have kept its ONNX model."""
    exported = run.bundle is None
    if exported:
        trained = run.trained.get(SMALL)
        if trained is None:
            return skipped(f"{SMALL} did not train")
        trained.trainer.export(run.work / "bundle", {"dataset": {"id": None}}, trained.result)
        run.bundle = run.work / "bundle"
    bundle = read_bundle(run.bundle)
    problems = [] if bundle.files.onnx is not None else [f"the export kept no ONNX model: {bundle.onnx_error}"]
    return failed_unless(problems, {"exported": exported, "bundle": None if exported else str(run.bundle),
                                    "onnx": bundle.meta.get("onnx"),
                                    "runtimes_measured": bundle.meta.get("runtimes")})


def onnx_files(run: SmokeRun, bundle: Bundle, batch: np.ndarray) -> tuple[ModelFiles, bool]:
    """The bundle's files with an ONNX model: its own, or, when its export kept none, one converted here by the
    export's own converter and checked on `batch` (raises OnnxExportFailed with the difference). Whether it
    was converted here."""
    if bundle.files.onnx is not None:
        return bundle.files, False
    target = run.work / "parity" / ONNX_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    files = ModelFiles(bundle.files.model, bundle.files.params, None)
    export_onnx(files, target, bundle.preprocess.input_size, check=batch)
    return ModelFiles(files.model, files.params, target), True


def check_onnx_parity(run: SmokeRun) -> dict:
    """ONNX Runtime against Paddle on the same generated images with the export's threshold, on the CPU (and
    reported on the GPU when there is one). A bundle without an ONNX model is converted here, so the parity on
    images like the model's own is known even when the export's check refused it; the difference on the
    export's own check batch (standard-normal noise) is reported beside it."""
    if run.bundle is None:
        return skipped("no bundle was exported")
    bundle = read_bundle(run.bundle)
    batch = sample_batch(bundle, run, 8)
    files, converted_here = onnx_files(run, bundle, batch)
    cpu = parity(files, batch, "cpu")
    figures = {"threshold": ONNX_TOLERANCE, "cpu_max_abs_diff": cpu, "images": len(batch),
               "converted_here": converted_here,
               "cpu_max_abs_diff_on_export_check_batch": parity(files, check_batch(bundle.preprocess.input_size),
                                                                "cpu")}
    if is_gpu(run.device):
        gpu = parity(files, batch, run.device)
        figures.update(gpu_max_abs_diff=gpu, gpu_within_threshold=gpu <= ONNX_TOLERANCE)
    problems = [] if cpu <= ONNX_TOLERANCE else [f"ONNX differs from Paddle by {cpu:.3g} (limit {ONNX_TOLERANCE:g})"]
    return failed_unless(problems, figures)


def serving_options(tensorrt: str, device: str, **changes):
    """The serving options a default studio uses on this machine, serving on `device` with TensorRT `tensorrt`."""
    from webapp.config import default_config, serving_options as from_config

    options = from_config(default_config())
    return dataclasses.replace(options, tensorrt=tensorrt, device="gpu" if is_gpu(device) else "cpu",
                               **changes)


def check_serving(run: SmokeRun, tensorrt: str) -> dict:
    """Load the bundle as a web process does (Paddle Inference; TensorRT fp16 when `tensorrt` says so): its
    creation time (and again from the TensorRT cache), and p50 at batch 1 and 8."""
    if run.bundle is None:
        return skipped("no bundle was exported")
    if tensorrt != "off":
        missing = run.gpu_missing or run.machine["tensorrt"]["missing"]
        if missing:
            return skipped(missing)
    options = serving_options(tensorrt, run.device, runtime="paddle", max_batch=8, threads=1)
    batch = sample_batch(read_bundle(run.bundle), run, 8)
    loaded, creation = timed_load(run, options)
    cached = None
    if tensorrt != "off":  # loaded again: the converted program now comes from the cache
        unload(loaded)
        loaded, cached = timed_load(run, options)
    try:
        figures = {"device": run.device, "runtime": loaded.runtime, "note": None if loaded.note is None
                   else str(loaded.note), "creation_seconds": creation, "creation_seconds_cached": cached,
                   "cpu_threads": options.cpu_threads,
                   "p50_ms_batch_1": median_ms(loaded.threads.run, batch[:1], LATENCY_REPEATS),
                   "p50_ms_batch_8": median_ms(loaded.threads.run, batch, LATENCY_REPEATS)}
    finally:
        unload(loaded)
    return failed_unless([figures["note"]] if tensorrt != "off" and loaded.note else [], figures)


def unload(loaded) -> None:
    """Stop a loaded version's threads and wait until each has ended its predictor, before anything else makes
    one (a GPU predictor ended while another is made or run is the crash the studio's serving avoids)."""
    loaded.threads.close()
    loaded.threads.join(60)


def timed_load(run: SmokeRun, options):
    """The bundle loaded as version 1 by the web app's own loader, and the seconds it took. Its TensorRT
    program is cached where the soak's server looks, so the soak converts nothing again."""
    from webapp.predict.serving import load_version

    started = time.perf_counter()
    loaded = load_version(run.bundle, 1, options, run.device, run.studio.tensorrt_cache)
    return loaded, round(time.perf_counter() - started, 3)


def soak_models(run: SmokeRun) -> Path:
    """The run's models folder holding the bundle twice, as versions 1 and 2."""
    for version in (1, 2):
        shutil.copytree(run.bundle, run.studio.model(version))
    return run.studio.models


def soak_request(server, batch: np.ndarray) -> None:
    """One prediction of version 1, looked up again when it was unloaded meanwhile (as the API does)."""
    from webapp.predict.serving import VersionUnloaded

    for _ in range(VERSION_LOOKUPS):
        try:
            server.get(1).threads.run(batch)
            return
        except VersionUnloaded:
            continue
    raise RuntimeError("the version kept being unloaded (the API answers model_busy)")


def soak_clients(server, batch: np.ndarray, clients: int, seconds: float, midway: Callable[[], None]) -> dict:
    """`clients` threads predicting for `seconds`; `midway` runs once half-way. Latencies and errors."""
    latencies, errors, lock = [], [], threading.Lock()
    deadline = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                soak_request(server, batch)
            except Exception as exc:
                with lock:
                    errors.append(in_words(exc))
                continue
            with lock:
                latencies.append(time.perf_counter() - started)

    with ThreadPoolExecutor(max_workers=clients + 1) as pool:
        running = [pool.submit(client) for _ in range(clients)]
        time.sleep(seconds / 2)
        midway()
        for future in running:
            future.result()
    return {"requests": len(latencies), "errors": len(errors), "first_errors": sorted(set(errors))[:3],
            "p50_ms": round(float(np.percentile(latencies, 50)) * 1000, 2) if latencies else None,
            "p95_ms": round(float(np.percentile(latencies, 95)) * 1000, 2) if latencies else None}


def check_soak(run: SmokeRun) -> dict:
    """Many clients on one version through the studio's ModelServer (one version kept loaded), with version 2
    loaded half-way, which unloads version 1 under load: no request may fail."""
    from webapp.predict.serving import ModelServer

    if run.bundle is None:
        return skipped("no bundle was exported")
    tensorrt = "fp16" if not run.gpu_missing and not run.machine["tensorrt"]["missing"] else "off"
    server = ModelServer(soak_models(run), serving_options(tensorrt, run.device, max_batch=8, max_versions=1),
                         device=run.device)
    batch = sample_batch(read_bundle(run.bundle), run, 1)
    server.get(1)
    evicted = {}

    def load_second() -> None:
        server.get(2)
        evicted["version_1_unloaded"] = server.loaded(1) is None

    with GpuSampler(run.gpu_missing) as sampler:
        figures = soak_clients(server, batch, run.sizes.clients, run.sizes.soak_seconds, load_second)
    server.close(60)  # every version unloaded, and its predictors ended, before the run goes on
    problems = [f"{figures['errors']} requests failed"] if figures["errors"] else []
    if not evicted.get("version_1_unloaded"):
        problems.append("loading version 2 did not unload version 1")
    if not figures["requests"]:
        problems.append("no request was answered")
    return failed_unless(problems, {**figures, **evicted, "clients": run.sizes.clients,
                                    "soak_seconds": run.sizes.soak_seconds, "tensorrt": tensorrt,
                                    "device": run.device, "gpu": sampler.summary()})


CHECKS: tuple[tuple[str, Callable[[SmokeRun], dict]], ...] = (
    ("install", check_install),
    ("probe", check_probe),
    (f"train_{SMALL}", partial(check_training, backbone=SMALL)),
    (f"train_{LARGE}", partial(check_training, backbone=LARGE)),
    ("resume_round_trip", check_resume),
    ("export", check_export),
    ("onnx_parity", check_onnx_parity),
    ("serve_tensorrt_off", partial(check_serving, tensorrt="off")),
    ("serve_tensorrt_fp16", partial(check_serving, tensorrt="fp16")),
    ("soak_with_eviction", check_soak),
)


# ---- the run ----------------------------------------------------------------------------------------------------

def run_check(run: SmokeRun, check: Callable[[SmokeRun], dict]) -> dict:
    """One check; an exception fails it with the exception as its reason (the traceback goes to the log)."""
    started = time.perf_counter()
    try:
        load_paddle().set_device(run.device)
        outcome = check(run)
    except Exception as exc:
        log.exception("check failed")
        outcome = {"status": FAILED, "reason": in_words(exc)}
    return {**outcome, "seconds": round(time.perf_counter() - started, 2)}


def run_checks(run: SmokeRun) -> dict[str, dict]:
    checks = {}
    for name, check in CHECKS:
        checks[name] = run_check(run, check)
        print(report_line(name, checks[name]), flush=True)
    return checks


def report_line(name: str, outcome: dict) -> str:
    """One line: status, name, then the reason, or the check's first few scalar figures."""
    if outcome.get("reason"):
        detail = outcome["reason"]
    else:
        scalars = [(key, value) for key, value in outcome.items()
                   if key not in ("status", "seconds") and isinstance(value, (int, float, str)) and value is not None]
        detail = ", ".join(f"{key}={value}" for key, value in scalars[:4])
    return f"{outcome['status']:<8} {name:<22} {outcome['seconds']:>7.1f} s  {detail}"


def exit_code(checks: dict[str, dict]) -> int:
    """1 when a check failed, else 0 (skipped checks do not fail the run)."""
    return int(any(outcome["status"] == FAILED for outcome in checks.values()))


def chosen_sizes(args: argparse.Namespace, gpu: bool) -> Sizes:
    """The preset for this machine and --quick, with any size given on the command line instead."""
    given = {name: getattr(args, name) for name in ("images", "image_size", "batch_size", "soak_seconds", "clients")
             if getattr(args, name) is not None}
    return dataclasses.replace(SIZES[(gpu, args.quick)], **given)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-smoke.json"), help="the JSON report's path")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and a shorter soak")
    parser.add_argument("--images", type=int, help="generated training images")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--soak-seconds", type=float)
    parser.add_argument("--clients", type=int, help="client threads of the soak")
    parser.add_argument("--bundle", type=Path, help="check this exported bundle instead of exporting one")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    machine = {**machine_facts(), "probe": probe_in_child()}
    gpu_missing = gpu_missing_reason(machine)
    device = "cpu" if gpu_missing else "gpu:0"
    sizes = chosen_sizes(args, gpu_missing is None)
    with tempfile.TemporaryDirectory(prefix="gpu-smoke-") as work:
        run = SmokeRun(sizes, Path(work), device, gpu_missing, machine, args.bundle)
        checks = run_checks(run)
    report = {"checks": checks, "machine": machine, "device": device, "gpu_checks_skipped_because": gpu_missing,
              "sizes": dataclasses.asdict(sizes), "quick": args.quick,
              "total_seconds": round(time.perf_counter() - started, 1)}
    args.out.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    counts = {status: sum(outcome["status"] == status for outcome in checks.values())
              for status in (PASSED, SKIPPED, FAILED)}
    print(", ".join(f"{count} {status}" for status, count in counts.items()),
          f"in {report['total_seconds']} s; report: {args.out.resolve()}")
    return exit_code(checks)


if __name__ == "__main__":
    logging.getLogger().setLevel(logging.WARNING)  # Paddle's INFO lines would drown the report's
    sys.exit(main())
