"""Sign-in, sign-out, the first-run page, and the account and users pages."""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext
from flask_login import current_user, login_user, logout_user

from engine.errors import StudioError
from webapp import audit
from webapp.accounts import first_run, services
from webapp.accounts.guard import csrf_token, take_password_try, user_limit_key
from webapp.errors import ERROR_STATUS, translated
from webapp.extensions import db
from webapp.storage import data_dir

pages = Blueprint("accounts", __name__)


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("datasets.index")


# Why a sign-in was refused, as the audit log names it, by the refusal's error code.
REFUSAL_REASONS = {"too_many_requests": "rate_limited", "rate_limit_unavailable": "limit_unavailable"}
MAX_TRIED_NAME = 64  # a user name is never longer: the rest of what was typed is not kept


def _signed_in(user) -> None:
    services.end_session(session.get("_user_id"))  # signing in again ends the session this browser had
    session.clear()  # a fresh session, and so a fresh CSRF token, for the signed-in person
    session.permanent = True
    services.start_session(user)
    login_user(user)
    csrf_token()
    audit.record("user.sign_in", "user", user.id, {"username": user.username})
    db.session.commit()


def _refused(username: str, reason: str | None = None) -> None:
    """Record a refused sign-in: the name tried (never the password) and why: `reason`, else `unknown_user`
    or `wrong_password` as the name is known or not."""
    tried = username.strip()[:MAX_TRIED_NAME]
    user = services.find_user(tried) if tried else None
    reason = reason or ("wrong_password" if user else "unknown_user")
    audit.record("user.sign_in_failed", "user", user.id if user else None, {"username": tried, "reason": reason})
    db.session.commit()


@pages.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    if services.user_count() == 0:  # nobody to sign in as: the first admin is made with the setup token
        return redirect(url_for("accounts.setup"))
    error, status = None, 200
    username = request.form.get("username", "")
    if request.method == "POST":
        keys = (f"addr:{request.remote_addr}", user_limit_key(username))
        try:
            attempt = take_password_try(*keys)
        except StudioError as exc:
            error, status = translated(exc), ERROR_STATUS[exc.code]
            _refused(username, REFUSAL_REASONS.get(exc.code, exc.code))
        else:
            user = services.authenticate(username, request.form.get("password", ""))
            if user is not None:
                current_app.extensions["sign_in_limit"].give_back(attempt, clear=keys[1:])  # no failure
                _signed_in(user)
                return redirect(_safe_next(request.args.get("next")))
            _refused(username)
            error, status = gettext("The user name or password is wrong."), 401
    return render_template("accounts/sign_in.html", error=error, username=username,
                           next=request.args.get("next", "")), status


@pages.post("/sign-out")
def sign_out():
    """Ends this session on the server too: its record is deleted, so a copy of the cookie stops working."""
    if current_user.is_authenticated:
        audit.record("user.sign_out", "user", current_user.id, {"username": current_user.username})
        db.session.commit()
    services.end_session(session.get("_user_id"))
    logout_user()
    session.clear()
    return redirect(url_for("accounts.sign_in"))


@pages.route("/setup", methods=["GET", "POST"])
def setup():
    """First run: create the first admin with the one-time setup token the server logged (webapp.accounts.
    first_run). The token is needed from every address: behind a proxy or a tunnel every visitor has the
    server's own."""
    if services.user_count() > 0:
        return redirect(url_for("accounts.sign_in"))
    folders = data_dir()
    error, status = None, 200
    username, token = request.form.get("username", ""), request.values.get("token", "")
    if request.method == "POST":
        claimed = first_run.claim_token(folders, token)
        if claimed is None:
            error, status = gettext("The setup token is missing or wrong: open the link the server wrote in its "
                                    "log when it started."), 403
        elif request.form.get("password", "") != request.form.get("confirm", ""):
            first_run.give_back(folders, claimed)
            error, status = gettext("The two passwords differ."), 400
        else:
            try:
                user = services.create_user(username, request.form.get("password", ""), "admin")
            except StudioError as exc:
                first_run.give_back(folders, claimed)
                error, status = translated(exc), 400
            else:
                claimed.unlink(missing_ok=True)
                first_run.drop_token(folders)
                audit.record("user.setup", "user", user.id, {"username": user.username})
                _signed_in(user)
                return redirect(url_for("datasets.index"))
    return render_template("accounts/setup.html", error=error, username=username, token=token), status


@pages.get("/account")
def account():
    return render_template("accounts/account.html", user=current_user if current_user.is_authenticated else None)


@pages.get("/users")
def users():
    return render_template("accounts/users.html")
