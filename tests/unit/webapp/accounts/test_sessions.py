"""Sessions end on the server: a cookie is bound to a session record and to its user's secret, so sign-out,
"sign out everywhere", a new password, a new role or a deleted account each end it; API tokens expire and
cannot make more tokens."""
from __future__ import annotations

import re
import shutil
from datetime import timedelta

import pytest

from tests.factories import form_token
from tests.stack import app_config
from webapp import create_app
from webapp.accounts import services
from webapp.database import upgrade_schema
from webapp.extensions import db
from webapp.models import ApiToken, User, utcnow

PASSWORD = "correct horse 9"
NEW_PASSWORD = "battery staple 7"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """A migrated database with an admin and a viewer, made once; each test works on a copy."""
    folder = tmp_path_factory.mktemp("sessions-template")
    app = create_app(app_config(folder, AUTH="on"))
    upgrade_schema(app)
    with app.app_context():
        services.create_user("boss", PASSWORD, "admin")
        services.create_user("ann", PASSWORD, "viewer")
        db.engine.dispose()  # the last connection closes: the WAL is folded into the file
    return folder / "studio.sqlite3"


@pytest.fixture
def secured(tmp_path, migrated, redis_url_empty):
    """An app with sign-in on (failed sign-ins are counted in Redis), an admin and a viewer."""
    shutil.copyfile(migrated, tmp_path / "studio.sqlite3")
    return create_app(app_config(tmp_path, AUTH="on", REDIS_URL=redis_url_empty))


def signed_in(app, username: str = "ann", password: str = PASSWORD):
    """A browser (test client) signed in as `username`, and the CSRF token its pages carry."""
    client = app.test_client()
    answer = client.post("/sign-in", data={"username": username, "password": password,
                                           "csrf_token": form_token(client)})
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    page = client.get("/account").get_data(as_text=True)
    return client, {"X-CSRF-Token": re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)}


def with_cookie_of(app, client):
    """Another browser holding a copy of `client`'s session cookie."""
    name = app.config["SESSION_COOKIE_NAME"]
    thief = app.test_client()
    thief.set_cookie(name, client.get_cookie(name).value)
    return thief


def who(client) -> str | None:
    answer = client.get("/api/me")
    return answer.json["user"]["username"] if answer.status_code == 200 else answer.json["code"]


def bearer(app, username: str = "ann", **options) -> dict:
    with app.app_context():
        _, secret = services.create_token(services.find_user(username), "script", **options)
    return {"Authorization": f"Bearer {secret}"}


def test_a_deleted_users_cookie_never_signs_in_as_the_next_user(secured):
    """Even when the next account gets the deleted one's id (SQLite reuses the highest id without
    AUTOINCREMENT), the old cookie names a secret and a session the new account does not have."""
    browser, _ = signed_in(secured, "ann")
    with secured.app_context():
        gone = services.find_user("ann")
        ident = gone.id
        services.delete_user(gone)
        db.session.add(User(id=ident, username="newcomer", password_hash="x", role="admin"))
        db.session.commit()
    assert who(browser) == "unauthorized"
    assert browser.get("/users").headers["Location"].startswith("/sign-in")


def test_sign_out_ends_the_session_on_the_server(secured):
    browser, _ = signed_in(secured)
    copy = with_cookie_of(secured, browser)
    assert who(copy) == "ann"
    signed_out = browser.post("/sign-out", data={"csrf_token": form_token(browser, "/account")})
    assert signed_out.headers["Location"] == "/sign-in"
    assert who(browser) == "unauthorized"
    assert who(copy) == "unauthorized"


def test_sign_out_everywhere_ends_every_session_of_the_user(secured):
    laptop, csrf = signed_in(secured)
    phone, _ = signed_in(secured)
    boss, _ = signed_in(secured, "boss")
    copy = with_cookie_of(secured, laptop)
    answer = laptop.delete("/api/me/sessions", headers=csrf)
    assert answer.status_code == 200 and answer.json == {"signed_out": 2}
    assert [who(c) for c in (laptop, phone, copy, boss)] == ["unauthorized"] * 3 + ["boss"]
    again, _ = signed_in(secured)
    assert who(again) == "ann"


def test_changing_my_password_keeps_this_session_and_ends_the_others(secured):
    laptop, csrf = signed_in(secured)
    phone, _ = signed_in(secured)
    old_cookie = with_cookie_of(secured, laptop)
    wrong = laptop.post("/api/me/password", json={"current_password": "not it", "password": NEW_PASSWORD},
                        headers=csrf)
    assert wrong.status_code == 400 and wrong.json["field"] == "current_password"
    assert "current password is wrong" in wrong.json["error"]
    short = laptop.post("/api/me/password", json={"current_password": PASSWORD, "password": "short"},
                        headers=csrf)
    assert short.status_code == 400 and short.json["field"] == "password" and "at least 8" in short.json["error"]
    assert who(phone) == "ann"  # refused changes end nothing

    changed = laptop.post("/api/me/password", json={"current_password": PASSWORD, "password": NEW_PASSWORD},
                          headers=csrf)
    assert changed.status_code == 200 and changed.json["username"] == "ann"
    assert who(laptop) == "ann"
    assert who(phone) == "unauthorized" and who(old_cookie) == "unauthorized"
    # this session goes on with its CSRF token, and the new password is the one that signs in
    assert laptop.post("/api/tokens", json={"name": "after"}, headers=csrf).status_code == 201
    signed_in(secured, "ann", NEW_PASSWORD)


def test_wrong_current_passwords_count_as_failed_sign_ins(secured, tmp_path, redis_url_empty):
    """A browser left signed in cannot be used to guess the password it would take over the account with."""
    app = create_app(app_config(tmp_path, AUTH="on", REDIS_URL=redis_url_empty, SIGN_IN_ATTEMPTS=2))
    laptop, csrf = signed_in(app)
    body = {"current_password": "guess", "password": NEW_PASSWORD}
    for _ in range(2):
        assert laptop.post("/api/me/password", json=body, headers=csrf).json["field"] == "current_password"
    blocked = laptop.post("/api/me/password", json={**body, "current_password": PASSWORD}, headers=csrf)
    assert blocked.status_code == 429 and blocked.json["code"] == "too_many_requests"
    assert "Too many failed sign-ins" in blocked.json["error"]
    elsewhere = app.test_client()  # the same count holds sign-in back
    refused = elsewhere.post("/sign-in", data={"username": "ann", "password": PASSWORD,
                                               "csrf_token": form_token(elsewhere)})
    assert refused.status_code == 429 and "Too many failed sign-ins" in refused.get_data(as_text=True)


def test_a_new_role_ends_the_users_sessions(secured):
    ann, _ = signed_in(secured)
    boss, csrf = signed_in(secured, "boss")
    with secured.app_context():
        ann_id = services.find_user("ann").id
    promoted = boss.patch(f"/api/users/{ann_id}", json={"role": "admin"}, headers=csrf)
    assert promoted.json["role"] == "admin"
    assert who(ann) == "unauthorized" and who(boss) == "boss"


def test_a_token_cannot_mint_tokens_or_change_the_password(secured):
    token = bearer(secured)
    client = secured.test_client()
    minted = client.post("/api/tokens", json={"name": "another"}, headers=token)
    assert minted.status_code == 403 and minted.json["code"] == "browser_session_required"
    assert "signed-in browser" in minted.json["error"]
    changed = client.post("/api/me/password", json={"current_password": PASSWORD, "password": NEW_PASSWORD},
                          headers=token)
    assert changed.status_code == 403 and changed.json["code"] == "browser_session_required"
    assert client.delete("/api/me/sessions", headers=token).json["code"] == "browser_session_required"
    assert [t["name"] for t in client.get("/api/tokens", headers=token).json["tokens"]] == ["script"]


def test_an_admin_token_cannot_make_accounts_or_reset_passwords(secured):
    """A leaked admin token must not leave a way back in that outlives its revocation: a new admin, or a
    password or role it chose."""
    token = bearer(secured, "boss")
    client = secured.test_client()
    made = client.post("/api/users", json={"username": "mallory", "password": NEW_PASSWORD, "role": "admin"},
                       headers=token)
    assert made.status_code == 403 and made.json["code"] == "browser_session_required"
    ann = next(u for u in client.get("/api/users", headers=token).json["users"] if u["username"] == "ann")
    for change in ({"password": NEW_PASSWORD}, {"role": "admin"}):
        answer = client.patch(f"/api/users/{ann['id']}", json=change, headers=token)
        assert answer.status_code == 403 and answer.json["code"] == "browser_session_required"
    assert [u["username"] for u in client.get("/api/users", headers=token).json["users"]] == ["ann", "boss"]
    signed_in(secured, "ann", PASSWORD)  # her password is still hers
    browser, csrf = signed_in(secured, "boss")
    assert browser.post("/api/users", json={"username": "carol", "password": NEW_PASSWORD},
                        headers=csrf).status_code == 201


def test_tokens_expire(secured):
    browser, csrf = signed_in(secured)
    made = browser.post("/api/tokens", json={"name": "camera", "expires_in_days": 30}, headers=csrf)
    assert made.status_code == 201
    assert made.json["expires_at"].startswith((utcnow() + timedelta(days=30)).date().isoformat())
    forever = browser.post("/api/tokens", json={"name": "forever", "expires_in_days": None}, headers=csrf)
    assert forever.json["expires_at"] is None
    for odd in (0, -1, 3651, 1.5, "30", True):
        refused = browser.post("/api/tokens", json={"name": "x", "expires_in_days": odd}, headers=csrf)
        assert refused.status_code == 400 and refused.json["field"] == "expires_in_days", odd
    script = {"Authorization": f"Bearer {made.json['token']}"}
    assert who_with(secured, script) == "ann"
    with secured.app_context():
        db.session.get(ApiToken, made.json["id"]).expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    expired = secured.test_client().get("/api/datasets", headers=script)
    assert expired.status_code == 401 and expired.json["code"] == "token_expired"
    assert "expired" in expired.json["error"]
    listed = {t["name"]: t for t in browser.get("/api/tokens").json["tokens"]}
    assert listed["camera"]["expired"] is True and listed["forever"]["expired"] is False


def who_with(app, headers) -> str:
    return app.test_client().get("/api/me", headers=headers).json["user"]["username"]


def test_without_sign_in_the_account_page_has_no_password_or_sessions(client):
    page = client.get("/account").get_data(as_text=True)
    assert "Local mode" in page and 'id="password-form"' not in page and 'id="sign-out-everywhere"' not in page
    assert client.post("/api/me/password", json={}).json["code"] == "unauthorized"
    assert client.delete("/api/me/sessions").json["code"] == "unauthorized"


def test_the_migration_gives_every_existing_user_a_secret_and_keeps_their_tokens(tmp_path):
    from flask_migrate import upgrade
    from sqlalchemy import inspect, text

    from webapp.database import MIGRATIONS_DIR

    app = create_app(app_config(tmp_path, AUTH="on"))
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR, revision="0015")
        with db.engine.begin() as connection:
            for ident in (1, 2):
                connection.execute(text(
                    "INSERT INTO users (id, username, password_hash, role, created_at, session_version) "
                    "VALUES (:id, :name, 'x', 'admin', '2026-01-01 00:00:00', 1)"), {"id": ident, "name": f"u{ident}"})
            connection.execute(text(
                "INSERT INTO api_tokens (user_id, name, token_hash, prefix, created_at) "
                "VALUES (1, 'script', :hash, 'isk_abc', '2026-01-01 00:00:00')"), {"hash": "0" * 64})
        upgrade(directory=MIGRATIONS_DIR)
        secrets_by_user = dict(db.session.execute(text("SELECT id, session_secret FROM users")).all())
        assert "session_version" not in {c["name"] for c in inspect(db.engine).get_columns("users")}
        assert [token.name for token in ApiToken.query.all()] == ["script"]
        assert ApiToken.query.one().expires_at is None
    assert all(re.fullmatch(r"[0-9a-f]{64}", secret) for secret in secrets_by_user.values())
    assert len(set(secrets_by_user.values())) == 2


def test_odd_session_names_name_nobody(secured):
    """What an old cookie (`id:version`) or a mangled one names: nobody, without an error."""
    with secured.app_context():
        ann = services.find_user("ann")
        for ident in ("2:1", f"{ann.id}:key:é", f"{ann.id}:key:{'0' * 64}", "٣:a:b", "", "::", "9" * 40 + ":a:b", None):
            assert services.session_user(ident) is None, ident
