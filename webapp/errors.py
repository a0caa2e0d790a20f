"""Errors as JSON for the API, as pages for people."""
from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from webapp.extensions import db


class ApiError(Exception):
    """A client error with a message for a person and optional details (e.g. the bad field)."""

    def __init__(self, status: int, message: str, **details) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details


def get_or_404(model, ident: int, label: str):
    """The row of `model` with primary key `ident`, or a JSON 404 that names it."""
    row = db.session.get(model, ident)
    if row is None:
        raise ApiError(404, f"{label} {ident} does not exist.")
    return row


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _client_error(exc):
        return jsonify({"error": exc.message, **exc.details}), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        message = _friendly(exc)
        if _wants_json():
            return jsonify({"error": message}), exc.code
        return render_template("error.html", code=exc.code, message=message), exc.code

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        app.logger.exception("unhandled error on %s", request.path)
        message = "Something went wrong on the server; the details are in its log."
        if _wants_json():
            return jsonify({"error": message}), 500
        return render_template("error.html", code=500, message=message), 500


def _friendly(exc: HTTPException) -> str:
    if exc.code == 413:
        return "The upload is larger than this server accepts."
    if exc.code == 404:
        return "Not found."
    return exc.description or exc.name
