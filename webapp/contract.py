"""The API's contract: each JSON operation's request and answer models, checked on every request.

A view declares its models with `operation(...)`; spectree validates the request against them (the
request is refused with the studio's own error shape, never pydantic's) and the answer against the
model of its status. webapp/api_docs.py publishes them as one OpenAPI 3.1 document.
"""
from __future__ import annotations

import functools

from flask import request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from spectree import Response, SpecTree

from engine.schema import Strict, models_in, not_an_object, refusal
from webapp.errors import ERROR_STATUS

VERSION = "1"
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

contract = SpecTree(
    "flask", mode="strict", path="_contract", page_templates={}, annotations=False,
    title="Image Studio API", version=VERSION, description=_DESCRIPTION, validation_error_status=400,
    validation_error_model=ApiError, naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda parent, child: child)
# the refusals of engine.schema.refusal, which any operation that reads a body or a query may answer
VALIDATION_CODES = frozenset({"invalid_body", "invalid_field", "missing_field", "unknown_option"})
_NAMED: dict[str, type] = {}  # component name -> model: two models must not share a name


def operation(*, body: type[BaseModel] | None = None, query: type[BaseModel] | None = None,
              form: type[BaseModel] | None = None, answers: dict[int, type[BaseModel] | None] | None = None,
              errors: tuple[str, ...] = (), tags: tuple[str, ...] = (), first=None, raw: tuple[str, ...] = (),
              text: str | None = None):
    """Declare a JSON operation: its body (`body`, a JSON object) or `form` (multipart, read by the view's
    own bounded parser, so only documented here), its `query`, its answers by status, and the error codes
    it may answer beyond the ones every operation may. `raw` names media types also taken as the whole body
    (an image sent as itself), read by the view's own parser like `form`. `first` checks who asks before what they sent (a
    token where a browser session is needed is refused as such, whatever its body). Refusals keep the
    studio's error shape. `text` names the media type of a 200 answer that is text, not JSON (documented
    only)."""
    statuses = dict(answers or {200: None})
    reads = body is not None or query is not None or form is not None
    codes = set(errors) | (VALIDATION_CODES if reads else set()) | ({"request_too_large"} if body or form else set())
    documented = Response(**{f"HTTP_{status}": model for status, model in statuses.items()},
                          **{f"HTTP_{status}": ApiError for status in {ERROR_STATUS[code] for code in codes}})

    def before(req, resp, error, instance, adapter=None) -> None:
        if first is not None:
            first()
        if body is not None and not isinstance(req.get_json(silent=True), dict):
            raise not_an_object()
        if isinstance(error, ValidationError):
            model = query if query is not None and error.title == query.__name__ else body
            raise refusal(model or Strict, error)

    for model in (body, query, form, *statuses.values()):
        _name_once(model)

    def decorate(view):
        view.contract = {"errors": codes, "form": form, "raw": raw, "text": text}
        if form is None:
            return contract.validate(json=body, query=query, resp=documented, tags=tags, before=before,
                                     after=_after)(view)
        # A streamed body is read by the view's own bounded parser, never by spectree (which would read the
        # whole form first): the request is only described, and the answer is checked here.
        return contract.validate(query=query, form=form, resp=documented, tags=tags,
                                 skip_validation=True)(_answer_checked(view, documented))
    return decorate


class AnswerMismatch(Exception):
    """An answer that its operation's model refuses: a bug of the studio, answered as a 500 and logged."""


def _after(req, resp, error, instance, adapter=None) -> None:
    if error is not None:
        raise AnswerMismatch(f"{req.method} {req.path} answered {resp.status_code} outside its model: {error}")


def _answer_checked(view, documented: Response):
    @functools.wraps(view)
    def checked(*args, **kwargs):
        response, error = contract.backend.validate_response(view(*args, **kwargs), documented, False, False)
        _after(request, response, error, None)
        return response
    return checked


def _name_once(model) -> None:
    """Components are named after their models: a second model of the same name would replace the first."""
    if model is None or _NAMED.get(model.__name__) is model:
        return
    known = _NAMED.setdefault(model.__name__, model)
    if known is not model:
        raise TypeError(f"two API models are named {model.__name__}: {known.__module__} and {model.__module__}")
    for field in getattr(model, "model_fields", {}).values():
        for nested in models_in(field.annotation):
            _name_once(nested)


def parsed_body():
    """The request's body as its operation's model."""
    return request.context.json


def parsed_query():
    """The request's query parameters as its operation's model."""
    return request.context.query
