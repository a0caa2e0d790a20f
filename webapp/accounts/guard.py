"""What every request passes before its view, and the headers on every answer.

In order: who is asking (a bearer token, else the signed-in session), whether a state-changing
request comes from another site (refused), its CSRF token when a session cookie speaks for it, and
whether the caller's role may use the endpoint (webapp.accounts.policy). Host names are checked
before any of this by Flask's TRUSTED_HOSTS.
"""
from __future__ import annotations

import secrets
from urllib.parse import quote

from flask import Flask, current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import AnonymousUserMixin, current_user

from engine.errors import StudioError
from webapp.accounts import limits, policy, services
from webapp.errors import wants_json
from webapp.extensions import login_manager

CSRF_HEADER, CSRF_FIELD = "X-CSRF-Token", "csrf_token"
# Forms posted before anyone is signed in: their CSRF token lives in the session all the same.
FORM_ENDPOINTS = frozenset({"accounts.sign_in", "accounts.setup", "accounts.sign_out", "i18n.choose_language"})
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data: blob:",
    "connect-src 'self'", "font-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'",
    "frame-ancestors 'none'",
])
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class Anonymous(AnonymousUserMixin):
    role = None
    username = None


class StudioSessionInterface(SecureCookieSessionInterface):
    """Session cookies are Secure whenever the request came over HTTPS (directly or through a trusted proxy)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"] or request.is_secure)

    def open_session(self, app: Flask, request):
        """Without a session cookie (an API client, a first visit) the session is empty, as Flask would make
        it, without building the cookie's signer on every such request first."""
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


# What a browser fetches as a page it shows (Sec-Fetch-Dest); clients that do not say are treated as pages.
PAGE_DESTINATIONS = frozenset({"document", "iframe", "frame"})


def csrf_token() -> str:
    """This session's CSRF token, made on first use; pages put it in a meta tag and in their forms.

    Only a page the browser shows makes the token: an error page rendered for an icon or an image fetched
    alongside the first page would otherwise make a second token whose cookie could land after the page's
    own, leaving that page's forms with a token the session no longer holds."""
    token = session.get("csrf")
    if not token:
        if request.headers.get("Sec-Fetch-Dest", "document") not in PAGE_DESTINATIONS:
            return ""
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def effective_role() -> str | None:
    """The role the current request acts with: with sign-in off, the one local person is an admin."""
    if current_user.is_authenticated:
        return current_user.role
    return None if current_app.config["AUTH_REQUIRED"] else "admin"


def may(endpoint: str, method: str = "GET") -> bool:
    """Whether the current request's role may call `endpoint` with `method` (the policy table decides;
    pages use it to leave out what the reader could not do)."""
    needed = policy.required_role(endpoint, method)
    return needed is None or policy.role_allows(effective_role(), needed)


def user_limit_key(username: str) -> str:
    """The sign-in limit's key for a user name: a wrong password counts there, whether given to sign in or
    to change the password of a signed-in browser."""
    return f"user:{username.strip().lower()[:64]}"


def take_password_try(*keys: str) -> limits.Attempt:
    """Count a password about to be checked as a failed sign-in under each key (the caller's address, the
    user name), in one atomic step before the check, so parallel guesses cannot pass the limit; a right
    password is handed back with the limit's give_back. Refused while the limit is reached, and while
    Redis, where every web process counts, does not answer: uncounted, guesses would be unlimited."""
    try:
        attempt = current_app.extensions["sign_in_limit"].take(*keys)
    except limits.LimitUnavailable:
        raise StudioError("rate_limit_unavailable", "Sign-in is paused: the studio cannot count failed sign-ins "
                                                    "because its Redis does not answer. Try again in a minute; "
                                                    "if it lasts, tell the studio's operator.") from None
    if attempt.wait:
        raise StudioError("too_many_requests", "Too many failed sign-ins; try again in %(minutes)s min.",
                          {"minutes": int(attempt.wait) // 60 + 1}, retry_after=int(attempt.wait) + 1)
    return attempt


def _identify() -> None:
    """Set `g.auth_via` ('token', 'session' or None) and `g.caller_key` for this request."""
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and _is_scrape_token(secret.strip()):
        g._login_user = Anonymous()
        g.auth_via, g.caller_key = "scrape", "scrape"
    elif scheme.lower() == "bearer":
        found = services.token_owner(secret.strip())
        if found is None:
            raise StudioError("invalid_token", "The API token is unknown or was revoked.")
        user, token = found
        g._login_user = user  # Flask-Login's current user for this request only; no session is written
        g.auth_via, g.caller_key = "token", f"token:{token.id}"
    elif "_user_id" not in session:  # nobody signed in with this session: no user to load or to check
        g._login_user = Anonymous()
        g.auth_via, g.caller_key = None, f"addr:{request.remote_addr}"
    elif current_user.is_authenticated:
        g.auth_via, g.caller_key = "session", f"user:{current_user.id}"
    else:
        g.auth_via, g.caller_key = None, f"addr:{request.remote_addr}"


def _is_scrape_token(secret: str) -> bool:
    """Whether `secret` is the scrape token (METRICS_TOKEN, compared in constant time) sent to an endpoint
    that takes it; anywhere else it is one more unknown token."""
    expected = current_app.config.get("METRICS_TOKEN") or ""
    return bool(expected) and request.endpoint in policy.SCRAPE and secrets.compare_digest(
        secret.encode(), expected.encode())


def _cross_site() -> bool:
    """Whether the browser says this request comes from another site (Fetch metadata, else Origin)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    return origin is not None and origin != request.host_url.rstrip("/")


def cors_origin() -> str | None:
    """The request's Origin when it may call the public prediction API from another site."""
    origin = request.headers.get("Origin")
    config = current_app.config
    if (origin and config["PREDICT_PUBLIC"] and request.endpoint == "predict_api.predict"
            and (origin in config["PREDICT_CORS_ORIGINS"] or "*" in config["PREDICT_CORS_ORIGINS"])):
        return origin
    return None


def _check_cross_site() -> None:
    if request.method in policy.SAFE_METHODS or g.auth_via == "token":
        return
    if cors_origin() is not None:
        g._login_user, g.auth_via = Anonymous(), None  # another site's page never acts with a person's session
        return
    if _cross_site():
        raise StudioError("cross_site_request", "This request came from another site and was refused.")
    if g.auth_via == "session" or request.endpoint in FORM_ENDPOINTS:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and request.mimetype == "application/x-www-form-urlencoded":
            sent = request.form.get(CSRF_FIELD)
        expected = session.get("csrf")
        if not sent or not expected or not secrets.compare_digest(str(sent).encode(), str(expected).encode()):
            raise StudioError("csrf_token_invalid", "The page's security token is missing or out of date; "
                                                    "reload the page and try again.")


def _check_role():
    needed = policy.required_role(request.endpoint, request.method)
    if needed is None or g.auth_via == "scrape":
        return None
    role = effective_role()
    if role is None and current_app.config["PREDICT_PUBLIC"] and request.endpoint in policy.PREDICT_PUBLIC:
        return _public_predict_limit()
    if role is None:
        if wants_json():
            raise StudioError("unauthorized", "Sign in, or send an API token as 'Authorization: Bearer <token>'.")
        target = "accounts.setup" if services.user_count() == 0 else "accounts.sign_in"
        return redirect(url_for(target, next=quote(request.full_path.rstrip("?"), safe="/?=&")))
    if not policy.role_allows(role, needed):
        raise StudioError("forbidden", "Your role (%(role)s) cannot do this; it needs %(needed)s. Ask an admin.",
                          {"role": role, "needed": needed})
    return None


def _public_predict_limit():
    if request.method in policy.SAFE_METHODS:
        return None
    try:
        wait = current_app.extensions["public_predict_limit"].take(f"addr:{request.remote_addr}").wait
    except limits.LimitUnavailable:  # uncounted, the public would be unlimited
        raise StudioError("rate_limit_unavailable", "Public prediction is paused: the studio cannot count "
                                                    "requests because its Redis does not answer.") from None
    if wait:
        raise StudioError("too_many_requests", "Too many predictions from this address; try again shortly.",
                          retry_after=int(wait) + 1)
    return None


def _refuse_unconfigured_proxy() -> None:
    """Without sign-in the studio trusts that only this machine reaches it; a proxy's forwarding headers
    say otherwise, so such requests are refused until TRUSTED_PROXIES is set (sign-in then turns on)."""
    if not current_app.config["AUTH_REQUIRED"] and ("X-Forwarded-For" in request.headers
                                                    or "Forwarded" in request.headers):
        raise StudioError("proxy_not_configured", "This studio runs without sign-in for this machine only, but the "
                                                  "request came through a reverse proxy; set TRUSTED_PROXIES to the "
                                                  "number of proxies (sign-in then turns on).")


def _before_request():
    if request.endpoint is None or request.endpoint == "static":
        return None
    _refuse_unconfigured_proxy()
    _identify()
    _check_cross_site()
    return _check_role()


def _after_request(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    origin = cors_origin()
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
        response.vary.add("Origin")
    return response


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.anonymous_user = Anonymous
    login_manager.session_protection = "basic"
    login_manager.user_loader(services.session_user)
    app.session_interface = StudioSessionInterface()
    limits.init_app(app)
    app.before_request(_before_request)
    app.after_request(_after_request)
    app.context_processor(lambda: {"csrf_token": csrf_token, "current_user": current_user,
                                   "effective_role": effective_role, "may": may,
                                   "auth_required": app.config["AUTH_REQUIRED"]})
