"""The hand-written Python client (clients/python) against the committed OpenAPI document. Every method of
`Studio` and every `studio` command is driven against a stand-in server that records what the client sends and
answers with the documented answer schema's shape. Each request must be a route of the app; where openapi.json
declares its operation (same method, same path), the client may send only the documented query parameters,
media type and body fields, and read only fields the answer's schema has. An operation not declared yet is
skipped by name, so the check tightens as the document grows."""
from __future__ import annotations

import inspect
import json
import re
from collections import Counter
from dataclasses import dataclass, field

import pytest
from werkzeug.exceptions import HTTPException

from tests.client_package import CLIENT_DIR  # noqa: F401 (puts the client on sys.path, installed or not)
from tests.images import image_bytes
from tests.stack import app_config
from webapp import create_app
from webapp.api_docs import DOCUMENT

from studio_client import cli
from studio_client import client as client_module
from studio_client.client import Studio
from studio_client.multipart import MultipartBody

SPEC = json.loads(DOCUMENT.read_text(encoding="utf-8"))
BASE = "http://studio.test"
ASKED_AT_MOST = 50  # requests one driven call may make: more means the client loops on the stand-in's answers


def operation_of(method: str, path: str) -> tuple[str, dict] | None:
    """The document's (path template, operation) for a request, or None when it is not declared."""
    for template, item in SPEC["paths"].items():
        if method.lower() in item and re.fullmatch(re.sub(r"\{[^/}]+\}", "[^/]+", template), path):
            return template, item[method.lower()]
    return None


def resolved(schema: dict) -> dict:
    while "$ref" in schema:
        schema = SPEC["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "allOf" in schema:
        parts = [resolved(part) for part in schema["allOf"]]
        fields = {name: sub for part in parts for name, sub in part.get("properties", {}).items()}
        schema = {"type": "object", "properties": fields,
                  "additionalProperties": not any(part.get("additionalProperties") is False for part in parts)}
    return schema


def fields_of(schema: dict, seen: set[str]) -> set[str]:
    """The field names anywhere in an answer schema, nested ones included."""
    if "$ref" in schema:
        if schema["$ref"] in seen:
            return set()
        seen.add(schema["$ref"])
    schema = resolved(schema)
    names = set(schema.get("properties", {}))
    parts = [*schema.get("properties", {}).values(), *schema.get("anyOf", ()), *schema.get("oneOf", ())]
    parts += [schema[key] for key in ("items", "additionalProperties") if isinstance(schema.get(key), dict)]
    return names.union(*(fields_of(part, seen) for part in parts))


def answer_fields() -> set[str]:
    """Every field some answer of the document has."""
    seen: set[str] = set()
    return set().union(*(fields_of(answer.get("content", {}).get("application/json", {}).get("schema", {}), seen)
                         for item in SPEC["paths"].values() for entry in item.values()
                         for status, answer in entry["responses"].items() if status.startswith("2")))


ANSWER_FIELDS = answer_fields()


class Watched(dict):
    """An answer object that notes each field the client reads and may not find. Read with [], a field must be
    in this answer's schema. Read with .get(), the client copes without it (one model may read a list's rows
    and the whole resource), but some answer of the document must have it: a field no answer has is a typo,
    or one the studio renamed or removed, and .get() would hide that as None for ever."""

    def __init__(self, values: dict, schema: dict, where: str, strays: list[str]) -> None:
        super().__init__(values)
        self.schema, self.where, self.strays = schema, where, strays

    def _read(self, key, optional: bool) -> None:
        if key in self.schema.get("properties", {}) or self.schema.get("additionalProperties", True) is not False:
            return
        if not optional or key not in ANSWER_FIELDS:
            self.strays.append(f"{self.where}.{key}")

    def __getitem__(self, key):
        self._read(key, optional=False)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self._read(key, optional=True)
        return super().get(key, default)


def example(schema: dict, where: str, strays: list[str], full: bool):
    """A value of `schema`: every field filled (`full`), or the least one (nulls, empty lists, last enum
    value), so that a second page ends a listing and a second poll ends a wait."""
    schema = resolved(schema)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        concrete = [option for option in options if resolved(option).get("type") != "null"]
        return None if (not full and len(concrete) < len(options)) or not concrete else example(
            concrete[0], where, strays, full)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0 if full else -1]
    kind = schema.get("type", "object" if "properties" in schema else None)
    if isinstance(kind, list):  # ["string", "null"]
        if not full and "null" in kind:
            return None
        kind = next(name for name in kind if name != "null")
    if kind == "object":
        required = set(schema.get("required", ()))
        return Watched({name: example(sub, f"{where}.{name}", strays, full)
                        for name, sub in schema.get("properties", {}).items() if full or name in required},
                       schema, where, strays)
    if kind == "array":
        return [example(schema.get("items", {}), f"{where}[]", strays, full)] if full else []
    if kind == "string" and schema.get("format") == "date-time":
        return "2026-01-02T03:04:05+00:00"
    return {"integer": 1, "number": 0.5, "boolean": False, "string": "x"}.get(kind)


class Anything:
    """The answer of an operation the document does not declare yet: whatever the client reads, of no shape."""

    def __getitem__(self, key):
        return Anything()

    def get(self, key, default=None):
        return default

    def __iter__(self):
        return iter(())

    def __bool__(self) -> bool:
        return False

    def __format__(self, spec: str) -> str:
        return "1"

    def __str__(self) -> str:
        return "1"


@dataclass
class Sent:
    """One request as the client sent it."""

    method: str
    path: str
    query: set[str]
    media_type: str | None
    body_fields: set[str]


class FinishedStream:
    """A job's event stream that is over at once: its snapshot says the job finished."""

    status_code = 200

    def iter_lines(self, decode_unicode: bool = False):
        yield from ("event: snapshot", 'data: {"id": 1, "status": "succeeded", "finished": true}', "")

    def iter_content(self, chunk_size: int = 1):
        yield b"path,class\r\n"  # a file download (a batch run's results)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None


@dataclass
class Answer:
    """A JSON answer of the stand-in."""

    status_code: int
    body: object

    def json(self):
        return self.body


@dataclass
class StandIn:
    """A `requests.Session` for the client: records each request, answers with the documented answer shape
    (fields filled the first time an operation is asked, the least answer after), or `Anything`."""

    headers: dict = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)
    strays: list[str] = field(default_factory=list)
    asked: Counter = field(default_factory=Counter)

    def request(self, method, url, *, params=None, json=None, data=None, headers=None, stream=False, timeout=None):
        path = url.removeprefix(BASE)
        self.sent.append(Sent(method, path, set(params or ()), *_body(json, data, headers or {})))
        assert len(self.sent) <= ASKED_AT_MOST, f"the client keeps asking: {method} {path}"
        if stream:
            return FinishedStream()
        declared = operation_of(method, path)
        if declared is None:
            return Answer(200, Anything())
        template, entry = declared
        status = min(code for code in entry["responses"] if code.startswith("2"))
        schema = entry["responses"][status].get("content", {}).get("application/json", {}).get("schema", {})
        self.asked[(method, template)] += 1
        body = example(schema, f"{method} {template} answer", self.strays, self.asked[(method, template)] == 1)
        return Answer(int(status), body)


def _body(json_body, data, headers: dict) -> tuple[str | None, set[str]]:
    if json_body is not None:
        return "application/json", set(json_body)
    if isinstance(data, MultipartBody):
        return "multipart/form-data", set(data.fields) | {part.field for part in data.files}
    if data is not None:
        return headers.get("Content-Type"), set()
    return None, set()


def _cli(*argv: str):
    """A `studio` command line; `{folder}` in an argument is the test's folder."""
    return lambda studio, folder: cli.main([arg.format(folder=folder) for arg in argv])


# Every public method of Studio and every command of `studio`, called as a script would.
DRIVERS = {
    "Studio.upload_dataset": lambda studio, folder: studio.upload_dataset(folder / "flowers", name="flowers"),
    "Studio.dataset": lambda studio, folder: studio.dataset(1),
    "Studio.datasets": lambda studio, folder: studio.datasets(),
    "Studio.wait_for_dataset": lambda studio, folder: studio.wait_for_dataset(1),
    "Studio.revisions": lambda studio, folder: studio.revisions(1),
    "Studio.revision": lambda studio, folder: studio.revision(1, 2),
    "Studio.revise": lambda studio, folder: studio.revise(1, fix="drop_flagged", kinds=["blurry"], comment="blur"),
    "Studio.create_job": lambda studio, folder: studio.create_job(1, 2, epochs=2, backbone="resnet18"),
    "Studio.job": lambda studio, folder: studio.job(1),
    "Studio.jobs": lambda studio, folder: studio.jobs(status="running"),
    "Studio.cancel_job": lambda studio, folder: studio.cancel_job(1),
    "Studio.resume_job": lambda studio, folder: studio.resume_job(1),
    "Studio.follow_job": lambda studio, folder: list(studio.follow_job(1)),
    "Studio.versions": lambda studio, folder: studio.versions(),
    "Studio.version": lambda studio, folder: studio.version(1),
    "Studio.release": lambda studio, folder: studio.release(),
    "Studio.promote": lambda studio, folder: studio.promote(1),
    "Studio.rollback": lambda studio, folder: studio.rollback(),
    "Studio.predict": lambda studio, folder: studio.predict(folder / "flowers" / "rose" / "a.png", version=1,
                                                            top_k=2, client_id="script", explain=True),
    "Studio.predict_files": lambda studio, folder: list(studio.predict_files([folder / "flowers" / "rose" / "a.png"])),
    "Studio.predict_folder": lambda studio, folder: list(studio.predict_folder(folder / "flowers", top_k=1)),
    "Studio.review_settings": lambda studio, folder: studio.review_settings(),
    "Studio.change_review_settings": lambda studio, folder: studio.change_review_settings(enabled=True, margin=0.2),
    "Studio.review_items": lambda studio, folder: studio.review_items("labelled", version=1),
    "Studio.label_review_item": lambda studio, folder: studio.label_review_item(1, "rose"),
    "Studio.dismiss_review_item": lambda studio, folder: studio.dismiss_review_item(1),
    "Studio.add_reviewed_to_revision": lambda studio, folder: studio.add_reviewed_to_revision(1),
    "Studio.backups": lambda studio, folder: studio.backups(),
    "Studio.start_batch": lambda studio, folder: studio.start_batch(folder / "flowers", version=1, top_k=2),
    "Studio.batch": lambda studio, folder: studio.batch(1),
    "Studio.batches": lambda studio, folder: studio.batches(),
    "Studio.cancel_batch": lambda studio, folder: studio.cancel_batch(1),
    "Studio.delete_batch": lambda studio, folder: studio.delete_batch(1),
    "Studio.wait_for_batch": lambda studio, folder: studio.wait_for_batch(1, on_progress=lambda run: run.done),
    "Studio.download_batch_results": lambda studio, folder: studio.download_batch_results(1, folder, "jsonl"),
    "Studio.webhooks": lambda studio, folder: studio.webhooks(),
    "Studio.create_webhook": lambda studio, folder: studio.create_webhook("https://hooks.example/in", ["test"]),
    "Studio.webhook": lambda studio, folder: studio.webhook(1),
    "Studio.change_webhook": lambda studio, folder: studio.change_webhook(1, enabled=False),
    "Studio.delete_webhook": lambda studio, folder: studio.delete_webhook(1),
    "Studio.rotate_webhook_secret": lambda studio, folder: studio.rotate_webhook_secret(1),
    "Studio.test_webhook": lambda studio, folder: studio.test_webhook(1),
    "Studio.webhook_deliveries": lambda studio, folder: studio.webhook_deliveries(1),
    "Studio.resend_webhook_delivery": lambda studio, folder: studio.resend_webhook_delivery(1, 2),
    "studio batch": _cli("batch", "{folder}/flowers", "--top-k", "2", "-O", "{folder}"),
    "studio batch --dataset": _cli("batch", "--dataset", "1", "--revision", "2", "--jsonl", "-O", "{folder}"),
    "studio upload": _cli("upload", "{folder}/flowers"),
    "studio train": _cli("train", "1", "--revision", "2", "--epochs", "2", "-o", "image_size=64", "--follow"),
    "studio revisions": _cli("revisions", "1"),
    "studio jobs": _cli("jobs"),
    "studio jobs ID": _cli("jobs", "1"),
    "studio cancel": _cli("cancel", "1"),
    "studio resume": _cli("resume", "1"),
    "studio versions": _cli("versions"),
    "studio promote": _cli("promote", "1"),
    "studio rollback": _cli("rollback"),
    "studio predict": _cli("predict", "{folder}/flowers", "--top-k", "1"),
    "Studio.audit": lambda studio, folder: studio.audit(actor="alice", action="user.", subject_type="user",
                                                        subject_id=3, address="10.0.0.1", since="2026-12-01",
                                                        until="2026-12-06T07:00:00Z", limit=20),
    "studio audit": _cli("audit", "--action", "release.", "--since", "2026-12-01", "--limit", "5"),
    "studio audit --json": _cli("audit", "--actor", "alice", "--json"),
}


@pytest.fixture
def folder(tmp_path):
    """A dataset folder, `flowers/<class>/<image>`, with flowers/rose/a.png among its images."""
    for name in ("rose/a.png", "tulip/b.png"):
        path = tmp_path / "flowers" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image_bytes(fmt="PNG"))
    return tmp_path


def drive(name: str, folder, monkeypatch) -> StandIn:
    """Run one driver against a stand-in; what it sent and read. A field read with [] that the answer may
    leave out (not required, or not documented) fails here."""
    stand_in = StandIn()
    studio = Studio(BASE, token="isk_test")
    studio.session = stand_in
    monkeypatch.setattr(cli, "Studio", lambda *args, **kwargs: studio)
    monkeypatch.setattr(client_module.time, "sleep", lambda seconds: None)
    try:
        DRIVERS[name](studio, folder)
    except KeyError as exc:
        pytest.fail(f"{name} reads {exc} from an answer that may not have it; strays: {stand_in.strays}")
    return stand_in


@pytest.fixture(scope="module")
def routes(tmp_path_factory):
    return create_app(app_config(tmp_path_factory.mktemp("routes"))).url_map.bind("localhost")


def test_every_method_and_command_of_the_client_is_driven():
    methods = {f"Studio.{name}" for name, member in vars(Studio).items()
               if inspect.isfunction(member) and not name.startswith("_")}
    commands = {f"studio {name}" for name in cli.COMMANDS}
    assert {name for name in DRIVERS if name.startswith("Studio.")} == methods
    assert commands <= set(DRIVERS)


@pytest.mark.parametrize("name", DRIVERS)
def test_every_request_of_the_client_is_a_route_of_the_app(name, folder, routes, monkeypatch, capsys):
    stand_in = drive(name, folder, monkeypatch)
    assert stand_in.sent, f"{name} sent nothing"
    for sent in stand_in.sent:
        try:
            routes.match(sent.path, method=sent.method)
        except HTTPException as exc:
            pytest.fail(f"{name}: {sent.method} {sent.path} is no route of the app ({exc.code})")


@pytest.mark.parametrize("name", DRIVERS)
def test_the_client_sends_and_reads_what_the_document_declares(name, folder, routes, monkeypatch, capsys):
    stand_in = drive(name, folder, monkeypatch)
    undeclared = set()
    for sent in stand_in.sent:
        declared = operation_of(sent.method, sent.path)
        if declared is None:
            rule, _ = routes.match(sent.path, method=sent.method, return_rule=True)
            undeclared.add(f"{sent.method} {template_of(rule)}")
        else:
            check_request(sent, *declared)
    assert stand_in.strays == [], f"{name} reads fields the document's answers do not have"
    if all(operation_of(sent.method, sent.path) is None for sent in stand_in.sent):
        pytest.skip(f"not declared in openapi.json yet: {', '.join(sorted(undeclared))}")


def template_of(rule) -> str:
    """A URL-map rule written as the document writes paths: /api/jobs/<int:job_id> is /api/jobs/{job_id}."""
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)


def check_request(sent: Sent, template: str, entry: dict) -> None:
    where = f"{sent.method} {template}"
    documented = {p["name"] for p in entry.get("parameters", []) if p["in"] == "query"}
    assert sent.query <= documented, f"{where}: query parameters the document does not list"
    body = entry.get("requestBody", {}).get("content", {})
    if sent.media_type is None:
        assert not entry.get("requestBody", {}).get("required"), f"{where}: the document requires a body"
        return
    assert sent.media_type in body, f"{where}: sends {sent.media_type}, the document takes {sorted(body)}"
    schema = resolved(body[sent.media_type].get("schema", {}))
    if schema.get("additionalProperties") is False:
        assert sent.body_fields <= set(schema.get("properties", {})), f"{where}: body fields it does not list"


def test_the_check_finds_what_the_document_lacks(monkeypatch):
    """The check itself, on operations the document declares today: a paged list is read whole, and a field,
    a query parameter or a body field the document lacks is found."""
    stand_in = StandIn()
    studio = Studio(BASE)
    studio.session = stand_in
    tokens = studio._all("/api/tokens", "tokens")
    assert [sent.query for sent in stand_in.sent] == [{"limit"}, {"limit", "before"}]
    assert stand_in.strays == [] and tokens[0]["prefix"] == "x"
    assert tokens[0].get("nickname") is None and tokens[0].get("username") is None  # a field of other answers
    assert stand_in.strays == ["GET /api/tokens answer.tokens[].nickname"]
    studio._json("POST", "/api/tokens", json={"name": "ci", "lifetime": 3}, params={"dry": 1})
    sent = stand_in.sent[-1]
    with pytest.raises(AssertionError, match="query parameters the document does not list"):
        check_request(sent, *operation_of("POST", "/api/tokens"))
    sent.query.clear()
    with pytest.raises(AssertionError, match="body fields it does not list"):
        check_request(sent, *operation_of("POST", "/api/tokens"))
    sent.body_fields.discard("lifetime")
    check_request(sent, *operation_of("POST", "/api/tokens"))
