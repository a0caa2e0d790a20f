"""Users, their signed-in sessions and API tokens: create, check, change, end, revoke.

A session cookie names `<user id>:<key>:<seal>`: the key is random and its SHA-256 names the session's
record (signing out deletes it), and the seal is an HMAC of id and key under the user's own random secret.
A new password, a new role or "sign out everywhere" replaces the secret and deletes the records, so every
earlier cookie stops working; a deleted user's cookie cannot act for an account that later gets the same id.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, func, select
from werkzeug.security import check_password_hash, generate_password_hash

from engine.errors import StudioError
from webapp import audit, paging
from webapp.accounts.policy import ROLES
from webapp.extensions import db
from webapp.models import ApiToken, User, UserSession, iso, new_session_secret, utcnow

MAX_USERNAME = 64
MIN_PASSWORD, MAX_PASSWORD = 8, 1024
MAX_TOKEN_NAME = 100
MAX_TOKEN_DAYS = 3650
TOKEN_PREFIX = "isk_"
# A token's last use and a session's last request are written at most this often, so requests do not
# each write a row.
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
    db.session.flush()
    audit.record("user.create", "user", user.id, {"username": username, "role": role})
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


def password_matches(user: User, password) -> bool:
    return isinstance(password, str) and len(password) <= MAX_PASSWORD and check_password_hash(
        user.password_hash, password)


def _admins_left(without: User) -> int:
    return db.session.scalar(select(func.count()).select_from(User).where(
        User.role == "admin", User.id != without.id))


def update_user(user: User, role=None, password=None) -> User:
    """Change a user's role or password; either change ends every session of the user."""
    if role is not None:
        role = _check_role(role)
        if user.role == "admin" and role != "admin" and not _admins_left(user):
            raise StudioError("invalid_field", "The studio needs at least one admin.", field="role")
        if role != user.role:
            audit.record("user.role", "user", user.id, {"username": user.username, "from": user.role, "to": role})
            end_all_sessions(user)
        user.role = role
    if password is not None:
        user.password_hash = generate_password_hash(_check_password(password))
        audit.record("user.password", "user", user.id, {"username": user.username})
        end_all_sessions(user)
    db.session.commit()
    return user


def delete_user(user: User) -> None:
    if user.role == "admin" and not _admins_left(user):
        raise StudioError("invalid_field", "The studio needs at least one admin.", field="id")
    audit.record("user.delete", "user", user.id, {"username": user.username, "role": user.role})
    end_all_sessions(user)
    db.session.delete(user)
    db.session.commit()


def user_json(user: User) -> dict:
    return {"id": user.id, "username": user.username, "role": user.role, "created_at": iso(user.created_at),
            "last_sign_in_at": iso(user.last_sign_in_at)}


def _token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _seal(user: User, key: str) -> str:
    return hmac.new(user.session_secret.encode(), f"{user.id}:{key}".encode(), hashlib.sha256).hexdigest()


def _session_lifetime() -> timedelta:
    return current_app.config["PERMANENT_SESSION_LIFETIME"]


def start_session(user: User) -> None:
    """Record a new signed-in session of `user` and name it on the user, for Flask-Login to store in the
    cookie; records of sessions unused for longer than a session lasts are dropped on the way."""
    db.session.execute(delete(UserSession).where(UserSession.last_seen_at < utcnow() - _session_lifetime()))
    key = secrets.token_urlsafe(32)
    db.session.add(UserSession(id=_token_hash(key), user_id=user.id))
    db.session.commit()
    user.session_ident = f"{user.id}:{key}:{_seal(user, key)}"


def _session_parts(ident) -> tuple[int, str, str] | None:
    parts = ident.split(":") if isinstance(ident, str) else []
    if len(parts) != 3 or not (parts[0].isascii() and parts[0].isdigit()) or len(parts[0]) > 12:
        return None
    return int(parts[0]), parts[1], parts[2]


def session_user(ident: str) -> User | None:
    """The user a session cookie names while that session holds: the seal matches the user's secret
    and the session's record exists. Notes when the session was last used."""
    parts = _session_parts(ident)
    user = db.session.get(User, parts[0]) if parts else None
    if user is None or not user.session_secret or not hmac.compare_digest(parts[2].encode(),
                                                                           _seal(user, parts[1]).encode()):
        return None
    record = db.session.get(UserSession, _token_hash(parts[1]))
    now = utcnow()
    if record is None or record.user_id != user.id or now - record.last_seen_at > _session_lifetime():
        return None
    if now - record.last_seen_at > LAST_USED_RESOLUTION:
        record.last_seen_at = now
        db.session.commit()
    user.session_ident = ident
    return user


def end_session(ident) -> None:
    """Sign-out: delete the record of the session a cookie names, so a copy of the cookie stops working."""
    parts = _session_parts(ident)
    if parts:
        db.session.execute(delete(UserSession).where(UserSession.id == _token_hash(parts[1])))
        db.session.commit()


def end_all_sessions(user: User) -> int:
    """End every session of `user` (a new secret, and no records); how many there were. The caller commits."""
    user.session_secret = new_session_secret()
    return db.session.execute(delete(UserSession).where(UserSession.user_id == user.id)).rowcount


def _token_expiry(days: int | None):
    """When a token made now for `days` days expires (None: never); the API's model holds the range."""
    return None if days is None else utcnow() + timedelta(days=days)


def create_token(user: User, name: str, expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """A new token of `user`, valid for `expires_in_days` days (None: until revoked); the secret is
    returned once and only its hash is kept."""
    if not name.strip():
        raise StudioError("missing_field", "Name the token, e.g. after the script that will use it.", field="name")
    name = name.strip()
    if len(name) > MAX_TOKEN_NAME or not name.isprintable():
        raise StudioError("invalid_field", "Token names are at most %(max)s printable characters.",
                          {"max": MAX_TOKEN_NAME}, field="name")
    expires_at = _token_expiry(expires_in_days)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, token_hash=_token_hash(secret), prefix=secret[:10],
                     expires_at=expires_at)
    db.session.add(token)
    db.session.flush()
    audit.record("token.create", "token", token.id, {"name": name, "owner": user.username})
    db.session.commit()
    return token, secret


def token_expired(token: ApiToken) -> bool:
    return token.expires_at is not None and token.expires_at <= utcnow()


def token_owner(secret: str) -> tuple[User, ApiToken] | None:
    """The user and token a bearer secret names, or None; an expired token is refused with its own code.
    Notes when the token was last used."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(secret)))
    if token is None:
        return None
    if token_expired(token):
        raise StudioError("token_expired", "The API token expired on %(date)s; make a new one on the Account "
                                           "page.", {"date": iso(token.expires_at)})
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        token.last_used_at = now
        db.session.commit()
    return token.user, token


def user_tokens(user: User, page: paging.Page) -> tuple[list[ApiToken], int | None]:
    """One page of the user's tokens, newest first, and the id to list below next (None at the end)."""
    return paging.fetch(select(ApiToken).where(ApiToken.user_id == user.id), ApiToken.id, page)


def token_json(token: ApiToken) -> dict:
    return {"id": token.id, "name": token.name, "prefix": token.prefix, "created_at": iso(token.created_at),
            "last_used_at": iso(token.last_used_at), "expires_at": iso(token.expires_at),
            "expired": token_expired(token)}
