"""Sign-in, roles, API tokens, cross-site and host checks, and the headers on every answer."""
from __future__ import annotations

import os
import random
import re
import stat

import pytest

from tests.factories import form_token
from tests.stack import app_config
from webapp import create_app
from webapp.accounts import policy, services
from webapp.accounts.settings import auth_required, trusted_hosts
from webapp.database import upgrade_schema
from webapp.models import ApiToken

PASSWORD = "correct horse 9"


@pytest.fixture
def secured(tmp_path, redis_url_empty):
    """An app with sign-in on and one user of each role (failed sign-ins are counted in Redis)."""
    app = create_app(app_config(tmp_path, AUTH="on", SIGN_IN_ATTEMPTS=3, REDIS_URL=redis_url_empty))
    upgrade_schema(app)
    with app.app_context():
        for role in policy.ROLES:
            services.create_user(f"{role}-ann", PASSWORD, role)
    return app


def token_for(app, role: str) -> str:
    with app.app_context():
        _, secret = services.create_token(services.find_user(f"{role}-ann"), "script")
    return secret


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def sign_in(client, username: str, password: str = PASSWORD, **request):
    return client.post("/sign-in", data={"username": username, "password": password,
                                         "csrf_token": form_token(client, **request)}, **request)


def admin_browser(app):
    """A browser signed in as the admin, and the CSRF header its pages carry: accounts are managed from a
    browser session, never with a token."""
    client = app.test_client()
    assert sign_in(client, "admin-ann").status_code == 302
    page = client.get("/account").get_data(as_text=True)
    return client, {"X-CSRF-Token": re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)}


def example_url(rule) -> str:
    values = {name: ("x" if converter.__class__.__name__ in ("UnicodeConverter", "PathConverter") else 1)
              for name, converter in rule._converters.items()}
    return rule.build(values, append_unknown=False)[1]


def test_every_endpoint_refuses_anonymous_callers(secured):
    """Walks the URL map, so an endpoint added later without a rule is caught here."""
    client = secured.test_client()
    checked = 0
    for rule in secured.url_map.iter_rules():
        if rule.endpoint in policy.PUBLIC:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(example_url(rule), method=method)
            if rule.rule.startswith("/api/") or rule.endpoint in policy.SCRAPE:  # programs: a JSON 401
                assert response.status_code == 401, (method, rule.rule)
                assert response.json["code"] == "unauthorized"
            else:
                assert response.status_code == 302, (method, rule.rule)
                assert "/sign-in" in response.headers["Location"]
            checked += 1
    assert checked > 40


def test_roles_allow_and_refuse(secured):
    client = secured.test_client()
    viewer, member, admin = (bearer(token_for(secured, role)) for role in policy.ROLES)
    assert client.get("/api/datasets", headers=viewer).json == {"datasets": [], "next_before": None}
    refused = client.post("/api/jobs", json={"dataset_id": 1}, headers=viewer)
    assert refused.status_code == 403 and refused.json["code"] == "forbidden"
    assert "viewer" in refused.json["error"]
    # a member passes the role check and reaches the view, which then judges the body
    assert client.post("/api/jobs", json={"dataset_id": 1}, headers=member).json["code"] == "dataset_not_found"
    assert client.get("/api/models/1/download", headers=viewer).json["code"] == "forbidden"
    assert client.get("/api/models/1/download", headers=member).json["code"] == "model_version_not_found"
    assert client.post("/api/predict", headers=viewer).json["code"] != "forbidden"
    for endpoint, needed in policy.NEEDS.items():
        if needed != "admin":
            continue
        rule = next(r for r in secured.url_map.iter_rules() if r.endpoint == endpoint)
        method = sorted(rule.methods - {"HEAD", "OPTIONS"})[0]
        answer = client.open(example_url(rule), method=method, headers=member)
        assert answer.status_code == 403, endpoint
        answered = client.open(example_url(rule), method=method, headers=admin)
        assert (answered.get_json(silent=True) or {}).get("code") != "forbidden", endpoint


def test_token_create_use_revoke(secured):
    client = secured.test_client()
    assert sign_in(client, "member-ann").status_code == 302
    csrf = client.get("/account").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', csrf).group(1)
    made = client.post("/api/tokens", json={"name": "line 3 camera"}, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201
    secret = made.json["token"]
    assert secret.startswith("isk_") and made.json["prefix"] == secret[:10]
    with secured.app_context():
        stored = ApiToken.query.one()
        assert secret not in (stored.token_hash, stored.prefix) and len(stored.token_hash) == 64
    listed = client.get("/api/tokens").json["tokens"]
    assert [t["name"] for t in listed] == ["line 3 camera"] and "token" not in listed[0]

    script = secured.test_client()
    assert script.get("/api/me", headers=bearer(secret)).json["user"]["username"] == "member-ann"
    assert client.delete(f"/api/tokens/{made.json['id']}", headers={"X-CSRF-Token": csrf}).json == {
        "revoked": made.json["id"]}
    gone = script.get("/api/datasets", headers=bearer(secret))
    assert gone.status_code == 401 and gone.json["code"] == "invalid_token"


def test_someone_elses_token_cannot_be_revoked(secured):
    client = secured.test_client()
    secret = token_for(secured, "admin")
    with secured.app_context():
        token_id = ApiToken.query.one().id
    answer = client.delete(f"/api/tokens/{token_id}", headers=bearer(token_for(secured, "viewer")))
    assert answer.status_code == 404 and answer.json["code"] == "token_not_found"
    assert client.get("/api/me", headers=bearer(secret)).json["role"] == "admin"


def test_sign_in_is_rate_limited_and_sets_safe_cookies(secured):
    client = secured.test_client()
    for _ in range(3):
        wrong = sign_in(client, "member-ann", "wrong password")
        assert wrong.status_code == 401 and "wrong" in wrong.get_data(as_text=True)
    blocked = sign_in(client, "member-ann")  # even the right password waits now
    assert blocked.status_code == 429 and "Too many failed sign-ins" in blocked.get_data(as_text=True)

    elsewhere = secured.test_client()  # another address, another user: not blocked
    answer = sign_in(elsewhere, "viewer-ann", environ_base={"REMOTE_ADDR": "10.0.0.7"})
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert elsewhere.get("/api/me").json["user"]["role"] == "viewer"


def test_sign_in_goes_back_only_to_this_site(secured):
    client = secured.test_client()
    token = form_token(client)
    answer = client.post("/sign-in?next=//evil.example/x", data={
        "username": "viewer-ann", "password": PASSWORD, "csrf_token": token})
    assert answer.headers["Location"] == "/datasets"
    client = secured.test_client()
    answer = client.post("/sign-in?next=/jobs", data={
        "username": "viewer-ann", "password": PASSWORD, "csrf_token": form_token(client)})
    assert answer.headers["Location"] == "/jobs"


def test_secure_cookie_behind_an_https_proxy(tmp_path, redis_url_empty):
    app = create_app(app_config(tmp_path, TRUSTED_PROXIES=1, REDIS_URL=redis_url_empty))
    upgrade_schema(app)
    assert app.config["AUTH_REQUIRED"] is True
    with app.app_context():
        services.create_user("ann", PASSWORD, "admin")
    client = app.test_client()
    proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.1.2.3"}
    page = client.get("/sign-in", headers=proxy, base_url="https://localhost")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    answer = client.post("/sign-in", data={"username": "ann", "password": PASSWORD, "csrf_token": token},
                         headers={**proxy, "Origin": "https://localhost"})
    assert answer.status_code == 302
    assert "Secure" in answer.headers["Set-Cookie"]


def test_cookie_session_needs_the_csrf_token(secured):
    client = secured.test_client()
    sign_in(client, "member-ann")
    refused = client.post("/api/jobs", json={"dataset_id": 1})
    assert refused.status_code == 403 and refused.json["code"] == "csrf_token_invalid"
    stale = client.post("/api/jobs", json={"dataset_id": 1}, headers={"X-CSRF-Token": "guess"})
    assert stale.json["code"] == "csrf_token_invalid"
    page = client.get("/datasets").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    assert client.post("/api/jobs", json={"dataset_id": 1},
                       headers={"X-CSRF-Token": token}).json["code"] == "dataset_not_found"


@pytest.mark.parametrize("headers", [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                                     {"Origin": "http://evil.example"}, {"Origin": "null"}])
def test_cross_site_posts_are_refused_even_without_sign_in(client, headers):
    answer = client.post("/api/predict", data={}, headers=headers)
    assert answer.status_code == 403 and answer.json["code"] == "cross_site_request"
    assert client.delete("/api/datasets/1", headers=headers).json["code"] == "cross_site_request"


def test_scripts_without_origin_work_when_sign_in_is_off(client):
    assert client.post("/api/jobs", json={"dataset_id": 1}).json["code"] == "dataset_not_found"
    same = client.post("/api/jobs", json={"dataset_id": 1},
                       headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert same.json["code"] == "dataset_not_found"


def test_foreign_host_is_refused(client, secured):
    for app_client in (client, secured.test_client()):
        answer = app_client.get("/api/health", headers={"Host": "rebind.evil.example"})
        assert answer.status_code == 400 and answer.json["code"] == "untrusted_host"
    assert "code" not in client.get("/api/health", headers={"Host": "127.0.0.1:5000"}).json


def test_security_headers_on_pages_api_and_files(client):
    for path in ("/datasets", "/api/datasets", "/static/js/api.js", "/no-such-page"):
        headers = client.get(path).headers
        policy_header = headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy_header and "unsafe-inline" not in policy_header
        assert "frame-ancestors 'none'" in policy_header
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"


def test_pages_have_no_inline_script_or_style(client):
    for path in ("/datasets", "/jobs", "/models", "/predict", "/feedback", "/account"):
        html = client.get(path).get_data(as_text=True)
        # scripts come from files; the one inline block is data (JSON), which browsers never run
        assert not re.search(r"<script(?![^>]*\b(src=|type=\"application/json\"))[^>]*>", html), path
        assert " style=" not in html and not re.search(r"\son[a-z]+=", html), path


def test_auth_setting_follows_where_the_studio_listens():
    assert auth_required("auto", "127.0.0.1", 0) is False
    assert auth_required("on", "127.0.0.1", 0) is True
    assert auth_required("auto", "0.0.0.0", 0) is True
    assert auth_required("auto", "127.0.0.1", 1) is True
    for host, proxies in (("0.0.0.0", 0), ("10.0.0.5", 0), ("127.0.0.1", 2)):
        with pytest.raises(ValueError, match="AUTH=off is refused"):
            auth_required("off", host, proxies)
    with pytest.raises(ValueError):
        auth_required("maybe", "127.0.0.1", 0)
    assert trusted_hosts("10.0.0.5", None)[-1] == "10.0.0.5"
    assert trusted_hosts("0.0.0.0", ["studio.lab"]) == ["studio.lab"]


def test_secret_key_is_made_once_and_private(tmp_path):
    first = create_app(app_config(tmp_path))
    second = create_app(app_config(tmp_path))
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] and len(first.config["SECRET_KEY"]) == 64
    key_file = tmp_path / "keys" / "session.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    other = create_app(app_config(tmp_path / "other"))
    assert other.config["SECRET_KEY"] != first.config["SECRET_KEY"]


def test_public_prediction_opens_only_predict(tmp_path, redis_url_empty):
    app = create_app(app_config(tmp_path, AUTH="on", PREDICT_PUBLIC=True, PREDICT_PUBLIC_PER_MINUTE=2,
                                PREDICT_CORS_ORIGINS=["https://shop.example"], REDIS_URL=redis_url_empty))
    upgrade_schema(app)
    client = app.test_client()
    assert client.get("/predict").status_code == 200
    first = client.post("/api/predict", data={})
    assert first.status_code != 401 and first.json["code"] != "unauthorized"
    assert client.get("/api/models").status_code == 401
    assert client.post("/api/jobs", json={}).status_code == 401
    client.post("/api/predict", data={})
    limited = client.post("/api/predict", data={})
    assert limited.status_code == 429 and limited.json["code"] == "too_many_requests"

    other = create_app(app_config(tmp_path / "b", AUTH="on", PREDICT_PUBLIC=True, REDIS_URL=redis_url_empty,
                                  PREDICT_CORS_ORIGINS=["https://shop.example"])).test_client()
    upgrade_schema(other.application)
    allowed = other.post("/api/predict", data={}, headers={"Origin": "https://shop.example",
                                                           "Sec-Fetch-Site": "cross-site"})
    assert allowed.json["code"] != "cross_site_request"
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    preflight = other.options("/api/predict", headers={"Origin": "https://shop.example",
                                                        "Access-Control-Request-Method": "POST"})
    assert preflight.headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    foreign = other.post("/api/predict", data={}, headers={"Origin": "https://evil.example"})
    assert foreign.json["code"] == "cross_site_request" and "Access-Control-Allow-Origin" not in foreign.headers


def test_health_hides_workers_from_anonymous_callers(secured):
    client = secured.test_client()
    anonymous = client.get("/api/health").json
    assert set(anonymous) == {"status", "database", "redis", "workers_online"}
    signed = client.get("/api/health", headers=bearer(token_for(secured, "viewer"))).json
    assert "workers" in signed and "visualdl" in signed


def test_first_run_page_creates_the_admin_with_the_setup_token(tmp_path):
    """From any address: the token, not the address, lets the first admin in (tests/unit/webapp/accounts/
    test_setup_and_limits.py has the rest)."""
    from webapp.accounts.first_run import make_token
    from webapp.storage import DataDir

    app = create_app(app_config(tmp_path, AUTH="on"))
    upgrade_schema(app)
    setup_token = make_token(DataDir(tmp_path))
    remote = app.test_client()
    page = remote.get("/setup", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert page.status_code == 200 and "users create" in page.get_data(as_text=True)

    local = app.test_client()
    assert local.get("/datasets").headers["Location"].startswith("/setup")
    token = form_token(local, "/setup")
    mismatch = local.post("/setup", data={"username": "root", "password": PASSWORD, "confirm": "other pass",
                                          "csrf_token": token, "token": setup_token})
    assert mismatch.status_code == 400 and "differ" in mismatch.get_data(as_text=True)
    made = local.post("/setup", data={"username": "root", "password": PASSWORD, "confirm": PASSWORD,
                                      "csrf_token": token, "token": setup_token})
    assert made.status_code == 302
    assert local.get("/api/me").json["user"] == {**local.get("/api/me").json["user"], "role": "admin"}
    assert local.get("/setup").headers["Location"] == "/sign-in"


def test_users_cli_makes_the_first_admin(tmp_path):
    app = create_app(app_config(tmp_path, AUTH="on"))
    upgrade_schema(app)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "create", "王芳", "--password", PASSWORD])
    assert result.exit_code == 0 and "admin '王芳'" in result.output
    short = runner.invoke(args=["users", "create", "bob", "--password", "short"])
    assert short.exit_code != 0 and "at least 8" in short.output
    assert "王芳\tadmin" in runner.invoke(args=["users", "list"]).output


def test_admins_manage_users_and_keep_one_admin(secured):
    client, admin = admin_browser(secured)
    made = client.post("/api/users", json={"username": "li", "password": PASSWORD, "role": "viewer"},
                       headers=admin)
    assert made.status_code == 201 and made.json["role"] == "viewer"
    taken = client.post("/api/users", json={"username": "li", "password": PASSWORD}, headers=admin)
    assert taken.status_code == 400 and taken.json["field"] == "username"
    for body in ({"username": "a\x00b", "password": PASSWORD}, {"username": "x" * 65, "password": PASSWORD},
                 {"username": "c", "password": PASSWORD, "role": "root"}, [], {"username": "d"}):
        answer = client.post("/api/users", json=body, headers=admin)
        assert answer.status_code == 400, body
    promoted = client.patch(f"/api/users/{made.json['id']}", json={"role": "member"}, headers=admin)
    assert promoted.json["role"] == "member"
    assert client.patch("/api/users/1", json={"color": "red"}, headers=admin).json["code"] == "unknown_option"
    assert client.patch(f"/api/users/{2**70}", json={}, headers=admin).status_code == 404
    with secured.app_context():
        admin_id = services.find_user("admin-ann").id
    last = client.patch(f"/api/users/{admin_id}", json={"role": "viewer"}, headers=admin)
    assert last.status_code == 400 and "at least one admin" in last.json["error"]
    assert client.delete(f"/api/users/{admin_id}", headers=admin).status_code == 400
    assert client.delete(f"/api/users/{made.json['id']}", headers=admin).json == {"deleted": made.json["id"]}


def test_new_password_ends_existing_sessions(secured):
    client = secured.test_client()
    sign_in(client, "viewer-ann")
    assert client.get("/api/me").json["user"]["username"] == "viewer-ann"
    with secured.app_context():
        services.update_user(services.find_user("viewer-ann"), password="another pass 1")
    assert client.get("/api/me").json["code"] == "unauthorized"
    assert client.get("/datasets").headers["Location"].startswith("/sign-in")


def test_accounts_api_and_forms_fuzz(secured):
    """Hostile bodies, headers and form fields: never a 5xx, always an error in words."""
    from tests.unit.webapp.test_fuzz import ODD_TEXT, ODD_VALUES, check, safe_json

    client = secured.test_client()
    admin = bearer(token_for(secured, "admin"))
    browser, signed_in_admin = admin_browser(secured)
    rng = random.Random(12)
    for _ in range(150):
        body = {rng.choice(["username", "password", "role", "name", "x"]): rng.choice(ODD_VALUES + ODD_TEXT)
                for _ in range(rng.randint(0, 3))}
        raw = rng.choice([safe_json(body), safe_json(rng.choice(ODD_VALUES)), rng.choice(ODD_TEXT)])
        for method, path in (("POST", "/api/users"), ("PATCH", f"/api/users/{rng.choice(['1', '99', '0'])}"),
                             ("POST", "/api/tokens")):
            check(browser.open(path, method=method, data=raw, content_type="application/json",
                               headers=signed_in_admin))
        header = rng.choice(["Bearer " + rng.choice(ODD_TEXT), "Bearer", "Basic eDp5", rng.choice(ODD_TEXT),
                             "bearer isk_" + "a" * 300])
        answer = client.get("/api/datasets", headers={"Authorization": header})
        assert answer.status_code == 401 and answer.json["code"] in ("invalid_token", "unauthorized"), header
    for _ in range(40):
        form = {key: rng.choice(ODD_TEXT) for key in ("username", "password", "confirm", "csrf_token", "token")}
        for path in ("/sign-in", "/setup"):
            assert client.post(path, data=form).status_code < 500
    for ident in ("0", str(2**63), str(10**30), "-1", "abc"):
        for method, path in (("DELETE", f"/api/tokens/{ident}"), ("DELETE", f"/api/users/{ident}"),
                             ("PATCH", f"/api/users/{ident}")):
            answer = browser.open(path, method=method, json={}, headers=signed_in_admin)
            assert answer.status_code == 404, (method, path)


def test_tracebacks_are_for_admins_only(secured):
    from webapp.extensions import db
    from webapp.models import Dataset, Job

    with secured.app_context():
        db.session.add(Dataset(name="d", status="ready"))
        db.session.flush()
        db.session.add(Job(dataset_id=1, dataset_name="d", config={}, status="failed",
                           error={"text": "MemoryError: out of memory"},
                           traceback="Traceback (most recent call last):\n  File \"/srv/studio/x.py\""))
        db.session.commit()
    client = secured.test_client()
    seen = {role: client.get("/api/jobs/1", headers=bearer(token_for(secured, role))).json
            for role in policy.ROLES}
    assert seen["admin"]["traceback"].startswith("Traceback") and seen["admin"]["error"] == "MemoryError: out of memory"
    for role in ("viewer", "member"):
        assert seen[role]["traceback"] is None and seen[role]["error"] == "MemoryError: out of memory"


def test_release_changes_name_who_made_them(secured, trained):
    from tests.factories import register_bundle

    register_bundle(secured, trained[1], 1)
    register_bundle(secured, trained[1], 2)
    client = secured.test_client()
    changed = client.put("/api/release", json={"production": 2}, headers=bearer(token_for(secured, "admin")))
    assert changed.status_code == 200, changed.json
    # a token's change is named after the token and its owner (webapp.audit.actor)
    assert changed.json["history"][0]["by"] == "token:1 (admin-ann)" and changed.json["history"][0]["to"] == 2
    refused = client.post("/api/release/rollback", headers=bearer(token_for(secured, "member")))
    assert refused.json["code"] == "forbidden"


def test_predict_page_shows_what_each_caller_may_use(tmp_path, trained):
    from tests.factories import register_bundle

    app = create_app(app_config(tmp_path, AUTH="on", PREDICT_PUBLIC=True))
    upgrade_schema(app)
    with app.app_context():
        for role in ("viewer", "member"):
            services.create_user(f"{role}-ann", PASSWORD, role)
    register_bundle(app, trained[1], 1)
    client = app.test_client()
    anonymous = client.get("/predict").get_data(as_text=True)
    assert 'id="drop-image"' in anonymous and 'id="version-picker"' not in anonymous
    assert 'data-feedback="off"' in anonymous
    viewer = client.get("/predict", headers=bearer(token_for(app, "viewer"))).get_data(as_text=True)
    assert 'id="version-picker"' in viewer and 'data-feedback="off"' in viewer
    member = client.get("/predict", headers=bearer(token_for(app, "member"))).get_data(as_text=True)
    assert 'data-feedback="on"' in member


def test_a_proxy_in_front_of_a_studio_without_sign_in_is_refused(client):
    answer = client.get("/api/datasets", headers={"X-Forwarded-For": "10.0.0.8"})
    assert answer.status_code == 403 and answer.json["code"] == "proxy_not_configured"
    assert "TRUSTED_PROXIES" in client.get("/datasets", headers={"Forwarded": "for=10.0.0.8"}).get_data(as_text=True)
    assert client.get("/api/datasets").status_code == 200


def test_only_a_page_makes_the_csrf_token(secured):
    """An icon fetched next to the first page (its 404 page renders the layout) makes no token of its own,
    so its cookie cannot replace the page's and leave the sign-in form with a stale token."""
    client = secured.test_client()
    icon = client.get("/favicon.ico", headers={"Sec-Fetch-Dest": "image"})
    assert icon.status_code == 404 and "Set-Cookie" not in icon.headers
    page = client.get("/sign-in", headers={"Sec-Fetch-Dest": "document"})
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    assert "Set-Cookie" in page.headers
    again = client.get("/favicon.ico", headers={"Sec-Fetch-Dest": "image"})
    assert token in again.get_data(as_text=True)  # once there is a token, every page shows the same one
    answer = client.post("/sign-in", data={"username": "viewer-ann", "password": PASSWORD, "csrf_token": token})
    assert answer.status_code == 302
    assert "Set-Cookie" not in client.get("/datasets").headers  # an unchanged session is not sent again
