"""The API's document and reference page: every operation declared with webapp.contract, as one OpenAPI
3.1 document at /api/openapi.json (committed as openapi.json, which `make openapi` writes), with what the
models do not say: the role each operation needs (the policy table), how a caller signs in, and which errors
it can answer. /api/docs shows it with Swagger UI, served by the studio from an installed package.
"""
from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, current_app, render_template, send_from_directory

from webapp.accounts import policy
from webapp.contract import contract
from webapp.errors import ERROR_STATUS

DOCUMENT = Path(__file__).resolve().parent.parent / "openapi.json"

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API token from the Account page."},
    "session": {"type": "apiKey", "in": "cookie", "name": "session", "description": "A signed-in browser session."},
    "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
             "description": "The page's security token, sent with the session cookie for anything that is not a read."},
}


def document(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of `app`'s JSON operations, built from their models and the policy table."""
    models = copy.deepcopy(contract.models)  # spectree lifts nested models out of them as it writes
    try:
        with app.app_context():
            spec = contract._generate_spec()
    finally:
        contract.models = models
    with app.app_context():
        for rule in app.url_map.iter_rules():
            view = app.view_functions[rule.endpoint]
            if contract.get_function_metadata(view) is None:
                continue
            path, _ = contract.backend.parse_path(rule, None)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                entry = spec["paths"].get(path, {}).get(method.lower())
                if entry is not None:
                    _describe(entry, rule, method, view)
    spec["components"]["securitySchemes"] = {
        **SECURITY_SCHEMES, "session": {**SECURITY_SCHEMES["session"], "name": app.config["SESSION_COOKIE_NAME"]}}
    spec["servers"] = [{"url": "/", "description": "This studio."}]
    spec["security"] = []
    spec["paths"] = dict(sorted(spec["paths"].items()))
    spec["components"]["schemas"] = dict(sorted(spec["components"]["schemas"].items()))
    return spec


def _describe(entry: dict, rule, method: str, view) -> None:
    role = policy.required_role(rule.endpoint, method)
    entry["operationId"] = rule.endpoint.replace("_api.", "_").replace(".", "_")
    entry["x-required-role"] = role
    entry["summary"] = entry["summary"].split(" <")[0] if "<" in entry["summary"] else entry["summary"]
    if role is None:
        entry["security"] = [{}]
    elif method in policy.SAFE_METHODS:
        entry["security"] = [{"bearer": []}, {"session": []}]
    else:
        entry["security"] = [{"bearer": []}, {"session": [], "csrf": []}]
    responses = entry["responses"]
    refusals = dict.fromkeys(sorted(view.contract["errors"] | _general_codes(rule, role, method)))
    for status in sorted({ERROR_STATUS[code] for code in refusals}):
        listed = ", ".join(f"`{code}`" for code in refusals if ERROR_STATUS[code] == status)
        responses[str(status)] = {"description": f"Refused: {listed}.",
                                  "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}}}
    for status, answer in responses.items():
        if answer.get("description") in ("", None) or answer["description"].startswith("HTTP "):
            answer["description"] = "Done." if status.startswith("2") else "Refused."
    entry["responses"] = dict(sorted(responses.items()))
    needs = f"Needs the role **{role}** or above." if role else "Open to anyone."
    entry["description"] = f"{entry['description']}\n\n{needs}" if entry.get("description") else needs
    if view.contract["form"] is not None and "requestBody" in entry:
        entry["requestBody"]["required"] = True
        for media in view.contract["raw"]:
            entry["requestBody"]["content"][media] = {"schema": {"type": "string", "format": "binary"}}
    if view.contract.get("text"):
        responses["200"]["content"] = {view.contract["text"]: {"schema": {"type": "string"}}}
    for parameter in entry.get("parameters", []):
        if parameter["in"] == "query" and not parameter.get("required"):
            parameter["allowEmptyValue"] = True  # `?limit=` is read as left out, as a form's empty field sends it


def _general_codes(rule, role: str | None, method: str) -> set[str]:
    """The errors any operation like this one may answer, whatever its view does."""
    codes = {"untrusted_host", "too_many_requests"}
    if role is not None:
        codes |= {"unauthorized", "invalid_token", "token_expired", "forbidden"}
    if method not in policy.SAFE_METHODS:
        codes |= {"cross_site_request", "csrf_token_invalid", "request_too_large"}
    if rule.arguments:
        codes |= {"not_found"}
    return codes


def document_json(app: Flask) -> str:
    """The document as the committed openapi.json holds it: sorted, indented, ending with a newline."""
    return json.dumps(document(app), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


docs = Blueprint("api_docs", __name__)


@docs.get("/api/openapi.json")
def openapi():
    """The OpenAPI 3.1 document of this studio's JSON API."""
    spec = current_app.extensions.get("openapi")
    if spec is None:
        spec = current_app.extensions["openapi"] = document(current_app._get_current_object())
    return current_app.json.response(spec)


@docs.get("/api/docs")
def reference():
    """The API's reference page: Swagger UI served by the studio, with its start script as a static file."""
    return render_template("api/docs.html")


@docs.get("/api/docs/assets/<path:name>")
def asset(name: str):
    """Swagger UI's files, from the installed flask-swagger-ui package's copy (never a CDN)."""
    return send_from_directory(_SWAGGER_UI, name, max_age=3600)


# found without importing the package: its module makes a blueprint the studio does not use
_SWAGGER_UI = Path(importlib.util.find_spec("flask_swagger_ui").origin).parent / "dist"


def write_document(path: Path = DOCUMENT) -> None:
    """Write the document of an app made with the default settings to `path` (the committed openapi.json)."""
    import tempfile

    from webapp import create_app

    with tempfile.TemporaryDirectory() as folder:
        path.write_text(document_json(create_app({"DATA_DIR": folder, "TESTING": True})), encoding="utf-8")


if __name__ == "__main__":  # `make openapi`; the models are registered on the imported module, not on __main__
    from webapp.api_docs import write_document as write

    write()
