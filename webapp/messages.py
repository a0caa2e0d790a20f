"""Texts for people in the request's language: engine Messages, StudioErrors, and the templates kept beside
English texts stored in the database (a dataset's warnings, rejected files and error; a job's or an
evaluation's error; the reasons of a job's suggested options).

Stored rows keep the English text as before; the template and parameters go beside it, in the form
`engine.messages.stored` writes: {"template", "params"}. Rows written before have no template and show their
stored text.
"""
from __future__ import annotations

from flask_babel import gettext

from engine.errors import StudioError
from engine.messages import Message, message_of


def translate(template: str, params: dict | None = None, english: str | None = None) -> str:
    """`template` in the request's language, filled from `params` (a parameter that is itself a message is
    translated too). A translation whose placeholders do not match, or no request to take a language from,
    gives the English text."""
    if not template:  # the catalog's empty id is its header
        return english if english is not None else template
    values = {name: _translated(value) for name, value in (params or {}).items()}
    try:
        return gettext(template, **values) if values else gettext(template)
    except (KeyError, ValueError, TypeError, RuntimeError):
        return english if english is not None else _english(template, params)


def _translated(value):
    if isinstance(value, (Message, StudioError)) or _is_stored(value):
        return text(value)
    return value


def _is_stored(value) -> bool:
    return isinstance(value, dict) and isinstance(value.get("template"), str)


def _english(template: str, params: dict | None) -> str:
    """The English text of a template and its parameters (stored forms among them filled in English too)."""
    values = {name: _english(value["template"], value.get("params")) if _is_stored(value) else value
              for name, value in (params or {}).items()}
    try:
        return template % values if values else template
    except (KeyError, ValueError, TypeError):
        return template


def text(value) -> str | None:
    """A text for a person in the request's language: a Message or a StudioError translated, a stored
    {"template", "params"} form translated, any other text as it is."""
    if isinstance(value, Message):
        return translate(value.template, value.params, str(value))
    if isinstance(value, StudioError):
        return translate(value.template, value.params, value.message)
    if _is_stored(value):
        return translate(value["template"], value.get("params"))
    return value


def stored_text(english: str | None, form: dict | None) -> str | None:
    """A stored English text in the request's language, from the template kept beside it when there is one."""
    if english is None or not _is_stored(form):
        return english
    return translate(form["template"], form.get("params"), english)


def to_store(value) -> tuple[str | None, dict | None]:
    """(the English text, its {"template", "params"} form) to keep for a Message or a StudioError; a plain
    text (an unexpected exception's words) is kept as it is, without a form."""
    if isinstance(value, (Message, StudioError)):
        message = message_of(value)
        return str(message), message.stored()
    return (None if value is None else str(value)), None


def rejected_json(items: list | None) -> list[dict]:
    """Rejected files as the API shows them, {"path", "reason"}, each reason in the request's language."""
    return [{"path": item.get("path"), "reason": stored_text(item.get("reason"), {
        "template": item.get("reason_template"), "params": item.get("reason_params")})}
            for item in items or [] if isinstance(item, dict)]
