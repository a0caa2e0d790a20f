"""A stand-in Chinese catalog that marks every message it translates, so tests of translated texts do not
depend on how far the real translation has come: a marked text went through the catalog under its English
template. A module uses it by importing `marked_chinese` (an autouse fixture)."""
from __future__ import annotations

import flask_babel
import pytest
from babel.support import NullTranslations

MARK = "译:"
ZH = {"Accept-Language": "zh-CN"}
EN = {"Accept-Language": "en"}


class MarkedCatalog(NullTranslations):
    """Every message "translated" as MARK + its English template."""

    def ugettext(self, message):
        return MARK + message

    gettext = ugettext

    def ungettext(self, singular, plural, n):
        return MARK + (singular if n == 1 else plural)

    ngettext = ungettext


@pytest.fixture(autouse=True)
def marked_chinese(monkeypatch):
    original = flask_babel.Domain.get_translations

    def get_translations(self):
        return MarkedCatalog() if str(flask_babel.get_locale()).startswith("zh") else original(self)

    monkeypatch.setattr(flask_babel.Domain, "get_translations", get_translations)
