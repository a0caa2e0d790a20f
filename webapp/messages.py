"""Texts for people in the request's language: engine Messages, StudioErrors, and the texts stored in the
database (a dataset's warnings, rejected files' reasons and error; a job's or an evaluation's error; the
reasons of a job's suggested options).

Every stored text has one form, written by `stored` and read by `rendered`: a template with its
parameters, {"template", "params"} (as `engine.messages.stored` writes it), shown in the reader's language;
or words that are no template (an unexpected exception's), {"text"}, shown as they are.
"""
from __future__ import annotations

from flask_babel import gettext

from engine.errors import StudioError
from engine.messages import Message
from engine.messages import stored as template_form


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
        return rendered(value)
    return value


def stored(value) -> dict | None:
    """The form to keep of a text for people: a Message's or a StudioError's template and parameters, or
    any other words (an unexpected exception's) as they are; None stays None."""
    if value is None:
        return None
    if isinstance(value, Message):
        return value.stored()
    if isinstance(value, StudioError):
        return template_form(value.template, value.params)
    return {"text": str(value)}


def rendered(form: dict | None) -> str | None:
    """A stored text (the form `stored` keeps) in the request's language: its template translated and
    filled, or its words as they are."""
    if form is None:
        return None
    if _is_stored(form):
        return translate(form["template"], form.get("params"))
    return form.get("text")


def english(form: dict | None) -> str | None:
    """A stored text in English, whatever the request's language: for logs, events and scripts."""
    if form is None:
        return None
    if _is_stored(form):
        return _english(form["template"], form.get("params"))
    return form.get("text")


def meta_form(words: str | None, template: str | None, params: dict | None) -> dict | None:
    """The stored form of a text a bundle's meta keeps flattened (the engine writes its English `words`
    beside their template and parameters there), for `rendered`."""
    if words is None:
        return None
    return {"template": template, "params": params or {}} if isinstance(template, str) else {"text": words}


def rejected_json(items: list | None) -> list[dict]:
    """Rejected files as the API shows them, {"path", "reason"}, each reason in the request's language."""
    return [{"path": item.get("path"), "reason": rendered(item.get("reason"))}
            for item in items or [] if isinstance(item, dict)]
