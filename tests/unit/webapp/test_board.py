"""The VisualDL board read through the studio: GET only, behind sign-in, its own relaxed page policy."""
from __future__ import annotations

from werkzeug.wrappers import Request, Response

from tests.stack import app_config, serving
from webapp import create_app
from webapp.database import upgrade_schema


REACHED: list[tuple[str, str]] = []  # (method, path) of every request that reached the board


@Request.application
def fake_board(request: Request) -> Response:
    REACHED.append((request.method, request.path))
    if request.path == "/visualdl/api/fastdeploy/delete_resource_for_model":
        return Response("deleted", mimetype="text/plain")
    if request.path == "/visualdl/":
        return Response("", status=302, headers={"Location": "/visualdl/index?lang=zh"})
    if request.path == "/visualdl/_dist_/moved.js":
        return Response("", status=302, headers={"Location": "/visualdl/api/fastdeploy/get_directory?dir=/"})
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


def test_board_model_management_and_writes_never_reach_the_board(tmp_path):
    """VisualDL's own code carries APIs that delete and rename files: only the scalar board's read-only
    routes and assets are forwarded, with GET or HEAD; the studio refuses everything else itself."""
    with serving(fake_board) as board:
        client = create_app(app_config(tmp_path, VISUALDL_URL=board)).test_client()
        REACHED.clear()
        refused = {
            "/visualdl/api/fastdeploy/delete_resource_for_model?dir=/&name=x&version=1&resource_filename=a": 404,
            "/visualdl/api/fastdeploy/fastdeploy_client": 404,
            "/visualdl/api/inference/paddle2onnx/convert": 404,
            "/visualdl/api/profiler/runs": 404,
            "/visualdl/api/graph/upload": 404,
            "/visualdl/api/runs/../fastdeploy/get_directory": 404,
            "/visualdl/_dist_/../api/fastdeploy/get_directory": 404,
            "/visualdl/fastdeploy_server": 404,
            "/visualdl/static/trace_viewer_full.html": 404,
        }
        for path, status in refused.items():
            answer = client.get(path)
            assert answer.status_code == status, path
            text = answer.get_data(as_text=True)
            assert "Not found." in text and "deleted" not in text, path
        for method in ("post", "put", "delete", "patch"):
            answer = getattr(client, method)("/visualdl/api/runs")
            assert answer.status_code == 405 and "does not take a" in answer.get_data(as_text=True), method
        assert client.post("/visualdl/api/fastdeploy/delete_resource_for_model").status_code in (404, 405)
        assert REACHED == []
        # what the scalar board needs still passes, GET and HEAD
        assert client.get("/visualdl/api/runs").status_code == 200
        assert client.head("/visualdl/index").status_code == 200
        for path in ("/visualdl/api/components", "/visualdl/api/component_tabs", "/visualdl/api/tags",
                     "/visualdl/api/logs", "/visualdl/api/scalar/tags", "/visualdl/api/scalar/list?run=job-1&tag=a",
                     "/visualdl/api/scalar/data?run=job-1&tag=a&type=csv", "/visualdl/scalar",
                     "/visualdl/__snowpack__/pkg/@tippyjs/react.js", "/visualdl/_dist_/App.js",
                     "/visualdl/locales/zh/common.json", "/visualdl/imported-styles.css", "/visualdl/favicon.ico",
                     "/visualdl/images/logo-visualdl.svg"):
            client.get(path)
        assert [path for _, path in REACHED] == [
            "/visualdl/api/runs", "/visualdl/index", "/visualdl/api/components", "/visualdl/api/component_tabs",
            "/visualdl/api/tags", "/visualdl/api/logs", "/visualdl/api/scalar/tags", "/visualdl/api/scalar/list",
            "/visualdl/api/scalar/data", "/visualdl/scalar", "/visualdl/__snowpack__/pkg/@tippyjs/react.js",
            "/visualdl/_dist_/App.js", "/visualdl/locales/zh/common.json", "/visualdl/imported-styles.css",
            "/visualdl/favicon.ico", "/visualdl/images/logo-visualdl.svg"]
        assert {method for method, _ in REACHED} == {"GET"}


def test_board_redirects_are_passed_on_only_within_the_allow_list(tmp_path):
    with serving(fake_board) as board:
        client = create_app(app_config(tmp_path, VISUALDL_URL=board)).test_client()
        REACHED.clear()
        home = client.get("/visualdl/")
        assert home.status_code == 302 and home.headers["Location"] == "/visualdl/index?lang=zh"
        moved = client.get("/visualdl/_dist_/moved.js")
        assert moved.status_code == 302 and "Location" not in moved.headers
        assert [path for _, path in REACHED] == ["/visualdl/", "/visualdl/_dist_/moved.js"]
