"""The audit log: sign-ins (and refused ones) with the client's address and never the password, release
changes, `GET /api/audit` with its filters and pages for admins only, and the removal of old entries."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.factories import form_token
from tests.stack import app_config
from webapp import create_app
from webapp.accounts import services as accounts
from webapp.accounts.first_run import make_token
from webapp.audit.log import expire_old
from webapp.database import upgrade_schema
from webapp.extensions import db
from webapp.models import AuditEntry, ModelVersion, utcnow
from webapp.storage import DataDir

PASSWORD = "correct horse 9"
WRONG = "not the password 7"
PROXY = "10.1.2.3"


@pytest.fixture(scope="module")
def studio(tmp_path_factory, redis_server):
    """Sign-in on behind one trusted proxy, two failed sign-ins allowed; an admin and a member with a token each."""
    app = create_app(app_config(tmp_path_factory.mktemp("audit"), AUTH="on", TRUSTED_PROXIES=1,
                                SIGN_IN_ATTEMPTS=2, REDIS_URL=redis_server, AUDIT_KEEP_DAYS=30))
    upgrade_schema(app)
    app.headers = {}
    with app.app_context():
        for role in ("admin", "member"):
            user = accounts.create_user(f"{role}-ann", PASSWORD, role)
            token, secret = accounts.create_token(user, "script")
            app.headers[role] = {"Authorization": f"Bearer {secret}"}
    return app


def _entries(app, **where) -> list[AuditEntry]:
    with app.app_context():
        rows = db.session.scalars(db.select(AuditEntry).filter_by(**where).order_by(AuditEntry.id)).all()
        db.session.expunge_all()
        return rows


def _sign_in(client, username: str, password: str, address: str):
    return client.post("/sign-in", data={"username": username, "password": password,
                                         "csrf_token": form_token(client)}, headers={"X-Forwarded-For": address})


def test_sign_ins_are_recorded_with_the_address_and_never_the_password(studio, redis_url_empty):
    client = studio.test_client()
    assert _sign_in(client, "admin-ann", WRONG, PROXY).status_code == 401
    assert _sign_in(client, "nobody", WRONG, PROXY).status_code == 401
    assert _sign_in(client, "admin-ann", PASSWORD, PROXY).status_code == 429  # the address's two tries are used
    assert _sign_in(client, " admin-ann ", PASSWORD, "10.9.9.9").status_code == 302
    assert client.post("/sign-out", data={"csrf_token": form_token(client, "/account")}).status_code == 302
    with studio.app_context():
        admin_id = str(accounts.find_user("admin-ann").id)
    seen = [(e.actor, e.action, e.subject_id, e.address, e.details) for e in _entries(studio, subject_type="user")
            if e.action.startswith("user.sign")]
    assert seen == [
        ("anonymous", "user.sign_in_failed", admin_id, PROXY, {"username": "admin-ann", "reason": "wrong_password"}),
        ("anonymous", "user.sign_in_failed", None, PROXY, {"username": "nobody", "reason": "unknown_user"}),
        ("anonymous", "user.sign_in_failed", admin_id, PROXY, {"username": "admin-ann", "reason": "rate_limited"}),
        ("admin-ann", "user.sign_in", admin_id, "10.9.9.9", {"username": "admin-ann"}),
        ("admin-ann", "user.sign_out", admin_id, "127.0.0.1", {"username": "admin-ann"}),  # no X-Forwarded-For
    ]
    stored = repr([(e.actor, e.action, e.subject_type, e.subject_id, e.address, e.details) for e in _entries(studio)])
    assert PASSWORD not in stored and WRONG not in stored


def test_first_run_setup_and_signing_out_everywhere_are_recorded(tmp_path):
    app = create_app(app_config(tmp_path, AUTH="on"))
    upgrade_schema(app)
    client = app.test_client()
    form = {"username": "root", "password": PASSWORD, "confirm": PASSWORD, "token": make_token(DataDir(tmp_path)),
            "csrf_token": form_token(client, "/setup")}
    assert client.post("/setup", data=form, headers={"X-Forwarded-For": PROXY}).status_code == 302
    page = client.get("/account").get_data(as_text=True)
    csrf = page.split('name="csrf-token" content="')[1].split('"')[0]
    assert client.delete("/api/me/sessions", headers={"X-CSRF-Token": csrf}).get_json() == {"signed_out": 1}
    assert [(e.actor, e.action, e.address, e.details) for e in _entries(app)] == [
        ("anonymous", "user.create", "127.0.0.1", {"username": "root", "role": "admin"}),  # no proxy is trusted
        ("anonymous", "user.setup", "127.0.0.1", {"username": "root"}),
        ("root", "user.sign_in", "127.0.0.1", {"username": "root"}),
        ("root", "user.sign_out", "127.0.0.1", {"username": "root", "everywhere": True, "sessions": 1}),
    ]


def test_a_release_change_is_recorded_with_who_and_from_where(studio, monkeypatch):
    monkeypatch.setattr(studio.extensions["model_server"], "get", lambda version: None)
    with studio.app_context():
        for version in (1, 2):
            db.session.add(ModelVersion(version=version, backbone="resnet18", image_size=32, class_names=["a", "b"],
                                        val_acc=0.5, bundle_bytes=1))
        db.session.commit()
    client = studio.test_client()
    for change in ({"production": 1}, {"candidate": 2, "candidate_share": 25}):
        answer = client.put("/api/release", json=change, headers=studio.headers["admin"])
        assert answer.status_code == 200, answer.get_json()
    listed = client.get("/api/audit?action=release.", headers=studio.headers["admin"]).get_json()["entries"]
    assert [(e["action"], e["subject_type"], e["subject_id"], e["details"]) for e in listed] == [
        ("release.set_candidate", "release", "2", {"from": None, "to": 2, "share": 25}),
        ("release.promote", "release", "1", {"from": None, "to": 1, "share": None}),
    ]
    assert {e["actor"] for e in listed} == {"token:1 (admin-ann)"}
    assert {e["address"] for e in listed} == {"127.0.0.1"}


def _seed(app) -> list[int]:
    """Five entries of an actor of their own, a day apart (the newest now), from two addresses."""
    now = utcnow()
    rows = [AuditEntry(at=now - timedelta(days=4 - n), actor="seeder", action=action, subject_type=kind,
                       subject_id=str(n), address=address, details={"n": n})
            for n, (action, kind, address) in enumerate([
                ("user.create", "user", "10.0.0.1"), ("user.delete", "user", "10.0.0.2"),
                ("token.create", "token", "10.0.0.1"), ("user_note.add", "user", "10.0.0.1"),
                ("dataset.delete", "dataset", "10.0.0.2")])]
    with app.app_context():
        db.session.add_all(rows)
        db.session.commit()
        return [row.id for row in rows]


def test_filters_pages_and_stable_fields(studio):
    ids = _seed(studio)
    client = studio.test_client()

    def listed(query: str) -> list[int]:
        answer = client.get(f"/api/audit?actor=seeder&{query}", headers=studio.headers["admin"])
        assert answer.status_code == 200, answer.get_json()
        return [entry["id"] for entry in answer.get_json()["entries"]]

    assert listed("") == ids[::-1]
    assert listed("action=user.") == [ids[1], ids[0]]  # a prefix ends with a dot: not "user_note.add"
    assert listed("action=user") == []
    assert listed("action=token.create") == [ids[2]]
    assert listed("subject_type=user&subject_id=3") == [ids[3]]
    assert listed("address=10.0.0.2") == [ids[4], ids[1]]
    day = (utcnow() - timedelta(days=2, hours=12)).isoformat() + "Z"
    assert listed(f"since={day}") == [ids[4], ids[3], ids[2]]
    assert listed(f"until={day}") == [ids[1], ids[0]]
    first = client.get("/api/audit?actor=seeder&limit=2", headers=studio.headers["admin"]).get_json()
    assert [e["id"] for e in first["entries"]] == [ids[4], ids[3]] and first["next_before"] == ids[3]
    second = client.get(f"/api/audit?actor=seeder&limit=2&before={ids[3]}", headers=studio.headers["admin"]).get_json()
    assert [e["id"] for e in second["entries"]] == [ids[2], ids[1]]
    assert list(first["entries"][0]) == ["id", "at", "actor", "action", "subject_type", "subject_id", "address",
                                         "details"]
    assert first["entries"][0]["details"] == {"n": 4} and first["entries"][0]["at"].endswith("Z")
    refused = client.get("/api/audit?since=yesterday", headers=studio.headers["admin"])
    assert refused.status_code == 400 and refused.get_json()["field"] == "since"
    assert client.get("/api/audit?actor=a%00b", headers=studio.headers["admin"]).get_json()["field"] == "actor"


def test_only_admins_read_the_log(studio):
    client = studio.test_client()
    assert client.get("/api/audit").status_code == 401
    member = client.get("/api/audit", headers=studio.headers["member"])
    assert member.status_code == 403 and member.get_json()["code"] == "forbidden"
    assert client.get("/audit", headers=studio.headers["member"]).status_code == 403
    page = client.get("/audit", headers=studio.headers["admin"]).get_data(as_text=True)
    assert "js/audit.js" in page and "AUDIT_KEEP_DAYS" in page


def test_retention_removes_only_entries_older_than_the_setting(studio):
    now = utcnow()
    with studio.app_context():
        old, kept = (AuditEntry(at=now - timedelta(days=days), actor="keeper", action="user.create",
                                subject_type="user") for days in (31, 29))
        db.session.add_all([old, kept])
        db.session.commit()
        studio.config["AUDIT_KEEP_DAYS"] = 0
        assert expire_old() == 0
        studio.config["AUDIT_KEEP_DAYS"] = 30
        assert expire_old() >= 1
    assert [round((now - e.at).days) for e in _entries(studio, actor="keeper")] == [29]
