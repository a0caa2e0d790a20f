"""Every error answer carries a listed code; every id route answers 404 for ids that name nothing."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from webapp.errors import ERROR_STATUS, HTTP_CODES

@pytest.fixture
def app(app_on_each_database):
    """Every test here runs on SQLite and on PostgreSQL."""
    return app_on_each_database


ROOT = Path(__file__).resolve().parents[3]


def codes_in_source() -> set[str]:
    """Codes written in the source: first argument or `code=` of *Error/*Rejected calls, and the codes
    that get_or_404 derives from its label."""
    codes = set()
    for path in [*(ROOT / "engine").rglob("*.py"), *(ROOT / "webapp").rglob("*.py"), *(ROOT / "worker").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            values = [kw.value for kw in node.keywords if kw.arg == "code"]
            if name in ("StudioError", "ImageRejected") and node.args:
                values.append(node.args[0])
            if name == "get_or_404" and len(node.args) >= 3 and isinstance(node.args[2], ast.Constant):
                codes.add(node.args[2].value.lower().replace(" ", "_") + "_not_found")
            codes.update(v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    return codes


def test_every_code_in_the_source_is_listed_and_every_listed_code_is_used():
    used = codes_in_source()
    assert used - set(ERROR_STATUS) == set()
    derived = set(HTTP_CODES.values()) | {"internal_error", "invalid_option", "model_bundle_rejected",
                                          "pretrained_weights_missing", "untrusted_host"}
    assert set(ERROR_STATUS) - used - derived == set()
    assert all(400 <= status < 600 for status in ERROR_STATUS.values())


ODD_IDS = ["0", "999", str(2**31), str(2**63), str(10**40), "-1", "abc", "1.5", "%E4%B8%80"]
ID_ROUTES = [("GET", "/api/datasets/{}"), ("DELETE", "/api/datasets/{}"), ("GET", "/api/jobs/{}"),
             ("POST", "/api/jobs/{}/cancel"), ("GET", "/api/jobs/{}/events"), ("GET", "/api/models/{}"),
             ("GET", "/api/models/{}/download"), ("DELETE", "/api/models/{}"), ("GET", "/datasets/{}"),
             ("GET", "/jobs/{}"), ("GET", "/datasets/{}/thumbs/1.jpg"), ("GET", "/datasets/1/thumbs/{}.jpg")]


@pytest.mark.parametrize("method, route", ID_ROUTES)
def test_ids_that_name_nothing_are_404(client, method, route):
    for ident in ODD_IDS:
        response = client.open(route.format(ident), method=method)
        assert response.status_code == 404, (route, ident, response.get_data(as_text=True)[:200])
        if route.startswith("/api/"):
            assert response.get_json()["code"].endswith("not_found"), (route, ident)
        else:
            assert "text/html" in response.content_type


def test_unexpected_errors_are_json_500_with_a_code_on_the_api(app, client):
    @app.get("/api/boom")
    def boom():
        raise RuntimeError("secret detail")

    response = client.get("/api/boom")
    assert response.status_code == 500
    assert response.get_json() == {"error": "Something went wrong on the server; the details are in its log.",
                                   "code": "internal_error"}
