"""The VisualDL board read through the studio: GET only, behind sign-in, its own relaxed page policy."""
from __future__ import annotations

from werkzeug.wrappers import Request, Response

from tests.stack import app_config, serving
from webapp import create_app
from webapp.database import upgrade_schema


@Request.application
def fake_board(request: Request) -> Response:
    if request.path == "/visualdl/index":
        return Response("<title>VisualDL</title><script type=module>boot()</script>", mimetype="text/html")
    if request.path == "/visualdl/api/runs":
        return Response(f'["job-1"] {request.query_string.decode()}', mimetype="application/json")
    return Response("no such page", status=404)


def test_board_pages_and_data_pass_through(tmp_path):
    with serving(fake_board) as board:
        app = create_app(app_config(tmp_path, VISUALDL_URL=board))
        client = app.test_client()
        page = client.get("/visualdl/index")
        assert page.status_code == 200 and "<script type=module>boot()" in page.get_data(as_text=True)
        assert "'unsafe-inline'" in page.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        assert client.get("/visualdl/api/runs?a=1").get_data(as_text=True) == '["job-1"] a=1'
        assert client.get("/visualdl/missing").status_code == 404
        assert client.post("/visualdl/api/runs").status_code == 405
        # the studio's own pages keep the strict policy
        assert "unsafe-inline" not in client.get("/datasets").headers["Content-Security-Policy"]


def test_board_needs_sign_in_when_shared(tmp_path):
    with serving(fake_board) as board:
        app = create_app(app_config(tmp_path, VISUALDL_URL=board, AUTH="on"))
        upgrade_schema(app)
        answer = app.test_client().get("/visualdl/index")
        assert answer.status_code == 302 and "/setup" in answer.headers["Location"]


def test_board_down_is_a_clear_502(tmp_path):
    app = create_app(app_config(tmp_path, VISUALDL_URL="http://127.0.0.1:1"))
    answer = app.test_client().get("/visualdl/index")
    assert answer.status_code == 502 and "not answering" in answer.get_data(as_text=True)
    app.config["VISUALDL_URL"] = ""
    assert app.test_client().get("/visualdl/").status_code == 502
