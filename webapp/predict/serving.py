"""Paddle Inference predictors for model bundles, loaded once per process and never shared by threads.

Serving reads only the bundle: `meta.json` says how to preprocess, the files say what to run.
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from engine.bundle import Bundle, BundleRejected, read_bundle

log = logging.getLogger(__name__)


@dataclass
class LoadedBundle:
    version: int
    bundle: Bundle
    pool: "PredictorPool"

    @property
    def decode_size(self) -> int:
        return self.bundle.preprocess.decode_size

    @property
    def classes(self) -> list[str]:
        return self.bundle.classes

    def classify(self, image: Image.Image, top_k: int) -> dict:
        rule = self.bundle.preprocess
        probabilities = self.pool.run(rule.batch(rule.square(image)[None]))[0]
        order = np.argsort(-probabilities)[:top_k]
        top = [{"class": self.classes[i], "confidence": round(float(probabilities[i]), 6)} for i in order]
        return {"class": top[0]["class"], "confidence": top[0]["confidence"], "top_k": top,
                "model_version": self.version}


class PredictorPool:
    """One Paddle Inference predictor per concurrent caller (clones share the weights).

    Every clone runs once at load, so no request pays for oneDNN's first-run kernel set-up.
    """

    def __init__(self, bundle: Bundle, size: int) -> None:
        from paddle import inference

        from engine.device import pick_device

        config = inference.Config(str(bundle.model_file), str(bundle.params_file))
        config.disable_glog_info()
        if pick_device().startswith("gpu"):
            config.enable_use_gpu(256, 0)
        else:
            config.disable_gpu()
        first = inference.create_predictor(config)
        self._idle: queue.LifoQueue = queue.LifoQueue()
        side = bundle.preprocess.input_size
        warmup = np.zeros([1, 3, side, side], dtype=np.float32)
        for predictor in [first] + [first.clone() for _ in range(size - 1)]:
            self._infer(predictor, warmup)
            self._idle.put(predictor)

    @staticmethod
    def _infer(predictor, batch: np.ndarray) -> np.ndarray:
        handle = predictor.get_input_handle(predictor.get_input_names()[0])
        handle.reshape(list(batch.shape))
        handle.copy_from_cpu(batch)
        predictor.run()
        return predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()

    def run(self, batch: np.ndarray) -> np.ndarray:
        predictor = self._idle.get()
        try:
            return self._infer(predictor, batch)
        finally:
            self._idle.put(predictor)


def load_bundle(folder: Path, version: int, pool_size: int) -> LoadedBundle:
    """Check every file's sha256 against meta.json, then build the predictors."""
    try:
        bundle = read_bundle(folder)
    except BundleRejected as exc:
        raise BundleRejected(f"Model version {version} cannot serve: {exc.message}") from None
    try:
        return LoadedBundle(version, bundle, PredictorPool(bundle, pool_size))
    except Exception as exc:
        raise BundleRejected(f"Model version {version} could not be loaded: {exc}") from exc


class ModelServer:
    """Loaded versions of this process, kept until deleted; refused versions are remembered."""

    def __init__(self, models_dir: Path, pool_size: int = 4) -> None:
        self.models_dir, self.pool_size = models_dir, pool_size
        self._loaded: dict[int, LoadedBundle] = {}
        self._refused: dict[int, str] = {}
        self._lock = threading.Lock()

    def get(self, version: int) -> LoadedBundle:
        """The loaded bundle of `version`, loading it on first use (raises BundleRejected)."""
        bundle = self._loaded.get(version)
        if bundle is not None:
            return bundle
        if version in self._refused:
            raise BundleRejected(self._refused[version])
        with self._lock:
            if version not in self._loaded:
                try:
                    self._loaded[version] = load_bundle(self.models_dir / str(version), version, self.pool_size)
                    log.info("model version %d loaded", version)
                except BundleRejected as exc:
                    log.error("%s", exc)
                    self._refused[version] = exc.message
                    raise
            return self._loaded[version]

    def newest_loadable(self, versions: list[int]) -> LoadedBundle:
        """The newest of `versions` that loads; a refused newer bundle leaves the previous one serving."""
        error = None
        for version in sorted(versions, reverse=True):
            try:
                return self.get(version)
            except BundleRejected as exc:
                error = exc
        raise error or BundleRejected("No model version can be loaded.")

    def forget(self, version: int) -> None:
        with self._lock:
            self._loaded.pop(version, None)
            self._refused.pop(version, None)
