"""The API's contract: one OpenAPI 3.1 document, served at /api/openapi.json and committed as openapi.json,
that names every JSON route of the app with its models, roles and errors; its reference page; and the one
error shape every refusal of a body or a query has."""
from __future__ import annotations

import json
import re

import pytest
from openapi_spec_validator import validate

from webapp.api_docs import DOCUMENT, document_json

# Routes that answer something other than JSON: pages, files, a stream, and the document itself.
NOT_JSON = {
    "api_docs.openapi": "the document itself",
    "api_docs.reference": "the reference page (HTML)",
    "api_docs.asset": "the reference page's files",
    "jobs_api.stream": "server-sent events (text/event-stream)",
    "registry_api.download": "a zip of the model bundle",
    "datasets_api.download_revision": "a zip of a dataset revision in the upload layout",
    "feedback_api.image": "an image",
    "review_api.image": "a review item's image",
    "batch_api.results_csv": "a batch run's results as CSV",
    "batch_api.results_jsonl": "a batch run's results as JSON Lines",
    "metrics.metrics": "Prometheus's text format",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from tests.stack import app_config
    from webapp import create_app

    app = create_app(app_config(tmp_path_factory.mktemp("contract")))
    return app, app.test_client().get("/api/openapi.json")


def test_the_served_document_is_valid_openapi_3_1(served):
    _, response = served
    assert response.status_code == 200 and response.mimetype == "application/json"
    spec = response.get_json()
    assert spec["openapi"].startswith("3.1")
    validate(spec)


def test_every_json_route_of_the_url_map_is_in_the_document(served):
    app, response = served
    paths = response.get_json()["paths"]
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.endpoint in NOT_JSON:
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method.lower() not in paths.get(path, {}):
                missing.append(f"{method} {path} ({rule.endpoint})")
    assert missing == [], "declare these with webapp.contract.operation"
    assert set(NOT_JSON) <= {rule.endpoint for rule in app.url_map.iter_rules()}, "a listed route is gone"


def test_every_operation_names_its_role_sign_in_and_refusals(served):
    from webapp.accounts import policy

    spec = served[1].get_json()
    for path, methods in spec["paths"].items():
        for method, entry in methods.items():
            where = f"{method.upper()} {path}"
            assert entry["x-required-role"] in (*policy.ROLES, None), where
            assert entry["security"], where
            refusals = [status for status in entry["responses"] if status.startswith("4")]
            assert refusals, where
            for status in refusals:
                answer = entry["responses"][status]
                assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ApiError"}, where
                assert re.fullmatch(r"Refused: (`[a-z_]+`(, )?)+\.", answer["description"]), where
            if entry["x-required-role"] is not None:
                assert "401" in entry["responses"] and "403" in entry["responses"], where
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "session", "csrf"}
    token_list = spec["paths"]["/api/tokens"]["get"]
    assert {p["name"] for p in token_list["parameters"]} >= {"limit", "before"}


def test_the_committed_document_is_the_served_one(served):
    """Every change to the API is a reviewed diff of openapi.json: `make openapi` writes it."""
    app, response = served
    assert DOCUMENT.exists(), "run `make openapi` and commit openapi.json"
    committed = json.loads(DOCUMENT.read_text(encoding="utf-8"))
    assert committed == response.get_json(), "the API changed: run `make openapi` and commit openapi.json"
    assert DOCUMENT.read_text(encoding="utf-8") == document_json(app)


def test_the_reference_page_uses_the_studios_own_copy_of_swagger_ui(served):
    app, _ = served
    client = app.test_client()
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "cdn" not in html.lower() and "<script>" not in html and "style=" not in html
    for asset in re.findall(r'(?:src|href)="(/api/docs/assets/[^"]+)"', html):
        answer = client.get(asset)
        assert answer.status_code == 200 and len(answer.data) > 10_000, asset
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert client.get("/api/docs/assets/../../webapp/contract.py").status_code == 404


@pytest.mark.parametrize("body, field, code, words", [
    ({"name": "ci", "expires_in_days": "30"}, "expires_in_days", "invalid_field", "whole number of days"),
    ({"name": "ci", "expires_in_days": True}, "expires_in_days", "invalid_field", "whole number of days"),
    ({"name": "ci", "expires_in_days": 10**30}, "expires_in_days", "invalid_field", "whole number of days"),
    ({"name": "ci", "colour": "red"}, "colour", "unknown_option", "Unknown field 'colour'"),
    ({"name": None}, "name", "missing_field", "Name the token"),
    ({"name": 5}, "name", "missing_field", "Name the token"),
    ({}, "name", "missing_field", "Name the token"),
    ([], "body", "invalid_body", "JSON object"),
    ("ci", "body", "invalid_body", "JSON object"),
])
def test_a_refused_body_names_its_field_in_the_one_error_shape(signed_in_browser, body, field, code, words):
    client, headers = signed_in_browser
    answer = client.post("/api/tokens", json=body, headers=headers)
    assert answer.status_code == 400
    assert answer.get_json()["field"] == field and answer.get_json()["code"] == code
    assert words in answer.get_json()["error"]


def test_a_refusal_is_in_the_readers_language(signed_in_browser):
    client, headers = signed_in_browser
    answer = client.post("/api/tokens", json={"name": "ci", "colour": 1}, headers={**headers, "Accept-Language": "zh"})
    assert answer.get_json()["code"] == "unknown_option" and re.search(r"[\u4e00-\u9fff]", answer.get_json()["error"])


@pytest.fixture
def signed_in_browser(tmp_path, redis_url_empty):
    from tests.stack import app_config
    from tests.unit.webapp.accounts.test_access import PASSWORD, sign_in
    from webapp import create_app
    from webapp.accounts import services
    from webapp.database import upgrade_schema

    app = create_app(app_config(tmp_path, AUTH="on", REDIS_URL=redis_url_empty))
    with app.app_context():
        upgrade_schema(app)
        services.create_user("ann", PASSWORD, "member")
    client = app.test_client()
    assert sign_in(client, "ann").status_code == 302
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/account").get_data(as_text=True))
    return client, {"X-CSRF-Token": token.group(1)}
