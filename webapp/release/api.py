"""JSON API for the release: what serves, experiments, rollback, live statistics."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from engine.errors import StudioError
from webapp.release import services, stats

api = Blueprint("release_api", __name__, url_prefix="/api/release")


@api.get("")
def show():
    return jsonify(services.release_json())


@api.put("")
def change():
    return jsonify(services.change_release(request.get_json(silent=True)))


@api.post("/rollback")
def rollback():
    return jsonify(services.rollback())


@api.get("/stats")
def live_stats():
    raw = request.args.get("hours", "24")
    if not raw.isdigit() or not 1 <= int(raw) <= 24 * 90:
        raise StudioError("invalid_field", "'hours' must be a whole number of hours from 1 to 2160.", field="hours")
    release = services.release_json(history=0)
    return jsonify({"hours": int(raw), "production": release["production"], "candidate": release["candidate"],
                    "candidate_share": release["candidate_share"], "revision": release["revision"],
                    "versions": stats.summary(int(raw))})
