"""The studio in Chinese and English: which language a request gets, the message catalogs, and the
part of the catalog the pages' scripts use.

One catalog per language (`translations/<locale>/LC_MESSAGES/messages.po`) holds every message of the
templates, the Python code (error templates included) and the scripts; `.mo` files are compiled from it
when the app starts. Scripts read their messages from a JSON block the page carries.
"""
from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
import click
from flask import Blueprint, Flask, current_app, g, redirect, request
from flask.cli import AppGroup
from flask_babel import Babel, force_locale, get_locale, lazy_gettext
from flask_login import current_user

from webapp.extensions import db

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "translations"
COMPILED = TRANSLATIONS / ".compiled"  # built from the .po files when the app starts; not kept in git
LANGUAGES = {"en": "English", "zh_CN": "中文"}
DEFAULT = "en"
COOKIE = "studio_lang"
# What the extraction looks for (babel.cfg names the files): gettext calls, the pages' t(), and the
# message templates of the studio's errors.
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None, "t": None, "N_": None,
            "StudioError": (2,), "ImageRejected": (2,), "BundleRejected": (1,),
            "PretrainedWeightsMissing": (1,), "Says": (1,)}
SCRIPTS = "static/js/"
ROLE_LABELS = {"viewer": lazy_gettext("viewer"), "member": lazy_gettext("member"), "admin": lazy_gettext("admin")}

bp = Blueprint("i18n", __name__)
_compile_lock = threading.Lock()


def language_of(tag: str | None) -> str | None:
    """The studio language for a language tag: every Chinese tag (zh, zh-CN, zh-Hans, zh-Hans-CN, zh-TW,
    zh_CN.UTF-8 ...) is Chinese, every English one English, anything else None."""
    tag = (tag or "").strip().lower().replace("_", "-")
    if tag == "zh" or tag.startswith("zh-"):
        return "zh_CN"
    if tag == "en" or tag.startswith("en-"):
        return "en"
    return None


def server_language() -> str:
    """The server's LANG (e.g. zh_CN.UTF-8), the language when the browser names none the studio has."""
    return language_of(os.environ.get("LANG", "").split(".")[0]) or DEFAULT


def pick_language() -> str:
    """The request's language: the header's switch (a cookie, and the signed-in person's choice), else the
    browser's languages in order of preference, else the server's LANG."""
    chosen = request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return chosen
    if current_user and current_user.is_authenticated and current_user.language in LANGUAGES:
        return current_user.language
    for tag, _quality in request.accept_languages:
        language = language_of(tag)
        if language:
            return language
    return current_app.config["DEFAULT_LANGUAGE"]





def compile_catalogs(folder: Path = TRANSLATIONS, compiled: Path = COMPILED) -> None:
    """Compile each language's .po into a .mo when the .mo is missing or older. The .mo goes under the
    name Babel gives the language (zh_CN is zh_Hans_CN to it), where Flask-Babel looks for it."""
    with _compile_lock:
        for po in folder.glob("*/LC_MESSAGES/messages.po"):
            mo = compiled / str(Locale.parse(po.parent.parent.name)) / "LC_MESSAGES" / "messages.mo"
            if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
                continue
            mo.parent.mkdir(parents=True, exist_ok=True)
            with po.open("rb") as source:
                catalog = read_po(source)
            partial = mo.with_name(f"messages.mo.{os.getpid()}.part")
            with partial.open("wb") as target:
                write_mo(target, catalog)
            os.replace(partial, mo)


def script_messages(locale: str, folder: Path = TRANSLATIONS) -> dict[str, str]:
    """The translated messages that the pages' scripts use, for one language (English: none needed)."""
    po = folder / locale / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return {}
    with po.open("rb") as source:
        catalog = read_po(source)
    return {message.id: message.string for message in catalog
            if message.id and message.string and not message.fuzzy and isinstance(message.id, str)
            and any(path.startswith(SCRIPTS) for path, _line in message.locations)}


def current_language() -> str:
    """The request's studio language ("en" or "zh_CN"; Babel itself names Chinese zh_Hans_CN)."""
    return language_of(str(get_locale())) or DEFAULT


def page_catalog() -> dict:
    """What a page's scripts need: the language and its messages (read once per language per process)."""
    language = current_language()
    cache = current_app.extensions.setdefault("script_messages", {})
    if language not in cache:
        cache[language] = script_messages(language)
    return {"locale": language.replace("_", "-"), "messages": cache[language]}


@bp.post("/language")
def choose_language():
    """The header's language switch: remembered in a cookie and, when signed in, on the account."""
    language = request.form.get("language")
    if language not in LANGUAGES:
        language = DEFAULT
    back = request.form.get("next") or "/"
    if not back.startswith("/") or back.startswith("//"):
        back = "/"
    if current_user.is_authenticated and not g.get("auth_via") == "token":
        current_user.language = language
        db.session.commit()
    response = redirect(back)
    response.set_cookie(COOKIE, language, max_age=365 * 24 * 3600, samesite="Lax", httponly=True,
                        secure=request.is_secure)
    return response


translations_cli = AppGroup("translations", help="Keep the message catalogs in step with the code.")


@translations_cli.command("update")
def update_command() -> None:
    """Extract every message (babel.cfg) into translations/messages.pot and merge it into each language's
    catalog; then translate the empty entries and run the tests (a test fails while any is missing)."""
    for language, missing in update_catalogs().items():
        click.echo(f"{language}: {missing} messages without a translation")


def init_app(app: Flask) -> None:
    app.config.setdefault("DEFAULT_LANGUAGE", server_language())
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(COMPILED)
    compile_catalogs()
    Babel(app, locale_selector=pick_language)
    app.register_blueprint(bp)
    app.cli.add_command(translations_cli)
    app.context_processor(lambda: {"languages": LANGUAGES, "page_catalog": page_catalog,
                                   "current_language": current_language,
                                   "role_label": lambda role: str(ROLE_LABELS.get(role, role))})


def extract_catalog():
    """Every message of the code, templates and scripts, as babel.cfg and KEYWORDS find them."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg

    with (ROOT / "babel.cfg").open() as mapping:
        method_map, options_map = parse_mapping_cfg(mapping)
    skipped = {".venv", ".git", "node_modules", "tests", "instance", "benchmarks", "translations", "__pycache__"}
    catalog = Catalog(project="Image Studio", charset="utf-8")
    for path, line, message, comments, context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=KEYWORDS, comment_tags=("Translators:",),
            strip_comment_tags=True, directory_filter=lambda name: Path(name).name not in skipped):
        catalog.add(message, None, [(path, line)], auto_comments=comments, context=context)
    return catalog


def update_catalogs(folder: Path = TRANSLATIONS) -> dict[str, int]:
    """Write the template catalog and merge it into every language's catalog; how many messages each
    language still lacks a translation for."""
    from babel.messages.pofile import write_po

    template = extract_catalog()
    folder.mkdir(exist_ok=True)
    with (folder / "messages.pot").open("wb") as target:
        write_po(target, template, width=120, sort_by_file=True)
    missing = {}
    for language in LANGUAGES:
        po = folder / language / "LC_MESSAGES" / "messages.po"
        po.parent.mkdir(parents=True, exist_ok=True)
        if po.exists():
            with po.open("rb") as source:
                catalog = read_po(source, locale=language)
        else:
            from babel.messages.catalog import Catalog
            catalog = Catalog(locale=language, project="Image Studio", charset="utf-8")
        catalog.update(template, no_fuzzy_matching=True)
        with po.open("wb") as target:
            write_po(target, catalog, width=120, sort_by_file=True, ignore_obsolete=True)
        missing[language] = sum(1 for message in catalog if message.id and not message.string)
    return missing


class ServerLanguageGroup(AppGroup):
    """A group of commands run in the server's language (DEFAULT_LANGUAGE): a shell command has no
    browser to ask."""

    def command(self, *args, **kwargs):
        wrap = super().command(*args, **kwargs)

        def decorator(function):
            @functools.wraps(function)
            def in_server_language(*call_args, **call_kwargs):
                with force_locale(current_app.config["DEFAULT_LANGUAGE"]):
                    return function(*call_args, **call_kwargs)

            return wrap(in_server_language)

        return decorator
