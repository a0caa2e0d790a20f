"""The API's contract: each JSON operation's request and response models, checked on every request
and published as one OpenAPI 3.1 document at /api/openapi.json, with a reference page at /api/docs.

A view declares its models with `operation(...)`; spectree validates the request against them (the
request is refused with the studio's own error shape, never pydantic's) and the response against the
model of its status. The document adds what spectree does not know: the role each operation needs
(from the policy table), how a caller signs in, and which errors each operation can answer.
"""
from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, current_app, render_template, request, send_from_directory
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from spectree import Response, SpecTree

from engine.errors import StudioError
from engine.schema import Strict, refusal
from webapp.accounts import policy

VERSION = "1"
DOCUMENT = Path(__file__).resolve().parent.parent / "openapi.json"
_DESCRIPTION = (
    "The JSON API of Image Studio, a self-hosted image-classification studio: upload labelled image "
    "folders, train classifiers, keep every model as a version, release one, and classify images.\n\n"
    "Sign in with a bearer token (`Authorization: Bearer <token>`, made on the Account page), or with the "
    "browser's session cookie plus its `X-CSRF-Token` header for anything that is not a read. Each operation "
    "names the least role it needs in `x-required-role` (viewer < member < admin; none: public).\n\n"
    "Every refusal is `{\"error\": <message in the reader's language>, \"code\": <stable code>, "
    "\"field\": <the field at fault, when there is one>, ...}`. Lists come newest first, `limit` at a "
    "time (default 100, at most 500); pass the answer's `next_before` as `before` for the next page.")


class ApiError(BaseModel):
    """A refusal: a stable code for programs, a message for people, and the field at fault."""

    model_config = ConfigDict(extra="allow", title="Error")
    error: str = Field(description="What went wrong, in the request's language.")
    code: str = Field(description="A stable code, one per kind of error.")
    field: str | None = Field(None, description="The request field at fault, when there is one.")


class Answer(BaseModel):
    """An answer's model: exactly the fields listed, so a field the document does not name fails the check."""

    model_config = ConfigDict(extra="forbid")


class Query(BaseModel):
    """Query parameters: text in the URL, read as their types; unknown ones are ignored."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API token from the Account page."},
    "session": {"type": "apiKey", "in": "cookie", "name": "session", "description": "A signed-in browser session."},
    "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
             "description": "The page's security token, sent with the session cookie for anything that is not a read."},
}

contract = SpecTree(
    "flask", mode="strict", path="_contract", page_templates={}, annotations=False,
    title="Image Studio API", version=VERSION, description=_DESCRIPTION, validation_error_status=400,
    validation_error_model=ApiError, naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda parent, child: child)
_NAMED: dict[str, type] = {}  # component name -> model: two models must not share a name


def operation(*, body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
              form: type[BaseModel] | None = None, answers: dict[int, type[BaseModel] | None] | None = None,
              errors: tuple[str, ...] = (), tags: tuple[str, ...] = (), first=None, raw: tuple[str, ...] = ()):
    """Declare a JSON operation: its body (`body`, a JSON object) or `form` (multipart, read by the view's
    own bounded parser, so only documented here), its `query`, its answers by status, and the error codes
    it may answer beyond the ones every operation may. `raw` names media types also taken as the whole body
    (an image sent as itself), read by the view's own parser like `form`. `first` checks who asks before what they sent (a
    token where a browser session is needed is refused as such, whatever its body). Refusals keep the
    studio's error shape."""
    statuses = {status: model for status, model in (answers or {200: None}).items()}
    codes = set(errors)
    documented = Response(**{f"HTTP_{status}": model for status, model in statuses.items()},
                          **{f"HTTP_{status}": ApiError for status in _error_statuses(codes, body or form, query)})

    def before(req, resp, error, instance, adapter=None) -> None:
        if first is not None:
            first()
        if body is not None and not isinstance(req.get_json(silent=True), dict):
            raise StudioError("invalid_body", "Send a JSON object (Content-Type: application/json).", field="body")
        if isinstance(error, ValidationError):
            model = query if query is not None and error.title == query.__name__ else body
            raise refusal(model or Strict, error)

    for model in (body, query, form, *statuses.values()):
        _name_once(model)

    def decorate(view):
        view.contract = {"errors": codes, "form": form, "raw": raw, "reads": body is not None or query is not None
                         or form is not None}
        return contract.validate(json=body, query=query, form=form, resp=documented, tags=tags, before=before,
                                 skip_validation=form is not None)(view)
    return decorate


def _name_once(model) -> None:
    """Components are named after their models: a second model of the same name would replace the first."""
    if model is None:
        return
    for name, field in getattr(model, "model_fields", {}).items():
        for inner in (field.annotation, *getattr(field.annotation, "__args__", ())):
            for nested in (inner, *getattr(inner, "__args__", ())):
                if isinstance(nested, type) and issubclass(nested, BaseModel):
                    _name_once(nested)
    known = _NAMED.setdefault(model.__name__, model)
    if known is not model:
        raise TypeError(f"two API models are named {model.__name__}: {known.__module__} and {model.__module__}")


def parsed_body():
    """The request's body as its operation's model."""
    return request.context.json


def parsed_query():
    """The request's query parameters as its operation's model."""
    return request.context.query


def _error_statuses(codes: set[str], body, query) -> set[int]:
    from webapp.errors import ERROR_STATUS

    statuses = {ERROR_STATUS[code] for code in codes}
    if body is not None or query is not None:
        statuses.add(400)
    if body is not None:
        statuses.add(413)
    return statuses


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
    from webapp.errors import ERROR_STATUS

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
    refusals = dict.fromkeys(sorted(view.contract["errors"] | _general_codes(rule, role, method,
                                                                             view.contract["reads"])))
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
    for parameter in entry.get("parameters", []):
        if parameter["in"] == "query" and not parameter.get("required"):
            parameter["allowEmptyValue"] = True  # `?limit=` is read as left out, as a form's empty field sends it


def _general_codes(rule, role: str | None, method: str, reads: bool) -> set[str]:
    """The errors any operation like this one may answer, whatever its view does."""
    codes = {"untrusted_host", "too_many_requests"}
    if reads:  # the refusals of engine.schema.refusal
        codes |= {"invalid_body", "invalid_field", "missing_field", "unknown_option"}
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


docs = Blueprint("contract", __name__)


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
    from webapp.contract import write_document as write

    write()
