"""POST /api/predict: classify one image with the released (or, for people signed in, a pinned) model version."""
from __future__ import annotations

import time
import uuid

from flask import Blueprint, current_app, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from engine.bundle import BundleRejected
from engine.errors import StudioError
from engine.images import ACCEPTED_FORMATS, ImageRejected, open_checked
from engine.schema import refusal
from webapp.accounts.guard import effective_role
from webapp.contract import operation, parsed_query
from webapp.errors import get_or_404
from webapp.feedback import review
from webapp.feedback.holding import HeldPrediction
from webapp.models import DatasetImage
from webapp.predict.explaining import explain_dataset_image
from webapp.predict import schemas
from webapp.predict.body import RAW_MEDIA, PredictBody, parse_body
from webapp.predict.serving import VersionUnloaded
from webapp.process_metrics import count_prediction
from webapp.release import services as release
from webapp.storage import data_dir

api = Blueprint("predict_api", __name__, url_prefix="/api")


def _read_body() -> PredictBody:
    """The request's image and fields, reading at most the prediction limit (chunked bodies too)."""
    limit = current_app.config["PREDICT_MAX_BYTES"]
    allowed = limit + 64 * 1024  # the image plus the form's own lines and small fields
    too_large = StudioError("file_too_large", "The image is larger than %(mb)s MB.",
                            {"mb": format(limit / 2**20, "g")}, field="image")
    if request.content_length is not None and request.content_length > allowed:
        raise too_large
    request.max_content_length = allowed  # Werkzeug's own bound on the stream, chunked bodies included
    # A read allocates a buffer of the size asked for: the declared length when there is one (plus one byte
    # that must not come), the limit only for a chunked body.
    expected = request.content_length if request.content_length is not None else allowed
    try:
        data = request.stream.read(expected + 1)
        if len(data) > allowed or (len(data) == allowed and request.stream.read(1)):
            raise too_large
    except RequestEntityTooLarge:  # the stream's bound was reached: more was sent than is allowed
        raise too_large from None
    body = parse_body(data, request.headers.get("Content-Type"))
    if body.image is None:
        raise StudioError("missing_field", "Send the image as the multipart field 'image'.", field="image")
    if len(body.image) > limit:
        raise too_large
    if not body.image:
        raise StudioError("empty_file", "The image file is empty.", field="image")
    return body


def _options(body: PredictBody) -> schemas.PredictOptions:
    """The options sent as form fields or in the query (a form field wins). Without signing in, the
    released model answers: a pin would reach unreleased versions and their classes."""
    sent = {**request.args.to_dict(), **body.fields}
    if effective_role() is None and sent.get("version") not in (None, ""):
        raise StudioError("forbidden", "Without signing in, the released model answers; sign in or send an API "
                                       "token to choose a version.", field="version")
    try:
        return schemas.PredictOptions.model_validate(sent)
    except ValidationError as exc:
        raise refusal(schemas.PredictOptions, exc) from None


CLIENT_COOKIE = "studio_client"  # set by the predict page: keeps one browser on one arm
MAX_CLIENT_KEY = 200


def _client_key() -> str | None:
    key = request.headers.get("X-Client-Id") or request.cookies.get(CLIENT_COOKIE)
    if key is not None and not 0 < len(key) <= MAX_CLIENT_KEY:
        raise StudioError("invalid_field", "'X-Client-Id' must be 1 to %(max)s characters.", {"max": MAX_CLIENT_KEY},
                          field="X-Client-Id")
    return key


def _answering(version: int | None):
    """The loaded version that answers, its arm, and when it abstains (an AbstainRule, or None)."""
    server = current_app.extensions["model_server"]
    catalog = server.catalog(release.catalog, release.revision)
    if not catalog.versions:
        raise StudioError("no_model", "There is no trained model yet: open a dataset and start training first.")
    try:
        if version is None:
            loaded, arm = server.route(catalog, _client_key())
        elif version not in catalog.versions:
            raise StudioError("model_version_not_found", "Model version %(version)s does not exist.",
                              {"version": version}, field="version")
        else:
            loaded, arm = server.get(version), "pinned"
    except BundleRejected as exc:
        raise StudioError(exc.code, exc.template, exc.params, field="version") from None
    return loaded, arm, catalog.thresholds.get(loaded.version)


# Why a prediction can be refused: its body, its image, and the versions there are to answer it.
REFUSALS = ("missing_field", "invalid_body", "invalid_field", "empty_file", "file_too_large", "not_an_image",
            "unsupported_image_format", "image_too_large", "image_aspect_ratio", "image_corrupt", "no_model",
            "model_version_not_found", "model_bundle_rejected", "model_busy", "rate_limit_unavailable",
            "explanation_unavailable")


def _check_explains(loaded, explain: bool) -> None:
    """An explanation asked of a version that cannot give one is refused, naming the reason."""
    reason = loaded.explanation_unavailable if explain else None
    if reason is not None:
        raise StudioError("explanation_unavailable", "Model version %(version)s cannot explain its answers: "
                          "%(reason)s.", {"version": loaded.version, "reason": reason}, field="explain")


@api.post("/predict")
@operation(form=schemas.PredictForm, raw=RAW_MEDIA, query=schemas.PredictOptions,
           answers={200: schemas.Prediction}, errors=REFUSALS, tags=("predict",))
def predict():
    """Classify one image with the released model version (or, signed in, the `version` asked for).

    The body is read whole up to PREDICT_MAX_BYTES (and a little for the form's own lines): the image as
    the multipart field `image`, or as the body itself with an image Content-Type."""
    body = _read_body()
    data = body.image
    options = _options(body)
    version, top_k = options.version, options.top_k
    started = time.perf_counter()
    for _ in range(3):
        loaded, arm, threshold = _answering(version)
        try:
            image, _ = open_checked(data, current_app.config["PREDICT_MAX_PIXELS"], loaded.decode_size)
            extension = ACCEPTED_FORMATS[image.format]
        except ImageRejected as exc:
            raise StudioError(exc.code, exc.template, exc.params, field="image") from None
        _check_explains(loaded, options.explain != "0")
        try:
            result = loaded.classify(image, min(top_k, len(loaded.classes)), threshold,
                                     explain=options.explain != "0", heat_map=options.explain == "png")
            break
        except VersionUnloaded:
            continue  # unloaded by another request meanwhile: look it up again
        except Exception:
            _record(loaded.version, arm, started, None)
            raise
    else:
        raise StudioError("model_busy", "The model is being reloaded; try again in a moment.")
    elapsed_ms = (time.perf_counter() - started) * 1000
    _record(loaded.version, arm, started, result["confidence"], result["abstained"])
    count_prediction(loaded.version, arm, result["runtime"], elapsed_ms / 1000, result["abstained"])
    prediction_id = str(uuid.uuid4())
    current_app.extensions["prediction_hold"].keep(HeldPrediction(
        prediction_id, loaded.version, arm, result["top_k"][0]["class"], result["confidence"], result["abstained"],
        extension, time.time(), data))
    review.offer(prediction_id, loaded.version, arm, result, data)
    return jsonify({"id": prediction_id, **result, "arm": arm, "elapsed_ms": round(elapsed_ms, 2)})


def _record(version: int, arm: str, started: float, confidence: float | None, abstained: bool = False) -> None:
    current_app.extensions["serving_stats"].record(version, arm, (time.perf_counter() - started) * 1000,
                                                   confidence, abstained)


# Explanations of dataset images, for the misclassified gallery: read-only (no statistics, no feedback hold).
@api.get("/models/<int:version>/explanations")
@operation(query=schemas.ExplainQuery, answers={200: schemas.ImageExplanation}, tags=("predict",),
           errors=("model_version_not_found", "image_not_found", "model_bundle_rejected", "explanation_unavailable",
                   "not_an_image", "image_corrupt", "image_too_large", "model_busy"))
def explain_image(version: int):
    """Where model `version` looks in a dataset image (`image`): its top classes and the top class's map, with
    the heat map PNG. Computed by this process's model server; nothing is recorded."""
    query = parsed_query()
    if version not in current_app.extensions["model_server"].catalog(release.catalog, release.revision).versions:
        raise StudioError("model_version_not_found", "Model version %(version)s does not exist.",
                          {"version": version})
    stored = get_or_404(DatasetImage, query.image, "Image")
    data = data_dir().dataset_files(stored.dataset_id).image(stored.stored_name).read_bytes()
    for _ in range(3):
        try:
            loaded = current_app.extensions["model_server"].get(version)
            answer = explain_dataset_image(loaded, data, current_app.config["PREDICT_MAX_PIXELS"])
            return jsonify({"image_id": stored.id, **answer})
        except BundleRejected as exc:
            raise StudioError(exc.code, exc.template, exc.params) from None
        except VersionUnloaded:
            continue
    raise StudioError("model_busy", "The model is being reloaded; try again in a moment.")
