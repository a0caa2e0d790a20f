"""The one-time setup token: while nobody can sign in, the first admin is made on /setup with this token.

The process that serves the app makes it (webapp.wsgi, in every web process of every way the studio runs),
keeps it in DATA_DIR/keys/setup.token readable by its owner only (the token is that key in hex), and logs
the link with it once. The token, not the visitor's address, is what lets someone in: behind a proxy or a
tunnel every visitor has the server's own address. It is deleted as soon as the first admin exists; the
shell's `flask --app webapp.wsgi users create` needs no token.
"""
from __future__ import annotations

import fcntl
import logging
import os
import secrets
from pathlib import Path

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from webapp.accounts import services
from webapp.accounts.settings import ANY_ADDRESS, is_loopback
from webapp.storage import DataDir

log = logging.getLogger("studio")
TOKEN_FILE = "setup.token"
_announcing: dict[str, int] = {}  # token file -> the descriptor whose lock says this process logged its link


def _path(data_dir: DataDir) -> Path:
    return data_dir.key_file(TOKEN_FILE)


def read_token(data_dir: DataDir) -> str | None:
    """The current setup token, or None when there is none."""
    try:
        return _path(data_dir).read_bytes().hex() or None
    except FileNotFoundError:
        return None


def make_token(data_dir: DataDir) -> str:
    """The setup token, made when there is none: a key of the install (DataDir.secret: written whole, 0600,
    the same for every process), shown as hex."""
    return data_dir.secret(TOKEN_FILE).hex()


def token_matches(data_dir: DataDir, given: object) -> bool:
    """Whether `given` is the current setup token (compared in constant time)."""
    token = read_token(data_dir)
    return bool(token and isinstance(given, str)
                and secrets.compare_digest(given.strip().encode(), token.encode()))


def claim_token(data_dir: DataDir, given: object) -> Path | None:
    """Take the setup token for one first-run request: when `given` matches, the token file is moved aside
    (one rename, so of two requests sent at once with the token only one makes an admin) and its new
    place returned; None when it does not match or another request took it first."""
    if not token_matches(data_dir, given):
        return None
    claimed = _path(data_dir).with_name(f"{TOKEN_FILE}.{secrets.token_hex(8)}")
    try:
        os.rename(_path(data_dir), claimed)
    except FileNotFoundError:
        return None
    return claimed


def give_back(data_dir: DataDir, claimed: Path) -> None:
    """The claimed token made no admin (a bad name or password): it works again."""
    os.rename(claimed, _path(data_dir))


def drop_token(data_dir: DataDir) -> None:
    """The first admin exists: the token is spent."""
    _path(data_dir).unlink(missing_ok=True)
    descriptor = _announcing.pop(str(_path(data_dir)), None)
    if descriptor is not None:
        os.close(descriptor)


def _first_to_announce(data_dir: DataDir) -> bool:
    """Whether this process is the one of its server to log the link: the web processes started together
    all try to lock the token file, and the one that holds it (until it exits) logs."""
    path = str(_path(data_dir))
    if path in _announcing:
        return False
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(descriptor)
        return False
    _announcing[path] = descriptor
    return True


def setup_link(host: str, token: str) -> str:
    """Where to open the setup page from the server itself (a loopback name for every-address binds)."""
    name = host if host and host not in ANY_ADDRESS and not is_loopback(host) else "127.0.0.1"
    name = f"[{name}]" if ":" in name else name
    return f"http://{name}:{os.environ.get('PORT') or 5000}/setup?token={token}"


def prepare_first_run(app: Flask) -> None:
    """Make the setup token and log its link while nobody can sign in; drop it once somebody can."""
    data_dir = DataDir(app.config["DATA_DIR"])
    try:
        with app.app_context():
            nobody = services.user_count() == 0
    except SQLAlchemyError as exc:  # a database not made yet (`flask db upgrade` itself loads this app)
        log.info("no setup token yet: the database cannot be read (%s)", type(exc).__name__)
        return
    if not nobody:
        drop_token(data_dir)
        return
    token = make_token(data_dir)
    if _first_to_announce(data_dir):
        log.warning("Nobody can sign in yet. Create the first admin at %s (the link works once, from any "
                    "address), or with: flask --app webapp.wsgi users create NAME --role admin",
                    setup_link(app.config["HOST"], token))
