"""JSON API for the signed-in person's tokens, password and sessions and, for admins, the users."""
from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, session
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select

from engine.errors import StudioError
from webapp import audit, paging
from webapp.accounts import schemas, services
from webapp.accounts.guard import effective_role, take_password_try, user_limit_key
from webapp.accounts.limits import Attempt
from webapp.contract import operation, parsed_body, parsed_query
from webapp.errors import get_or_404
from webapp.extensions import db
from webapp.models import ApiToken, User

api = Blueprint("accounts_api", __name__, url_prefix="/api")


def _signed_in_user() -> User:
    if not current_user.is_authenticated:
        raise StudioError("unauthorized", "API tokens belong to a person: sign in first.")
    return current_user


def _account_user() -> User:
    if not current_user.is_authenticated:
        raise StudioError("unauthorized", "Passwords and sessions belong to a person: sign in first.")
    return current_user._get_current_object()  # the User itself: login_user must not be handed the proxy


def _from_browser(user: User) -> User:
    """`user`, when a signed-in browser session asks: a token, which a script holds, cannot make tokens
    that would outlive it, nor change its owner's password or sessions."""
    if g.auth_via != "session":
        raise StudioError("browser_session_required", "This needs a signed-in browser session; an API token "
                                                      "cannot make tokens or change its owner's password or "
                                                      "sessions.")
    return user


def _count_password_try(user: User) -> Attempt:
    """A current password given to change it counts as a sign-in of the user (the same limit), so a
    browser left signed in cannot be used to guess it; a right one is handed back."""
    return take_password_try(user_limit_key(user.username))


@api.get("/me")
@operation(answers={200: schemas.Me}, tags=("accounts",))
def me():
    """Who is asking, and with which role."""
    user = current_user if current_user.is_authenticated else None
    return jsonify({"user": services.user_json(user) if user else None, "role": effective_role(),
                    "auth_required": current_app.config["AUTH_REQUIRED"]})


@api.post("/me/password")
@operation(body=schemas.PasswordChange, answers={200: schemas.UserOut},
           errors=("browser_session_required", "rate_limit_unavailable"),
           tags=("accounts",), first=lambda: _from_browser(_account_user()))
def change_password():
    """The signed-in person's new password (the current one too): every session of theirs ends, and this
    one goes on as a new session."""
    user = _from_browser(_account_user())
    change = parsed_body()
    attempt = _count_password_try(user)
    if not services.password_matches(user, change.current_password):
        raise StudioError("invalid_field", "The current password is wrong.", field="current_password")
    current_app.extensions["sign_in_limit"].give_back(attempt, clear=attempt.keys)
    services.update_user(user, password=change.password)
    services.start_session(user)
    login_user(user)
    return jsonify(services.user_json(user))


@api.delete("/me/sessions")
@operation(answers={200: schemas.SignedOut}, errors=("browser_session_required",), tags=("accounts",))
def end_sessions():
    """Sign out everywhere: every session of the signed-in person ends, this one included."""
    user = _from_browser(_account_user())
    ended = services.end_all_sessions(user)
    audit.record("user.sign_out", "user", user.id, {"username": user.username, "everywhere": True,
                                                    "sessions": ended})
    db.session.commit()
    logout_user()
    session.clear()
    return jsonify({"signed_out": ended})


@api.get("/tokens")
@operation(query=paging.Paged, answers={200: schemas.TokenList}, tags=("accounts",))
def list_tokens():
    """The caller's tokens, newest first, a page at a time (`limit`, `before`)."""
    tokens, next_before = services.user_tokens(_signed_in_user(), parsed_query().page())
    return jsonify({"tokens": [services.token_json(t) for t in tokens], "next_before": next_before})


@api.post("/tokens")
@operation(body=schemas.TokenRequest, answers={201: schemas.NewToken}, errors=("browser_session_required",),
           tags=("accounts",), first=lambda: _from_browser(_signed_in_user()))
def create_token():
    """A new API token of the signed-in person; its secret is in this answer only."""
    request_ = parsed_body()
    token, secret = services.create_token(_from_browser(_signed_in_user()), request_.name,
                                          request_.expires_in_days)
    return jsonify({**services.token_json(token), "token": secret}), 201


@api.delete("/tokens/<int:token_id>")
@operation(answers={200: schemas.Revoked}, errors=("token_not_found",), tags=("accounts",))
def revoke_token(token_id: int):
    """Revoke one of the caller's tokens: it stops working at once."""
    user = _signed_in_user()
    token = get_or_404(ApiToken, token_id, "Token")
    if token.user_id != user.id:
        raise StudioError("token_not_found", "Token %(id)s does not exist.", {"id": token_id})
    audit.record("token.revoke", "token", token.id, {"name": token.name, "owner": user.username})
    db.session.delete(token)
    db.session.commit()
    return jsonify({"revoked": token_id})


def _not_by_token() -> None:
    """Accounts are made and their passwords and roles changed from a browser session (or the command
    line): a leaked token must not leave a way back in that outlives its revocation."""
    if g.auth_via == "token":
        raise StudioError("browser_session_required", "This needs a signed-in browser session; an API token "
                                                      "cannot create accounts or change passwords and roles.")


@api.get("/users")
@operation(query=paging.Paged, answers={200: schemas.UserList}, tags=("users",))
def list_users():
    """The users, newest first, a page at a time (`limit`, `before`)."""
    users, next_before = paging.fetch(select(User), User.id, parsed_query().page())
    return jsonify({"users": [services.user_json(u) for u in users], "next_before": next_before})


@api.post("/users")
@operation(body=schemas.NewUser, answers={201: schemas.UserOut}, errors=("browser_session_required",),
           tags=("users",), first=lambda: _not_by_token())
def create_user():
    """A new account (from a browser session, never with a token)."""
    _not_by_token()
    new = parsed_body()
    user = services.create_user(new.username, new.password, new.role)
    return jsonify(services.user_json(user)), 201


@api.patch("/users/<int:user_id>")
@operation(body=schemas.UserChange, answers={200: schemas.UserOut},
           errors=("browser_session_required", "user_not_found"), tags=("users",), first=lambda: _not_by_token())
def update_user(user_id: int):
    """Change an account's role or password (from a browser session, never with a token)."""
    _not_by_token()
    change = parsed_body()
    user = services.update_user(get_or_404(User, user_id, "User"), change.role, change.password)
    return jsonify(services.user_json(user))


@api.delete("/users/<int:user_id>")
@operation(answers={200: schemas.Deleted}, errors=("user_not_found", "invalid_field"), tags=("users",))
def delete_user(user_id: int):
    """Delete an account (not one's own, nor the last admin)."""
    user = get_or_404(User, user_id, "User")
    if current_user.is_authenticated and user.id == current_user.id:
        raise StudioError("invalid_field", "You cannot delete your own account.", field="id")
    services.delete_user(user)
    return jsonify({"deleted": user_id})
