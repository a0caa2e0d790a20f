"""中文 and English: the language a request gets, the switch, the catalogs, and translated errors."""
from __future__ import annotations

import json
import re

import pytest
from babel.messages.pofile import read_po

from tests.factories import app_with_user, form_token
from tests.stack import app_config
from webapp import create_app
from webapp.i18n import TRANSLATIONS, extract_catalog, language_of

PLACEHOLDER = re.compile(r"%\((\w+)\)[sdf]")
HAN = re.compile(r"[\u4e00-\u9fff]")


def page_language(client, **headers) -> str:
    html = client.get("/datasets", headers=headers).get_data(as_text=True)
    return re.search(r'<html lang="([^"]+)"', html).group(1)


@pytest.mark.parametrize("tag", ["zh", "zh-CN", "zh-Hans", "zh-Hans-CN", "zh-TW", "zh-Hant-HK", "ZH-cn",
                                 "zh_CN.UTF-8"])
def test_every_chinese_tag_is_chinese(tag):
    assert language_of(tag) == "zh_CN"


def test_other_tags():
    assert language_of("en-GB") == "en" and language_of("en") == "en"
    assert language_of("fr-FR") is None and language_of("") is None and language_of("zhx") is None


def test_browser_languages_in_order_then_the_server_default(tmp_path):
    client = create_app(app_config(tmp_path)).test_client()
    assert page_language(client, **{"Accept-Language": "fr-FR, zh-Hant-TW;q=0.8, en;q=0.5"}) == "zh-CN"
    assert page_language(client, **{"Accept-Language": "de, en-US;q=0.9, zh;q=0.8"}) == "en"
    assert page_language(client, **{"Accept-Language": "de"}) == "en"
    chinese_server = create_app(app_config(tmp_path / "b", DEFAULT_LANGUAGE="zh_CN")).test_client()
    assert page_language(chinese_server, **{"Accept-Language": "de"}) == "zh-CN"
    assert page_language(chinese_server) == "zh-CN"


def test_the_switch_is_remembered_in_a_cookie_and_on_the_account(tmp_path, redis_url_empty):
    from webapp.accounts import services

    app = app_with_user(tmp_path, "ann", "a password 1", "viewer", REDIS_URL=redis_url_empty)
    client = app.test_client()
    token = form_token(client, headers={"Accept-Language": "en"})
    client.post("/sign-in", data={"username": "ann", "password": "a password 1", "csrf_token": token})
    token = form_token(client, "/account")  # signing in starts a session with a new token
    switched = client.post("/language", data={"language": "zh_CN", "next": "/jobs", "csrf_token": token})
    assert switched.status_code == 302 and switched.headers["Location"] == "/jobs"
    assert "studio_lang=zh_CN" in switched.headers["Set-Cookie"]
    assert page_language(client, **{"Accept-Language": "en"}) == "zh-CN"
    with app.app_context():
        assert services.find_user("ann").language == "zh_CN"
    other_browser = app.test_client()  # the account remembers it without the cookie
    token = form_token(other_browser)
    other_browser.post("/sign-in", data={"username": "ann", "password": "a password 1", "csrf_token": token})
    assert page_language(other_browser, **{"Accept-Language": "en"}) == "zh-CN"
    refused = client.post("/language", data={"language": "zh_CN"}, headers={"Origin": "http://evil.example"})
    assert refused.status_code == 403


def test_every_message_has_a_chinese_translation_with_the_same_placeholders():
    """Fails when a template, script or error message is added without a catalog entry."""
    extracted = {message.id for message in extract_catalog() if message.id}
    with (TRANSLATIONS / "zh_CN" / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source, locale="zh_CN")
    translated = {}
    for message in catalog:
        if message.id and message.string and not message.fuzzy:
            translated[message.id] = message.string
    missing = sorted(m if isinstance(m, str) else m[0] for m in extracted if m not in translated)
    assert missing == [], f"{len(missing)} messages without a Chinese translation, e.g. {missing[:5]}"
    for msgid, msgstr in translated.items():
        ids = (msgid,) if isinstance(msgid, str) else msgid
        strings = (msgstr,) if isinstance(msgstr, str) else msgstr
        wanted = set().union(*(PLACEHOLDER.findall(text) for text in ids))
        for string in strings:  # a plural form may leave out the count itself
            assert wanted - {"num"} <= set(PLACEHOLDER.findall(string)) <= wanted, (msgid, string)


@pytest.mark.parametrize("language", ["zh_CN", "en"])
def test_every_catalog_entry_is_well_formed(language):
    """An entry that lost its msgstr line (a merge can drop it) is read with a warning and never translated."""
    with (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
        read_po(source, locale=language, abort_invalid=True)


@pytest.mark.parametrize("language", ["zh_CN", "en"])
def test_no_message_is_in_a_catalog_twice(language):
    """Two entries of one message (a merge can leave both) are read as the last one, silently, and msgfmt
    refuses the file: each message has one entry, its locations listed together."""
    text = (TRANSLATIONS / language / "LC_MESSAGES" / "messages.po").read_text(encoding="utf-8")
    keys = [re.sub(r"^#.*\n", "", entry, flags=re.M).split("\nmsgstr")[0] for entry in text.split("\n\n")]
    repeated = {key for key in keys if "msgid" in key and keys.count(key) > 1}
    assert not repeated


def test_messages_are_extractable(capsys):
    extract_catalog()
    assert "Skipping f-string" not in capsys.readouterr().err


def test_api_errors_follow_the_language_and_keep_their_code(client):
    english = client.get("/api/datasets/999", headers={"Accept-Language": "en"}).get_json()
    chinese = client.get("/api/datasets/999", headers={"Accept-Language": "zh-CN"}).get_json()
    assert english["code"] == chinese["code"] == "dataset_not_found"
    assert english["error"] == "Dataset 999 does not exist." and HAN.search(chinese["error"])
    assert "999" in chinese["error"]
    bad = client.post("/api/jobs", json={"dataset_id": 1, "epochs": "many"}, headers={"Accept-Language": "zh"})
    assert bad.get_json()["code"] in ("dataset_not_found", "invalid_option") and HAN.search(bad.get_json()["error"])


def test_pages_carry_the_scripts_catalog(client):
    html = client.get("/datasets", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    block = re.search(r'<script type="application/json" id="i18n-catalog">(.*?)</script>', html, re.S).group(1)
    catalog = json.loads(block)
    assert catalog["locale"] == "zh-CN" and catalog["messages"]
    assert all(HAN.search(text) or not re.search(r"[a-z]{4,}", text) for text in catalog["messages"].values())
    english = client.get("/datasets", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '"messages": {}' in english or '"messages":{}' in english


BAD_REQUESTS = [
    ("GET", "/api/jobs/12345", None), ("POST", "/api/jobs", {"dataset_id": 1, "epochs": -3}),
    ("POST", "/api/jobs", {"nonsense": 1}), ("POST", "/api/jobs", []), ("PUT", "/api/release", {"candidate_share": 500}),
    ("GET", "/api/models/7", None), ("DELETE", "/api/datasets/4", None), ("POST", "/api/predict", None),
    ("GET", "/api/datasets/1/recommendation?epochs=-1", None), ("POST", "/api/evaluations", {"version": "x"}),
]


def test_error_codes_are_the_same_in_both_languages_and_the_words_follow(client):
    for method, path, body in BAD_REQUESTS:
        answers = {}
        for language in ("en", "zh-CN"):
            response = client.open(path, method=method, json=body, headers={"Accept-Language": language})
            assert response.status_code >= 400, (method, path)
            answers[language] = (response.status_code, response.get_json())
        (status_en, english), (status_zh, chinese) = answers["en"], answers["zh-CN"]
        assert status_en == status_zh and english["code"] == chinese["code"], (method, path)
        assert {k: v for k, v in english.items() if k != "error"} == {k: v for k, v in chinese.items() if k != "error"}
        assert not HAN.search(english["error"]) and HAN.search(chinese["error"]), (path, chinese["error"])
