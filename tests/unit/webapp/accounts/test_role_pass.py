"""The role pass: every route and method, called by every kind of caller with a harmless body, is refused
exactly where the policy table (webapp.accounts.policy) says the caller's role is too low, and never
elsewhere; and every field that changes what serves is held to the role a release change needs."""
from __future__ import annotations

import re

import pytest

from tests.stack import app_config
from tests.unit.webapp.accounts.test_access import PASSWORD, bearer, sign_in
from webapp import create_app
from webapp.accounts import policy, services
from webapp.database import upgrade_schema
from webapp.extensions import db
from webapp.models import Job

# Endpoints whose role is the table's default (a viewer reads, a member changes), each one a decision a
# person made. A new endpoint fails `test_every_endpoint_is_decided` until it is named in policy.NEEDS
# (or policy.PUBLIC), or here when the default is right for it.
DEFAULT_ROLE = frozenset({
    "health.home", "accounts.account", "jobs_api.backbones", "datasets_api.create", "datasets_api.index",
    "datasets_api.show", "jobs_api.dataset_recommendation", "evaluations_api.create_evaluation",
    "evaluations_api.list_evaluations", "evaluations_api.show_evaluation", "feedback_api.listing",
    "feedback_api.image", "feedback_api.to_dataset", "jobs_api.create", "jobs_api.index", "jobs_api.show",
    "jobs_api.cancel", "jobs_api.confusion_cell", "jobs_api.stream", "jobs_api.resume", "registry_api.index",
    "registry_api.show", "feedback_api.give", "release_api.show", "release_api.live_stats", "workers_api.report",
    "datasets.index", "datasets.show", "datasets.thumbnail", "feedback.index", "jobs.index", "jobs.show",
    "registry.index", "predict.index", "board.proxy", "workers.index", "api_docs.openapi", "api_docs.reference",
    "api_docs.asset", "datasets_api.list_revisions", "datasets_api.create_revision", "datasets_api.show_revision",
    "datasets_api.diff_revision", "datasets_api.show_quality", "datasets_api.scan_quality",
    "jobs_api.plan_label_search", "jobs_api.start_label_search", "jobs_api.list_label_searches",
    "jobs_api.show_label_search", "jobs_api.cancel_label_search", "jobs.label_errors",
    "registry_api.class_threshold_suggestion",
    # the review queue: read like feedback, labelled and added by members; its settings in policy.NEEDS
    "review_api.settings", "review_api.listing", "review_api.image", "review_api.decide", "review_api.to_revision",
})
CALLERS = ("anonymous", "viewer", "member", "admin", "viewer-token", "member-token", "admin-token")
# 401/403 answers that are not about the role: a token may not act as a browser session, whatever its role.
NOT_ABOUT_ROLE = {"browser_session_required": "token"}
# Flask answers these for whichever rule of the URL comes first (the GET's), never a view of their own.
ANSWERED_BY_FLASK = frozenset({"HEAD", "OPTIONS"})
ROLE_REFUSALS = frozenset({"unauthorized", "forbidden", "sign-in"})  # the guard's answers to a role too low
UNUSED_ID = 987654  # no row has it: a call that passes the role check then answers 404 or 409, changing nothing


def role_of(caller: str) -> str | None:
    return None if caller == "anonymous" else caller.removesuffix("-token")


class Caller:
    """A test client that acts as one caller: its session (signed in once, again only if a route ended
    it) or its bearer token, and the CSRF header a page of the studio would send."""

    def __init__(self, app, name: str):
        self.app, self.name, self.client, self.headers = app, name, app.test_client(), {}
        if name.endswith("-token"):
            with app.app_context():
                _, secret = services.create_token(services.find_user(f"{role_of(name)}-ann"), "role pass")
            self.headers = bearer(secret)
        else:
            self.sign_in()

    def sign_in(self) -> None:
        self.client = self.app.test_client()
        if self.name != "anonymous":
            assert sign_in(self.client, f"{self.name}-ann").status_code == 302
        page = self.client.get("/account" if self.name != "anonymous" else "/sign-in").get_data(as_text=True)
        found = re.search(r'name="csrf-token" content="([^"]+)"', page) or re.search(
            r'name="csrf_token" value="([^"]+)"', page)
        self.headers = {"X-CSRF-Token": found.group(1)}

    def call(self, method: str, url: str, **body):
        response = self.client.open(url, method=method, headers=self.headers, **body)
        if self.name in policy.ROLES and method not in policy.SAFE_METHODS:
            if not (self.client.get("/api/me").get_json() or {}).get("user"):  # the route signed it out
                self.sign_in()
        return response


@pytest.fixture(scope="module")
def studio(tmp_path_factory, redis_server):
    app = create_app(app_config(tmp_path_factory.mktemp("roles"), AUTH="on", SIGN_IN_ATTEMPTS=1000,
                                REDIS_URL=redis_server))  # sign-ins are counted in Redis
    upgrade_schema(app)
    with app.app_context():
        for role in policy.ROLES:
            services.create_user(f"{role}-ann", PASSWORD, role)
        promoting = Job(dataset_id=None, dataset_name="gone", status="failed", config={"epochs": 1},
                        promote_when_done=True, created_by="admin-ann", promote_requested_by="admin-ann")
        db.session.add(promoting)
        db.session.commit()
        app.promoting_job = promoting.id
    app.callers = {}
    return app


@pytest.fixture
def caller(studio, request) -> Caller:
    name = request.param
    if name not in studio.callers:
        studio.callers[name] = Caller(studio, name)
    return studio.callers[name]


def example_url(rule) -> str:
    values = {name: ("x" if converter.__class__.__name__ in ("UnicodeConverter", "PathConverter") else UNUSED_ID)
              for name, converter in rule._converters.items()}
    return rule.build(values, append_unknown=False)[1]


def refusal(response) -> str | None:
    """How the call was refused: the error code, 'sign-in' for a page sent to sign in, 'page' for a page
    answered 401/403; None when it was not refused."""
    if response.status_code in (302, 303) and "/sign-in?next=" in response.headers.get("Location", ""):
        return "sign-in"
    if response.status_code not in (401, 403):
        return None
    return (response.get_json(silent=True) or {}).get("code") or "page"


def verdict(caller: str, needed: str | None, response, path: str) -> str | None:
    """What is wrong with this answer, or None when it is what the policy table says."""
    if response.status_code == 500:
        return f"answered 500 to a harmless body: {response.get_data(as_text=True)[:200]}"
    refused = refusal(response)
    if needed is None:  # public: only the guard's own answers would be wrong (a wrong password is the page's)
        return f"refused ({refused}) though anyone may" if refused in ROLE_REFUSALS else None
    if policy.role_allows(role_of(caller), needed):
        if refused is None or NOT_ABOUT_ROLE.get(refused) == caller.rpartition("-")[2]:
            return None
        return f"refused ({response.status_code} {refused}) though {needed} may"
    if refused is None:
        return f"answered {response.status_code} though it needs {needed}"
    if path.startswith("/api/") and refused not in ROLE_REFUSALS:
        return f"refused with {refused} instead of the role's answer"
    return None


def test_every_endpoint_is_decided(studio):
    endpoints = {rule.endpoint for rule in studio.url_map.iter_rules()}
    undecided = endpoints - policy.PUBLIC - set(policy.NEEDS) - DEFAULT_ROLE
    assert undecided == set(), "name these in policy.NEEDS (or in DEFAULT_ROLE here when the default is right)"
    assert set(policy.NEEDS) | DEFAULT_ROLE <= endpoints, "the table names endpoints that are gone"


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_every_route_answers_each_role_as_the_policy_table_says(studio, caller):
    wrong, walked = [], 0
    for rule in sorted(studio.url_map.iter_rules(), key=lambda rule: rule.rule):
        url = example_url(rule)
        for method in sorted(rule.methods - ANSWERED_BY_FLASK):
            body = {} if method in policy.SAFE_METHODS else {"json": {}}
            response = caller.call(method, url, **body)
            problem = verdict(caller.name, policy.required_role(rule.endpoint, method), response, url)
            if problem:
                wrong.append(f"{method} {rule.rule} ({rule.endpoint}): {problem}")
            walked += 1
    assert wrong == []
    assert walked == sum(len(rule.methods - ANSWERED_BY_FLASK) for rule in studio.url_map.iter_rules())


def _changes_what_serves(studio) -> list[tuple[str, str, dict, str]]:
    """(method, path, body, endpoint whose role it needs): each field that changes which model answers."""
    release = ("release_api.change", "PUT")
    return [
        ("POST", "/api/jobs", {"dataset_id": UNUSED_ID, "promote_when_done": True}, release),
        ("POST", f"/api/jobs/{studio.promoting_job}/resume", {}, release),
        ("PUT", "/api/release", {"production": UNUSED_ID}, release),
        ("PUT", "/api/release", {"candidate": UNUSED_ID, "candidate_share": 5}, release),
        ("POST", "/api/release/rollback", {}, ("release_api.rollback", "POST")),
        ("PUT", f"/api/models/{UNUSED_ID}", {"abstain_threshold": 0.5}, ("registry_api.update", "PUT")),
        ("PUT", f"/api/models/{UNUSED_ID}", {"class_thresholds": {"a": 0.5}}, ("registry_api.update", "PUT")),
    ]


@pytest.mark.parametrize("caller", CALLERS, indirect=True)
def test_fields_that_change_what_serves_need_the_release_role(studio, caller):
    wrong = []
    for method, path, body, (endpoint, as_method) in _changes_what_serves(studio):
        needed = policy.required_role(endpoint, as_method)
        response = caller.call(method, path, json=body)
        problem = verdict(caller.name, needed, response, path)
        if problem:
            wrong.append(f"{method} {path} {body}: {problem}")
        elif refusal(response) is None:
            assert response.status_code in (404, 409), (path, response.get_json())  # judged, changed nothing
    assert wrong == []
    with studio.app_context():
        job = db.session.get(Job, studio.promoting_job)
        assert (job.status, job.promote_requested_by) == ("failed", "admin-ann")
