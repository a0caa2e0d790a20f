"""Schema-driven fuzzing: Schemathesis reads the studio's own OpenAPI document and sends every operation in it
valid and invalid requests, against an app with its database and no broker or worker (so nothing trains),
signed in as an admin. No answer may be a server error, and every answer must have a status, a content type and
a body that the document gives for that operation. The operations come from the document, so an operation
declared later is fuzzed here without a change to this file."""
from __future__ import annotations

import io
import re
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.images import class_files, zip_bytes
from tests.stack import DATABASE_FILE, app_config
from webapp import create_app
from webapp.accounts import services
from webapp.api_docs import document
from webapp.extensions import db

ADMIN, PASSWORD, CSRF = "admin-fuzz", "correct horse 9", "fuzz-csrf-token"
# Rows for the operations to find besides the admin (user 1): an account of each role, and a dataset.
OTHERS = (("viewer-fuzz", "viewer"), ("member-fuzz", "member"), ("admin-two", "admin"))
# Random ids seldom name a row: each operation with ids in its path is also sent the ids of the rows made here.
KNOWN_IDS = (1, 2, 3)
EXAMPLES = 30  # examples per operation, valid and invalid ones drawn alike
# Disagreements between the app and its document that the fuzz has found and that are not fixed yet: the
# operation, and the words its failure shows. Such an operation's failure is expected (xfail); once it passes,
# its entry must go.
FINDINGS: dict[str, str] = {}

CONFIG = {
    # The admin's credentials are sent by the test itself: no generated Authorization header, session cookie
    # or CSRF header may replace them.
    "generation": {"with-security-parameters": False},
    "checks": {
        "enabled": False,
        # A 503 is the studio's answer while its Redis is away (no queue, no counting of failed sign-ins): it
        # passes here only where the operation documents it, which status_code_conformance checks.
        "not_a_server_error": {"enabled": True, "expected-statuses": ["2xx", "3xx", "4xx", "503"]},
        "status_code_conformance": {"enabled": True},
        "content_type_conformance": {"enabled": True},
        "response_schema_conformance": {"enabled": True},
        # An invalid request (a wrong type, a missing field, a number out of range) is refused with a 4xx.
        "negative_data_rejection": {"enabled": True},
    },
}
# Derandomized, so that CI repeats a failure; no example database, so nothing carries over between runs.
SETTINGS = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate, Phase.shrink])


@dataclass
class Tally:
    """What ran: examples per operation, and its answers by status."""

    examples: Counter = field(default_factory=Counter)
    answers: dict = field(default_factory=lambda: defaultdict(Counter))

    def summary(self, operations: list[str]) -> str:
        lines = [f"schema fuzz: {len(self.examples)} of {len(operations)} operations, "
                 f"{sum(self.examples.values())} examples"]
        for label in operations:
            statuses = " ".join(f"{status}x{count}" for status, count in sorted(self.answers[label].items()))
            lines.append(f"  {label}: {self.examples[label]} examples, answers {statuses}")
        return "\n".join(lines)


@dataclass
class Admin:
    """The admin the fuzz acts as: a bearer token, and a signed-in browser (its session cookie and CSRF
    header) for the operations that refuse tokens."""

    app: object
    token: str = ""
    browser: object = None

    def sign_in(self) -> None:
        """A new token and a new browser session, with the admin role back: a fuzzed request that succeeded
        may have revoked the token, ended the session or changed the role. No password is checked, so no
        Redis is needed to count failed sign-ins."""
        with self.app.app_context():
            user = services.find_user(ADMIN)
            user.role = "admin"
            db.session.commit()
            _, self.token = services.create_token(user, "fuzz")
            services.start_session(user)
            ident = user.session_ident
        self.browser = self.app.test_client()
        with self.browser.session_transaction() as cookie:
            cookie.update({"_user_id": ident, "_fresh": True, "csrf": CSRF})

    def call(self, case, tally: Tally):
        """Send `case` with the token and, when tokens are refused there, again from the browser; check both."""
        response = case.call_and_validate(headers={"Authorization": f"Bearer {self.token}"})
        tally.answers[case.operation.label][response.status_code] += 1
        if response.status_code == 403 and response.json().get("code") == "browser_session_required":
            response = case.call_and_validate(session=self.browser, headers={"X-CSRF-Token": CSRF})
            tally.answers[case.operation.label][response.status_code] += 1
        if case.method.upper() != "GET" and response.status_code < 300:
            self.sign_in()


@pytest.fixture
def admin(tmp_path, migrated_sqlite):
    """A migrated app with sign-in on and no Redis, its users, a dataset, and the admin signed in."""
    shutil.copyfile(migrated_sqlite, tmp_path / DATABASE_FILE)
    app = create_app(app_config(tmp_path, AUTH="on"))
    with app.app_context():
        for username, role in ((ADMIN, "admin"), *OTHERS):
            services.create_user(username, PASSWORD, role)
    caller = Admin(app)
    caller.sign_in()
    upload = app.test_client().post(
        "/api/datasets", headers={"Authorization": f"Bearer {caller.token}"}, content_type="multipart/form-data",
        data={"archive": (io.BytesIO(zip_bytes(class_files({"a": 2, "b": 2}))), "d.zip")})
    assert upload.status_code == 201, upload.get_json()
    return caller


def cases(operation, parameters: list[dict]):
    """Valid and invalid requests to `operation`; where its path has whole-number ids, some name known rows."""
    strategies = [operation.as_strategy(generation_mode=mode) for mode in GenerationMode]
    ids = [p["name"] for p in parameters if p["in"] == "path" and p.get("schema", {}).get("type") == "integer"]
    if ids:
        strategies += [operation.as_strategy(path_parameters=dict.fromkeys(ids, known)) for known in KNOWN_IDS]
    return st.one_of(strategies)


def fuzz(operation, parameters: list[dict], admin: Admin, tally: Tally) -> None:
    @SETTINGS
    @given(case=cases(operation, parameters))
    def one_case(case) -> None:
        tally.examples[operation.label] += 1
        admin.call(case, tally)

    one_case()


def failure_text(exc: BaseException) -> str:
    """A failure's whole report: its message, its notes (the answer, the request) and its parts'."""
    parts = [str(exc), *getattr(exc, "__notes__", ())]
    return "\n".join(parts + [failure_text(part) for part in getattr(exc, "exceptions", ())])


def fuzz_expecting(finding: str | None, operation, parameters: list[dict], admin: Admin, tally: Tally) -> None:
    """`fuzz`, where a known finding is an expected failure and a fixed one says to drop it from FINDINGS."""
    try:
        fuzz(operation, parameters, admin, tally)
    except (Exception, BaseExceptionGroup) as exc:  # Schemathesis reports its checks' failures as a group
        if finding is not None and finding in failure_text(exc):
            pytest.xfail(f"known finding: {finding}")
        raise
    assert finding is None, f"{operation.label} no longer fails with {finding}: remove it from FINDINGS"


def read_empty_as_absent(api) -> None:
    """The studio reads a query parameter sent empty (`?limit=`) as one left out (webapp/paging.py), as a
    form submitted with an empty field sends it; Schemathesis takes an empty value for a typed parameter as
    invalid unless the document says `allowEmptyValue: true`. Until the document says it, such cases are not
    sent (an empty text, list or object is written as nothing); a parameter the document marks is fuzzed with
    empty values as well."""

    @api.hook
    def filter_query(context, query) -> bool:
        entry = api.raw_schema["paths"][context.operation.path][context.operation.method.lower()]
        marked = {p["name"] for p in entry.get("parameters", []) if p["in"] == "query" and p.get("allowEmptyValue")}
        return not any(value in ("", [], {}) and name not in marked for name, value in (query or {}).items())


@pytest.mark.slow
def test_every_operation_answers_as_documented(admin, subtests, capsys):
    api = schemathesis.openapi.from_wsgi("/api/openapi.json", admin.app, config=schemathesis.Config.from_dict(CONFIG),
                                         headers={"Authorization": f"Bearer {admin.token}"})
    read_empty_as_absent(api)
    tally = Tally()
    operations = [(f"{method.upper()} {path}", api[path][method.upper()], entry.get("parameters", []))
                  for path, item in api.raw_schema["paths"].items() for method, entry in item.items()]
    for label, operation, parameters in operations:
        with subtests.test(msg=label):
            fuzz_expecting(FINDINGS.get(label), operation, parameters, admin, tally)
    summary = tally.summary([label for label, _, _ in operations])
    with capsys.disabled():
        print(f"\n{summary}")
    assert len(tally.examples) == len(operations), summary
    assert set(FINDINGS) <= {label for label, _, _ in operations}, "a finding names an operation the document lacks"


def test_an_undeclared_method_is_refused_naming_the_allowed_ones(admin):
    client = admin.app.test_client()
    for path, item in document(admin.app)["paths"].items():
        response = client.open(re.sub(r"\{[^}]+\}", "1", path), method="TRACE",
                               headers={"Authorization": f"Bearer {admin.token}"})
        assert (response.status_code, response.get_json()["code"]) == (405, "method_not_allowed"), path
        allowed = {method.strip() for method in response.headers.get("Allow", "").split(",")}
        assert {method.upper() for method in item} <= allowed, path


def test_the_hand_written_fuzz_tests_still_run(request):
    """Schemathesis sends what the document describes; tests/unit/webapp/test_fuzz.py sends what it cannot
    (bodies that are no JSON, hostile multipart uploads and images, odd text in URLs): they stay, collected
    and not skipped."""
    module = pytest.Module.from_parent(request.session, path=Path(__file__).with_name("test_fuzz.py"))
    items = list(module.collect())
    assert {"test_job_options_fuzz", "test_upload_fuzz", "test_predict_and_id_routes_fuzz",
            "test_account_password_and_token_expiry_fuzz", "test_paging_query_fuzz"} <= {item.name for item in items}
    assert [item.name for item in items if item.get_closest_marker("skip") or item.get_closest_marker("xfail")] == []
