"""The first admin needs the one-time setup token from any address; sign-in follows where the server really
listens; failed sign-ins and public predictions are counted in Redis, once for every web process."""
from __future__ import annotations

import http.client
import logging
import os
import re
import stat
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from launcher import gunicorn_settings
from tests.factories import form_token
from tests.stack import app_config
from webapp import ROOT, create_app
from webapp.accounts import services
from webapp.accounts.settings import auth_required
from webapp.database import upgrade_schema
from webapp.models import User

PASSWORD = "correct horse 9"
ZH = {"Accept-Language": "zh-CN"}
REDIS_DOWN = "redis://127.0.0.1:1/0"


def fresh_app(data_dir: Path, **config):
    app = create_app(app_config(data_dir, **config))
    upgrade_schema(app)
    return app


def setup_form(client, token: str | None, **fields) -> dict:
    form = {"username": "root", "password": PASSWORD, "confirm": PASSWORD, "csrf_token": form_token(client, "/setup")}
    if token is not None:
        form["token"] = token
    return {**form, **fields}


def served_app(tmp_path, caplog):
    """The app as the production server makes it (webapp.wsgi): with its setup token while nobody can sign in."""
    from webapp.accounts.first_run import prepare_first_run

    app = fresh_app(tmp_path, AUTH="on")
    with caplog.at_level(logging.INFO):
        prepare_first_run(app)
    return app


def test_a_loopback_visitor_cannot_make_the_first_admin_without_the_token(tmp_path):
    """Behind a proxy that adds no X-Forwarded-For, or through an SSH tunnel, every visitor is loopback."""
    app = fresh_app(tmp_path, AUTH="on")
    visitor = app.test_client()
    refused = visitor.post("/setup", data=setup_form(visitor, None))
    assert refused.status_code == 403 and "setup token" in refused.get_data(as_text=True)
    assert visitor.get("/api/me").json["code"] == "unauthorized"
    with app.app_context():
        assert services.user_count() == 0


def test_setup_needs_the_setup_token_from_every_address(tmp_path, caplog):
    app = served_app(tmp_path, caplog)
    token_file = tmp_path / "keys" / "setup.token"
    token = token_file.read_bytes().hex()
    local = app.test_client()  # the loopback address: a proxy or a tunnel makes every visitor look like this
    for given in (None, "", "wrong", token[:-1]):
        refused = local.post("/setup", data=setup_form(local, given))
        assert refused.status_code == 403 and "setup token" in refused.get_data(as_text=True), given
    with app.app_context():
        assert services.user_count() == 0
    late = app.test_client()
    late_form = setup_form(late, token, username="second")

    remote, address = app.test_client(), {"environ_base": {"REMOTE_ADDR": "10.0.0.9"}}
    assert remote.get("/datasets", **address).headers["Location"].startswith("/setup")
    page = remote.get(f"/setup?token={token}", **address)  # the logged link fills the token in
    assert page.status_code == 200 and f'value="{token}"' in page.get_data(as_text=True)
    made = remote.post("/setup", data=setup_form(remote, token), **address)
    assert made.status_code == 302 and remote.get("/api/me", **address).json["user"]["role"] == "admin"
    assert not token_file.exists()  # the first admin exists: the token is spent
    again = late.post("/setup", data=late_form)
    assert again.status_code == 302 and again.headers["Location"] == "/sign-in"
    with app.app_context():
        assert [user.username for user in User.query.all()] == ["root"]


def test_two_setup_requests_at_once_make_one_admin(tmp_path, caplog, monkeypatch):
    """Both senders hold the token: the second, arriving while the first is making its admin, is refused."""
    app = served_app(tmp_path, caplog)
    token = (tmp_path / "keys" / "setup.token").read_bytes().hex()
    first, second = app.test_client(), app.test_client()
    first_form, second_form = setup_form(first, token), setup_form(second, token, username="mallory")
    make_user, answers = services.create_user, []

    def while_the_first_makes_its_admin(*args):
        if not answers:
            answers.append(second.post("/setup", data=second_form))
        return make_user(*args)

    monkeypatch.setattr(services, "create_user", while_the_first_makes_its_admin)
    assert first.post("/setup", data=first_form).status_code == 302
    assert answers[0].status_code == 403 and "setup token" in answers[0].get_data(as_text=True)
    with app.app_context():
        assert [user.username for user in User.query.all()] == ["root"]


def test_a_setup_refused_for_its_password_keeps_the_token(tmp_path, caplog):
    app = served_app(tmp_path, caplog)
    token = (tmp_path / "keys" / "setup.token").read_bytes().hex()
    client = app.test_client()
    assert client.post("/setup", data=setup_form(client, token, password="short", confirm="short")).status_code == 400
    assert client.post("/setup", data=setup_form(client, token)).status_code == 302


def test_the_serving_process_makes_a_private_token_and_logs_its_link_once(tmp_path, caplog):
    from webapp.accounts.first_run import prepare_first_run

    app = served_app(tmp_path, caplog)
    token_file = tmp_path / "keys" / "setup.token"
    token = token_file.read_bytes().hex()
    assert len(token) >= 32 and stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    links = [record.getMessage() for record in caplog.records if "/setup?token=" in record.getMessage()]
    assert len(links) == 1 and f"/setup?token={token}" in links[0]
    caplog.clear()
    with caplog.at_level(logging.INFO):  # a second web process of the same server: same token, no second line
        prepare_first_run(fresh_app(tmp_path, AUTH="on"))
    assert token_file.read_bytes().hex() == token
    assert not [record for record in caplog.records if "/setup?token=" in record.getMessage()]


def test_wsgi_entry_point_prepares_the_first_run():
    source = (ROOT / "webapp" / "wsgi.py").read_text()
    assert "prepare_first_run(app)" in source


def test_users_cli_makes_the_first_admin_without_the_token_and_spends_it(tmp_path, caplog):
    app = served_app(tmp_path, caplog)
    result = app.test_cli_runner().invoke(args=["users", "create", "ann", "--password", PASSWORD])
    assert result.exit_code == 0 and "admin 'ann'" in result.output
    assert not (tmp_path / "keys" / "setup.token").exists()


def test_docker_image_listens_where_host_says_so_sign_in_is_on():
    dockerfile = (ROOT / "Dockerfile").read_text()
    host = re.search(r"\bHOST=(\S+)", dockerfile).group(1)
    assert 'CMD ["gunicorn", "--config", "gunicorn.conf.py"]' in dockerfile  # which binds HOST:PORT
    assert gunicorn_settings.bind_address({"HOST": host}) == f"{host}:5000"
    assert auth_required("auto", host, 0)


def test_a_server_listening_beyond_loopback_never_opens_without_sign_in(tmp_path):
    """HOST says loopback but the server listens on every address (the image's old mismatch): a request,
    with a loopback Host header at that, must not reach the studio as its admin."""
    app = fresh_app(tmp_path, HOST="127.0.0.1")
    assert app.config["AUTH_REQUIRED"] is False
    server = make_server("0.0.0.0", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        connection.request("GET", "/api/datasets", headers={"Host": "127.0.0.1"})
        answer = connection.getresponse()
        body = answer.read().decode()
    finally:
        server.shutdown()
        thread.join()
    assert answer.status == 403 and '"code":"listening_beyond_loopback"' in body.replace(" ", "")
    assert "HOST" in body


def test_a_studio_without_sign_in_behind_a_unix_socket_is_refused(tmp_path):
    """A Unix socket is how a reverse proxy reaches gunicorn: whoever reaches the proxy would be the local
    person, whatever the Host header the proxy passes on."""
    import socket

    app = fresh_app(tmp_path, HOST="127.0.0.1")
    with socket.socket(socket.AF_UNIX) as unix:
        answer = app.test_client().get("/api/datasets", headers={"Host": "127.0.0.1"},
                                       environ_base={"gunicorn.socket": unix})
    assert answer.status_code == 403 and answer.json["code"] == "listening_beyond_loopback"
    assert "AUTH=on" in answer.json["error"]
    # loopback TCP: the local person
    assert app.test_client().get("/api/datasets").json == {"datasets": [], "next_before": None}


@pytest.fixture
def limited(tmp_path, redis_url_empty):
    """Two web processes of one studio (two apps on one database and one Redis), sign-in limited to 2."""
    settings = dict(AUTH="on", SIGN_IN_ATTEMPTS=2, REDIS_URL=redis_url_empty, PREDICT_PUBLIC=True,
                    PREDICT_PUBLIC_PER_MINUTE=2)
    return fresh_app(tmp_path, **settings), create_app(app_config(tmp_path, **settings))


def with_ann(app):
    with app.app_context():
        services.create_user("ann", PASSWORD, "member")
    return app


def sign_in(client, username: str, password: str, **request):
    return client.post("/sign-in", data={"username": username, "password": password,
                                         "csrf_token": form_token(client, **request)}, **request)


def test_parallel_failed_sign_ins_cannot_pass_the_limit(limited):
    app = with_ann(limited[0])
    clients = [app.test_client() for _ in range(8)]
    tokens = [form_token(client) for client in clients]
    start, statuses = threading.Barrier(len(clients)), []

    def attempt(client, token):
        start.wait()
        statuses.append(client.post("/sign-in", data={"username": "ann", "password": "wrong password",
                                                      "csrf_token": token}).status_code)

    threads = [threading.Thread(target=attempt, args=pair) for pair in zip(clients, tokens)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [401] * 2 + [429] * 6


def test_two_web_processes_share_the_sign_in_limit(limited):
    first, second = with_ann(limited[0]), limited[1]
    assert sign_in(first.test_client(), "ann", "wrong password").status_code == 401
    assert sign_in(second.test_client(), "ann", "wrong password").status_code == 401
    blocked = sign_in(first.test_client(), "ann", PASSWORD)  # even the right password waits now
    assert blocked.status_code == 429 and "Too many failed sign-ins" in blocked.get_data(as_text=True)
    assert sign_in(second.test_client(), "ann", PASSWORD).status_code == 429


def test_an_event_given_back_frees_its_place_and_windows_slide(redis_url_empty):
    """A right password is given back (it is no failure); old failures leave the window."""
    from webapp.accounts.limits import RateLimit

    now = [1000.0]
    limit = RateLimit(redis_url_empty, "sign-in", 2, 60, clock=lambda: now[0])
    first = limit.take("addr:a", "user:ann")
    assert first.wait == 0 and limit.take("addr:a", "user:bo").wait == 0
    assert limit.take("addr:a").wait == 60  # full until the first event is a minute old
    limit.give_back(first, clear=("user:ann",))
    assert limit.take("addr:a").wait == 0 and limit.take("user:ann").wait == 0
    now[0] += 61
    assert limit.take("addr:a").wait == 0
    assert RateLimit(redis_url_empty, "predict", 2, 60, clock=lambda: now[0]).take("addr:a").wait == 0


def test_two_web_processes_share_the_public_prediction_limit(limited):
    first, second = limited
    assert first.test_client().post("/api/predict", data={}).json["code"] != "too_many_requests"
    assert second.test_client().post("/api/predict", data={}).json["code"] != "too_many_requests"
    refused = first.test_client().post("/api/predict", data={})
    assert refused.status_code == 429 and refused.json["code"] == "too_many_requests"


def test_without_redis_sign_in_fails_closed_and_public_prediction_answers_503(tmp_path):
    app = fresh_app(tmp_path, AUTH="on", REDIS_URL=REDIS_DOWN, PREDICT_PUBLIC=True)
    with app.app_context():
        services.create_user("ann", PASSWORD, "viewer")
        _, secret = services.create_token(services.find_user("ann"), "script")
    client = app.test_client()
    refused = sign_in(client, "ann", PASSWORD)
    assert refused.status_code == 503 and "cannot count failed sign-ins" in refused.get_data(as_text=True)
    assert client.get("/api/me").json["code"] == "unauthorized"
    chinese = sign_in(client, "ann", PASSWORD, headers=ZH)
    assert chinese.status_code == 503 and "登录" in chinese.get_data(as_text=True)

    answer = app.test_client().post("/api/predict", data={})
    assert answer.status_code == 503 and answer.json["code"] == "rate_limit_unavailable"
    assert "Redis" in answer.json["error"]
    signed = app.test_client().post("/api/predict", data={}, headers={"Authorization": f"Bearer {secret}"})
    assert signed.json["code"] != "rate_limit_unavailable"  # callers who signed in are not counted
