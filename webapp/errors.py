"""Every error the studio answers with: its stable code, its HTTP status, and how it is rendered.

Domain code raises `engine.errors.StudioError(code, message, **details)`; this module alone maps a code
to a status. API requests get `{"error", "code", ...details}`, pages get the error page.
"""
from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from flask_babel import gettext
from werkzeug.exceptions import HTTPException, SecurityError

from engine.config import MAX_VERSION
from engine.errors import StudioError
from webapp.extensions import db
from webapp.messages import rejected_json, text

# code -> HTTP status. Clients may rely on the codes; the messages are for people and may change.
ERROR_STATUS: dict[str, int] = {
    # the request itself
    "bad_request": 400,
    "invalid_body": 400,
    "invalid_field": 400,
    "missing_field": 400,
    "conflicting_fields": 400,
    "invalid_option": 400,
    "unknown_option": 400,
    "not_found": 404,
    "method_not_allowed": 405,
    "request_too_large": 413,
    # who may ask
    "unauthorized": 401,
    "invalid_token": 401,
    "token_expired": 401,
    "forbidden": 403,
    "cross_site_request": 403,
    "csrf_token_invalid": 403,
    "browser_session_required": 403,  # making tokens, changing one's password or sessions: not with a token
    "untrusted_host": 400,
    "proxy_not_configured": 403,
    "listening_beyond_loopback": 403,  # sign-in off for HOST=127.0.0.1, yet the server listens on more
    "too_many_requests": 429,
    "too_many_streams": 429,
    "too_many_probes": 429,  # every training worker has a timing probe waiting
    # uploads
    "empty_file": 400,
    "file_too_large": 413,
    "not_an_image": 415,
    "unsupported_image_format": 415,
    "image_too_large": 400,
    "image_aspect_ratio": 400,
    "image_corrupt": 400,
    "not_a_zip": 400,
    "zip_bomb": 400,
    "archive_too_large": 413,
    "no_usable_images": 422,
    "too_few_classes": 422,
    "class_too_small": 422,
    "class_without_training_images": 422,
    # things that do not exist
    "dataset_not_found": 404,
    "job_not_found": 404,
    "model_version_not_found": 404,
    "image_not_found": 404,
    "user_not_found": 404,
    "token_not_found": 404,
    "revision_not_found": 404,
    "label_search_not_found": 404,
    "image_not_in_revision": 400,
    # the state of things
    "dataset_not_ready": 409,
    "no_worker_for_device": 409,
    "no_training_worker": 409,  # a timing probe with no training worker to run it
    "wrong_device": 409,  # recorded on a job that reached a worker of another device kind
    "dataset_in_use": 409,
    "revision_in_use": 409,
    "nothing_to_change": 409,
    "nothing_to_scan": 409,
    "report_not_ready": 409,
    "report_truncated": 409,
    "label_search_finished": 409,
    "job_finished": 409,
    "job_not_resumable": 409,
    "results_not_ready": 409,
    "init_weights_missing": 409,
    "dataset_deleted": 409,
    "no_model": 409,
    "model_in_use": 409,
    "model_bundle_rejected": 409,
    "explanation_unavailable": 409,  # a model version exported before explanations, or without its ONNX head
    "model_busy": 503,
    "release_conflict": 409,
    "no_candidate": 400,
    "candidate_is_production": 400,
    "empty_split": 400,
    "classes_mismatch": 409,
    "evaluation_not_found": 404,
    "prediction_not_found": 404,
    "feedback_not_found": 404,
    "no_feedback_images": 400,
    "source_dataset_gone": 409,
    # the review queue
    "review_item_not_found": 404,
    "review_item_added": 409,  # already in a dataset revision: its label can no longer change
    "no_labelled_review_items": 400,
    "pretrained_weights_missing": 409,
    "model_files_gone": 410,
    # per-class abstain thresholds
    "unknown_class": 400,  # a threshold for a class the version does not have
    "no_calibration": 409,  # no evaluation of the version on a test or validation split to calibrate on
    # batch predictions
    "batch_prediction_not_found": 404,
    "batch_finished": 409,
    "batch_running": 409,
    "batch_results_expired": 410,
    "batch_input_gone": 410,  # recorded on a run whose received files were removed under it
    # the parts around the app
    "queue_unavailable": 503,
    "ingest_sandbox_unavailable": 503,  # INGEST_SANDBOX=on, and the sandbox cannot start where uploads are checked
    "rate_limit_unavailable": 503,  # anonymous prediction while Redis, where requests are counted, is down
    "board_unavailable": 502,
    "internal_error": 500,
    # webhooks
    "webhook_not_found": 404,
    "webhook_delivery_not_found": 404,
    "webhook_url_refused": 400,
    "webhook_delivery_pending": 409,
    # backup and restore (webapp.backup): said on the command line and on a scheduled backup's row
    "backup_refused": 409,
    "backup_damaged": 422,
}
HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
# Ids are 32-bit integers on PostgreSQL (SQLite's are wider), like version numbers; anything outside cannot
# name a row, and PostgreSQL refuses to compare such columns with larger numbers.
MAX_ID = MAX_VERSION


def id_in_range(ident: int) -> bool:
    """Whether `ident` could name a row; the database refuses to compare with larger numbers."""
    return 0 < ident <= MAX_ID


def get_or_404(model, ident: int, label: str, **details):
    """The row of `model` with primary key `ident`, or a `<label>_not_found` error that names it.

    `label` is one of the labels below: each has its own sentence, so that each is translated whole."""
    row = db.session.get(model, ident) if id_in_range(ident) else None
    if row is None:
        code, params = label.lower().replace(" ", "_") + "_not_found", {"id": ident}
        raise {"Batch prediction": lambda: StudioError(code, "Batch run %(id)s does not exist.", params, **details),
               "Dataset": lambda: StudioError(code, "Dataset %(id)s does not exist.", params, **details),
               "Evaluation": lambda: StudioError(code, "Evaluation %(id)s does not exist.", params, **details),
               "Feedback": lambda: StudioError(code, "Feedback %(id)s does not exist.", params, **details),
               "Image": lambda: StudioError(code, "Image %(id)s does not exist.", params, **details),
               "Job": lambda: StudioError(code, "Job %(id)s does not exist.", params, **details),
               "Label search": lambda: StudioError(code, "Label search %(id)s does not exist.", params, **details),
               "Token": lambda: StudioError(code, "Token %(id)s does not exist.", params, **details),
               "User": lambda: StudioError(code, "User %(id)s does not exist.", params, **details)}[label]()
    return row


# Paths answered for programs: their refusals are JSON, never a page (/metrics: Prometheus).
JSON_PATHS = ("/api/", "/metrics")


def wants_json() -> bool:
    """Whether the current request is a program's (JSON_PATHS): refused in JSON, never with a page."""
    return request.path.startswith(JSON_PATHS)


def _answer(code: str, message: str, status: int, details: dict | None = None):
    if wants_json():
        return jsonify({"error": message, "code": code, **(details or {})}), status
    return render_template("error.html", code=status, message=message), status


def init_app(app: Flask) -> None:
    @app.errorhandler(StudioError)
    def _studio_error(exc: StudioError):
        status = ERROR_STATUS.get(exc.code)
        if status is None:
            app.logger.error("error code %r is not listed in webapp.errors.ERROR_STATUS", exc.code)
            return _answer("internal_error", gettext("Something went wrong on the server; the details are in its log."), 500)
        return _answer(exc.code, translated(exc), status, _public_details(exc.details))

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if isinstance(exc, SecurityError):  # a Host header outside TRUSTED_HOSTS
            return _answer("untrusted_host", gettext("This studio does not answer to that host name; an operator "
                                                     "can add it to TRUSTED_HOSTS."), 400)
        code = HTTP_CODES.get(exc.code, "bad_request" if exc.code < 500 else "internal_error")
        body, status = _answer(code, _friendly(exc), exc.code)
        # a 405 names the methods the address takes (RFC 9110); the body is ours, the headers are the exception's
        allowed = dict(exc.get_headers()).get("Allow")
        return (body, status, {"Allow": allowed}) if allowed else (body, status)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        app.logger.exception("unhandled error on %s", request.path)
        return _answer("internal_error", gettext("Something went wrong on the server; the details are in its log."), 500)


def translated(exc: StudioError) -> str:
    """The error's message in the request's language (its English template is the catalog's id); a
    parameter that is itself an error or a message (a wrapped error's reason) is translated too. A
    translation whose placeholders do not match gives the English message."""
    return text(exc)


def _public_details(details: dict) -> dict:
    """The error's details as the API shows them: rejected files as {"path", "reason"} in the request's language."""
    if isinstance(details.get("rejected"), list):
        return {**details, "rejected": rejected_json(details["rejected"])}
    return details


def _friendly(exc: HTTPException) -> str:
    if exc.code == 413:
        return gettext("The upload is larger than this server accepts.")
    if exc.code == 404:
        return gettext("Not found.")
    if exc.code == 405:
        return gettext("This address does not take a %(method)s request.", method=request.method)
    if exc.code == 400:
        return gettext("The request could not be understood.")
    return exc.description or exc.name
