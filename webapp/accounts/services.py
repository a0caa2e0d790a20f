"""Users and API tokens: create, check, change, revoke."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from engine.errors import StudioError
from webapp import audit
from webapp.accounts.policy import ROLES
from webapp.extensions import db
from webapp.models import ApiToken, User, iso, utcnow

MAX_USERNAME = 64
MIN_PASSWORD, MAX_PASSWORD = 8, 1024
MAX_TOKEN_NAME = 100
TOKEN_PREFIX = "isk_"
# A token's last use is written at most this often, so API calls do not each write a row.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# Checked when the user name is unknown, so a wrong name takes as long as a wrong password.
_UNKNOWN_USER_HASH = generate_password_hash(secrets.token_hex(16))


def _clean_username(username) -> str:
    if not isinstance(username, str) or not username.strip():
        raise StudioError("missing_field", "Give a user name.", field="username")
    username = username.strip()
    if len(username) > MAX_USERNAME:
        raise StudioError("invalid_field", "User names are at most %(max)s characters.", {"max": MAX_USERNAME},
                          field="username")
    if not username.isprintable() or any(ch.isspace() for ch in username) or "/" in username:
        raise StudioError("invalid_field", "User names cannot contain spaces, slashes or control characters.",
                          field="username")
    return username


def _check_password(password) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise StudioError("invalid_field", "Passwords need at least %(min)s characters.", {"min": MIN_PASSWORD},
                          field="password")
    if len(password) > MAX_PASSWORD:
        raise StudioError("invalid_field", "Passwords are at most %(max)s characters.", {"max": MAX_PASSWORD},
                          field="password")
    return password


def _check_role(role) -> str:
    if role not in ROLES:
        raise StudioError("invalid_field", "The role must be one of %(options)s.", {"options": ", ".join(ROLES)},
                          field="role")
    return role


def user_count() -> int:
    return db.session.scalar(select(func.count()).select_from(User))


def find_user(username: str) -> User | None:
    return db.session.scalar(select(User).where(User.username == username))


def create_user(username, password, role) -> User:
    username, password, role = _clean_username(username), _check_password(password), _check_role(role)
    if find_user(username) is not None:
        raise StudioError("invalid_field", "The user name '%(name)s' is taken.", {"name": username}, field="username")
    user = User(username=username, password_hash=generate_password_hash(password), role=role)
    db.session.add(user)
    db.session.commit()
    return user


def authenticate(username, password) -> User | None:
    """The user when the name and password match, else None (in the same time either way)."""
    user = find_user(username.strip()) if isinstance(username, str) and username.strip() else None
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        password = ""
    if user is None:
        check_password_hash(_UNKNOWN_USER_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password):
        return None
    user.last_sign_in_at = utcnow()
    db.session.commit()
    return user


def _admins_left(without: User) -> int:
    return db.session.scalar(select(func.count()).select_from(User).where(
        User.role == "admin", User.id != without.id))


def update_user(user: User, role=None, password=None) -> User:
    """Change a user's role or password; a new password ends the user's other sessions."""
    if role is not None:
        role = _check_role(role)
        if user.role == "admin" and role != "admin" and not _admins_left(user):
            raise StudioError("invalid_field", "The studio needs at least one admin.", field="role")
        if role != user.role:
            audit.record("user.role", "user", user.id, {"username": user.username, "from": user.role, "to": role})
        user.role = role
    if password is not None:
        user.password_hash = generate_password_hash(_check_password(password))
        audit.record("user.password", "user", user.id, {"username": user.username})
        user.session_version += 1
    db.session.commit()
    return user


def delete_user(user: User) -> None:
    if user.role == "admin" and not _admins_left(user):
        raise StudioError("invalid_field", "The studio needs at least one admin.", field="id")
    audit.record("user.delete", "user", user.id, {"username": user.username, "role": user.role})
    db.session.delete(user)
    db.session.commit()


def user_json(user: User) -> dict:
    return {"id": user.id, "username": user.username, "role": user.role, "created_at": iso(user.created_at),
            "last_sign_in_at": iso(user.last_sign_in_at)}


def _token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(user: User, name) -> tuple[ApiToken, str]:
    """A new token of `user`; the secret is returned once and only its hash is kept."""
    if not isinstance(name, str) or not name.strip():
        raise StudioError("missing_field", "Name the token, e.g. after the script that will use it.", field="name")
    name = name.strip()
    if len(name) > MAX_TOKEN_NAME or not name.isprintable():
        raise StudioError("invalid_field", "Token names are at most %(max)s printable characters.",
                          {"max": MAX_TOKEN_NAME}, field="name")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, token_hash=_token_hash(secret), prefix=secret[:10])
    db.session.add(token)
    db.session.flush()
    audit.record("token.create", "token", token.id, {"name": name, "owner": user.username})
    db.session.commit()
    return token, secret


def token_owner(secret: str) -> tuple[User, ApiToken] | None:
    """The user and token a bearer secret names, or None; notes when the token was last used."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(secret)))
    if token is None:
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        token.last_used_at = now
        db.session.commit()
    return token.user, token


def user_tokens(user: User) -> list[ApiToken]:
    return db.session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)).all()


def token_json(token: ApiToken) -> dict:
    return {"id": token.id, "name": token.name, "prefix": token.prefix, "created_at": iso(token.created_at),
            "last_used_at": iso(token.last_used_at)}
