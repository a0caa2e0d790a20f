"""JSON API for the signed-in person's tokens and, for admins, the users."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from flask_login import current_user
from sqlalchemy import select

from engine.errors import StudioError
from webapp import audit
from webapp.accounts import services
from webapp.accounts.guard import effective_role
from webapp.errors import get_or_404
from webapp.extensions import db
from webapp.models import ApiToken, User

api = Blueprint("accounts_api", __name__, url_prefix="/api")


def _json_object() -> dict:
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise StudioError("invalid_body", "Send a JSON object (Content-Type: application/json).", field="body")
    return payload


def _signed_in_user() -> User:
    if not current_user.is_authenticated:
        raise StudioError("unauthorized", "API tokens belong to a person: sign in first.")
    return current_user


@api.get("/me")
def me():
    user = current_user if current_user.is_authenticated else None
    return jsonify({"user": services.user_json(user) if user else None, "role": effective_role(),
                    "auth_required": current_app.config["AUTH_REQUIRED"]})


@api.get("/tokens")
def list_tokens():
    return jsonify({"tokens": [services.token_json(t) for t in services.user_tokens(_signed_in_user())]})


@api.post("/tokens")
def create_token():
    token, secret = services.create_token(_signed_in_user(), _json_object().get("name"))
    return jsonify({**services.token_json(token), "token": secret}), 201


@api.delete("/tokens/<int:token_id>")
def revoke_token(token_id: int):
    user = _signed_in_user()
    token = get_or_404(ApiToken, token_id, "Token")
    if token.user_id != user.id:
        raise StudioError("token_not_found", "Token %(id)s does not exist.", {"id": token_id})
    audit.record("token.revoke", "token", token.id, {"name": token.name, "owner": user.username})
    db.session.delete(token)
    db.session.commit()
    return jsonify({"revoked": token_id})


@api.get("/users")
def list_users():
    users = db.session.scalars(select(User).order_by(User.username)).all()
    return jsonify({"users": [services.user_json(u) for u in users]})


@api.post("/users")
def create_user():
    payload = _json_object()
    user = services.create_user(payload.get("username"), payload.get("password"), payload.get("role", "member"))
    return jsonify(services.user_json(user)), 201


@api.patch("/users/<int:user_id>")
def update_user(user_id: int):
    payload = _json_object()
    unknown = sorted(set(payload) - {"role", "password"})
    if unknown:
        raise StudioError("unknown_option", "Unknown field '%(name)s'.", {"name": unknown[0]}, field=unknown[0])
    user = services.update_user(get_or_404(User, user_id, "User"), payload.get("role"), payload.get("password"))
    return jsonify(services.user_json(user))


@api.delete("/users/<int:user_id>")
def delete_user(user_id: int):
    user = get_or_404(User, user_id, "User")
    if current_user.is_authenticated and user.id == current_user.id:
        raise StudioError("invalid_field", "You cannot delete your own account.", field="id")
    services.delete_user(user)
    return jsonify({"deleted": user_id})
