"""Sign-in, sign-out, the first-run page, and the account and users pages."""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext
from flask_login import current_user, login_user, logout_user

from engine.errors import StudioError
from webapp.accounts import services
from webapp.accounts.guard import csrf_token, from_loopback
from webapp.accounts.limits import LimitUnavailable
from webapp.errors import translated

pages = Blueprint("accounts", __name__)


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("datasets.index")


def _signed_in(user) -> None:
    services.end_session(session.get("_user_id"))  # signing in again ends the session this browser had
    session.clear()  # a fresh session, and so a fresh CSRF token, for the signed-in person
    session.permanent = True
    services.start_session(user)
    login_user(user)
    csrf_token()


@pages.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    if services.user_count() == 0 and from_loopback():
        return redirect(url_for("accounts.setup"))
    error, status = None, 200
    username = request.form.get("username", "")
    if request.method == "POST":
        limit = current_app.extensions["sign_in_limit"]
        keys = (f"addr:{request.remote_addr}", f"user:{username.strip().lower()[:64]}")
        try:  # counted as a failure before the password is checked, so parallel guesses cannot pass the limit
            attempt = limit.take(*keys)
        except LimitUnavailable:
            attempt = None
        if attempt is None:  # uncounted, guesses would be unlimited
            error = gettext("Sign-in is paused: the studio cannot count failed sign-ins because its Redis does "
                            "not answer. Try again in a minute; if it lasts, tell the studio's operator.")
            status = 503
        elif attempt.wait:
            error = gettext("Too many failed sign-ins; try again in %(minutes)s min.",
                            minutes=int(attempt.wait) // 60 + 1)
            status = 429
        else:
            user = services.authenticate(username, request.form.get("password", ""))
            if user is not None:
                limit.give_back(attempt, clear=keys[1:])  # a right password is no failure
                _signed_in(user)
                return redirect(_safe_next(request.args.get("next")))
            error, status = gettext("The user name or password is wrong."), 401
    return render_template("accounts/sign_in.html", error=error, username=username,
                           next=request.args.get("next", "")), status


@pages.post("/sign-out")
def sign_out():
    """Ends this session on the server too: its record is deleted, so a copy of the cookie stops working."""
    services.end_session(session.get("_user_id"))
    logout_user()
    session.clear()
    return redirect(url_for("accounts.sign_in"))


@pages.route("/setup", methods=["GET", "POST"])
def setup():
    """First run: create the first admin, from the server itself only."""
    if services.user_count() > 0:
        return redirect(url_for("accounts.sign_in"))
    if not from_loopback():
        return render_template("accounts/setup.html", remote=True), 403
    error, username = None, request.form.get("username", "")
    if request.method == "POST":
        if request.form.get("password", "") != request.form.get("confirm", ""):
            error = gettext("The two passwords differ.")
        else:
            try:
                user = services.create_user(username, request.form.get("password", ""), "admin")
            except StudioError as exc:
                error = translated(exc)
            else:
                _signed_in(user)
                return redirect(url_for("datasets.index"))
    return render_template("accounts/setup.html", remote=False, error=error, username=username), \
        400 if error else 200


@pages.get("/account")
def account():
    return render_template("accounts/account.html", user=current_user if current_user.is_authenticated else None)


@pages.get("/users")
def users():
    return render_template("accounts/users.html")
