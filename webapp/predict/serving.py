"""Paddle Inference predictors for model bundles, loaded once per process and never shared by threads.

Serving reads only the bundle: `meta.json` says how to preprocess, the files say what to run.
"""
from __future__ import annotations

import io
import json
import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from worker.engine.digest import file_digest
from worker.engine.imageio import resize_shorter_and_crop

log = logging.getLogger(__name__)
ACCEPTED_FORMATS = {"JPEG", "PNG", "GIF", "BMP", "WEBP"}


class BadImage(Exception):
    """An upload that cannot be classified; `status` is the HTTP status that fits."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class BundleRejected(Exception):
    """A bundle whose files fail their sha256 check or cannot be loaded."""


def decode_upload(data: bytes, max_pixels: int, shorter: int | None = None) -> Image.Image:
    """Open and decode an uploaded image, refusing bombs before decoding them.

    With `shorter`, a large JPEG is decoded at a reduced scale (the bundle's rule, as in training);
    the whole stream is still read, so truncation is still caught.
    """
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise BadImage(415, "The file is not an image; send a JPEG, PNG, GIF, BMP or WEBP.") from None
    except Image.DecompressionBombError:
        raise BadImage(400, "The image has too many pixels to be decoded safely.") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise BadImage(400, "The image is truncated or corrupt.") from None
    if image.format not in ACCEPTED_FORMATS:
        raise BadImage(415, f"{image.format} images are not supported; send a JPEG, PNG, GIF, BMP or WEBP.")
    width, height = image.size
    if width * height > max_pixels:
        raise BadImage(400, f"The image is {width}x{height} pixels; the limit is {max_pixels / 1e6:.0f} megapixels.")
    try:
        if shorter:
            image.draft("RGB", (shorter, shorter))
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError):
        raise BadImage(400, "The image is truncated or corrupt.") from None
    return image


def preprocess(image: Image.Image, rule: dict) -> np.ndarray:
    """The bundle's own preprocessing rule -> float32 1x3xSxS."""
    square = resize_shorter_and_crop(image, rule["resize_shorter"])
    offset = (square.shape[0] - rule["center_crop"]) // 2
    crop = square[offset:offset + rule["center_crop"], offset:offset + rule["center_crop"]]
    mean = np.asarray(rule["mean"], dtype=np.float32)
    std = np.asarray(rule["std"], dtype=np.float32)
    scaled = crop.astype(np.float32) * np.float32(rule["scale"])
    return ((scaled - mean) / std).transpose(2, 0, 1)[None].copy()


@dataclass
class LoadedBundle:
    version: int
    meta: dict
    pool: "PredictorPool"

    @property
    def decode_size(self) -> int:
        return self.meta["preprocess"]["resize_shorter"]

    def classify(self, image: Image.Image, top_k: int) -> dict:
        probabilities = self.pool.run(preprocess(image, self.meta["preprocess"]))[0]
        order = np.argsort(-probabilities)[:top_k]
        classes = self.meta["classes"]
        top = [{"class": classes[i], "confidence": round(float(probabilities[i]), 6)} for i in order]
        return {"class": top[0]["class"], "confidence": top[0]["confidence"], "top_k": top,
                "model_version": self.version}


class PredictorPool:
    """One Paddle Inference predictor per concurrent caller (clones share the weights).

    Every clone runs once at load, so no request pays for oneDNN's first-run kernel set-up.
    """

    def __init__(self, folder: Path, size: int, input_shape: list[int]) -> None:
        from paddle import inference

        from worker.engine.device import pick_device

        config = inference.Config(str(folder / "model.json"), str(folder / "model.pdiparams"))
        config.disable_glog_info()
        if pick_device().startswith("gpu"):
            config.enable_use_gpu(256, 0)
        else:
            config.disable_gpu()
        first = inference.create_predictor(config)
        self._idle: queue.LifoQueue = queue.LifoQueue()
        warmup = np.zeros(input_shape, dtype=np.float32)
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
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleRejected(f"Model version {version} has no readable meta.json.") from exc
    for name, expected in meta.get("files", {}).items():
        path = folder / name
        if not path.is_file() or file_digest(path) != expected:
            raise BundleRejected(f"Model version {version} failed its integrity check: {name} is missing or "
                                 "does not match its sha256.")
    try:
        size = meta["input_size"]
        return LoadedBundle(version, meta, PredictorPool(folder, pool_size, [1, 3, size, size]))
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
                    self._refused[version] = str(exc)
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
