"""Texts for people that the engine words in English and the web app shows in the reader's language.

The engine cannot import Flask-Babel. A `Message` is the English text itself (a str, so it compares, joins,
logs and serialises as before) that also remembers its template and named parameters; the web app
translates the template (the catalog's message id) and fills in the parameters. Every template is a
literal marked with `N_`, which the catalog extraction looks for.
"""
from __future__ import annotations

from engine.errors import StudioError


def N_(text: str) -> str:  # noqa: N802 (the name the extraction looks for)
    """Mark a literal template for the catalog; the text is returned unchanged."""
    return text


class Message(str):
    """English text made from `template` (with `%(name)s` placeholders) and `params`."""

    template: str
    params: dict

    def __new__(cls, template: str, params: dict | None = None) -> "Message":
        params = dict(params or {})
        self = super().__new__(cls, template % params if params else template)
        self.template, self.params = template, params
        return self

    def __reduce__(self):
        return Message, (self.template, self.params)

    def stored(self) -> dict:
        """The JSON form kept beside the English text: {"template", "params"}."""
        return stored(self.template, self.params)


def stored(template: str, params: dict | None = None) -> dict:
    """{"template", "params"} with JSON values only: a parameter that is itself a message (a Message or a
    StudioError) is kept in this form too, anything else that JSON does not hold as its text."""
    return {"template": template, "params": {name: _stored_value(value) for name, value in (params or {}).items()}}


def _stored_value(value):
    if isinstance(value, Message):
        return value.stored()
    if isinstance(value, StudioError):
        return stored(value.template, value.params)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)
