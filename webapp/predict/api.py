"""POST /api/predict: classify one image with the newest (or a pinned) model version."""
from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify, request

from engine.bundle import BundleRejected
from engine.errors import StudioError
from engine.images import ImageRejected, open_checked
from webapp.predict.serving import VersionUnloaded
from webapp.registry import services as registry

api = Blueprint("predict_api", __name__, url_prefix="/api")


def _read_image() -> bytes:
    limit = current_app.config["PREDICT_MAX_BYTES"]
    request.max_content_length = limit + 64 * 1024  # also bounds chunked bodies, which have no length
    too_large = StudioError("file_too_large", f"The image is larger than {limit / 2**20:g} MB.", field="image")
    if request.content_length is not None and request.content_length > limit + 64 * 1024:
        raise too_large
    upload = request.files.get("image")
    if upload is None:
        raise StudioError("missing_field", "Send the image as the multipart field 'image'.", field="image")
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise too_large
    if not data:
        raise StudioError("empty_file", "The image file is empty.", field="image")
    return data


def _int_field(name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.form.get(name, request.args.get(name))
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise StudioError("invalid_field", f"'{name}' must be a whole number.", field=name) from None
    if not low <= value <= high:
        raise StudioError("invalid_field", f"'{name}' must be between {low} and {high}.", field=name)
    return value


def _loaded(version: int | None):
    server = current_app.extensions["model_server"]
    versions = server.versions(registry.all_versions)
    if not versions:
        raise StudioError("no_model", "There is no trained model yet: open a dataset and start training first.")
    try:
        if version is None:
            return server.newest_loadable(versions)
        if version not in versions:
            raise StudioError("model_version_not_found", f"Model version {version} does not exist.",
                              field="version")
        return server.get(version)
    except BundleRejected as exc:
        raise StudioError(exc.code, exc.message, field="version") from None


@api.post("/predict")
def predict():
    data = _read_image()
    version = _int_field("version", None, 1, 10**9)
    top_k = _int_field("top_k", 5, 1, 1000)
    started = time.perf_counter()
    for _ in range(3):
        loaded = _loaded(version)
        try:
            image, _ = open_checked(data, current_app.config["PREDICT_MAX_PIXELS"], loaded.decode_size)
            result = loaded.classify(image, min(top_k, len(loaded.classes)))
            break
        except ImageRejected as exc:
            raise StudioError(exc.code, exc.message, field="image") from None
        except VersionUnloaded:
            continue  # unloaded by another request meanwhile: load it again
    else:
        raise StudioError("model_busy", "The model is being reloaded; try again in a moment.")
    result["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return jsonify(result)
