"""Every JSON list that can grow without bound pages its answer: `limit`, a `before` cursor, `next_before`."""
from __future__ import annotations

import pytest

from tests.factories import app_with_user
from webapp.accounts import services
from webapp.extensions import db
from webapp.models import Dataset, Evaluation, Feedback, Job, ModelVersion
from webapp.paging import MAX_LIMIT

ZH = {"Accept-Language": "zh-CN"}


def add_rows(app, make, count: int = 5) -> None:
    """`count` rows made by `make(n)`, n from 1, in one transaction."""
    with app.app_context():
        db.session.add_all(make(n) for n in range(1, count + 1))
        db.session.commit()


def job(n: int, status: str = "queued") -> Job:
    return Job(dataset_name=f"d{n}", status=status, config={"backbone": "resnet18", "epochs": 1})


def evaluation(n: int, split: str = "test", version: int = 1) -> Evaluation:
    return Evaluation(version=version, dataset_name="d", split=split)


def feedback(n: int, correct: bool = True) -> Feedback:
    return Feedback(prediction_id=f"p{n}", version=1, arm="production", predicted_class="red", confidence=0.9,
                    correct=correct)


def version(n: int) -> ModelVersion:
    return ModelVersion(version=n * 10, backbone="resnet18", image_size=32, class_names=["a", "b"], val_acc=1.0,
                        bundle_bytes=1)


# url, key in the answer, the row maker, the cursor of each row
LISTS = [("/api/jobs", "jobs", job, "id"),
         ("/api/datasets", "datasets", lambda n: Dataset(name=f"d{n}"), "id"),
         ("/api/models", "models", version, "version"),
         ("/api/evaluations", "evaluations", evaluation, "id"),
         ("/api/feedback", "items", feedback, "id")]


def walk(client, url: str, key: str, cursor: str, headers: dict | None = None,
         **filters) -> tuple[list[int], list[int | None]]:
    """The cursors of every row met following `next_before` two rows at a time from the first page, and
    each page's `next_before`."""
    seen, nexts, before = [], [], None
    while True:
        query = {**filters, "limit": 2} | ({} if before is None else {"before": before})
        answer = client.get(url, query_string=query, headers=headers)
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        assert len(body[key]) <= 2
        seen += [row[cursor] for row in body[key]]
        nexts.append(before := body["next_before"])
        if before is None:
            return seen, nexts


@pytest.mark.parametrize("url,key,make,cursor", LISTS, ids=[entry[0] for entry in LISTS])
def test_a_walk_two_at_a_time_meets_every_row_once_newest_first(app, client, url, key, make, cursor):
    add_rows(app, make)
    everything = client.get(url).get_json()
    assert everything["next_before"] is None  # fewer rows than the default limit: one page, as before
    newest_first = [row[cursor] for row in everything[key]]
    assert len(newest_first) == 5 and newest_first == sorted(newest_first, reverse=True)
    seen, nexts = walk(client, url, key, cursor)
    assert seen == newest_first
    assert nexts == [newest_first[1], newest_first[3], None]


def test_jobs_page_within_their_status(app, client):
    add_rows(app, lambda n: job(n, "failed" if n % 2 else "queued"), count=9)
    seen, _ = walk(client, "/api/jobs", "jobs", "id", status="failed")
    assert seen == [9, 7, 5, 3, 1]
    assert all(row["status"] == "failed" for row in client.get("/api/jobs?status=failed&limit=2").get_json()["jobs"])


def test_evaluations_page_within_their_dataset_split_and_version(app, client):
    add_rows(app, lambda n: Dataset(name=f"d{n}"), count=2)
    add_rows(app, lambda n: Evaluation(version=1 + n % 2, dataset_id=1 + n % 3 // 2, dataset_name="d",
                                       split="test" if n % 5 else "val"), count=30)
    with app.app_context():
        expected = [row.id for row in db.session.scalars(db.select(Evaluation).where(
            Evaluation.version == 2, Evaluation.dataset_id == 1, Evaluation.split == "test")
            .order_by(Evaluation.id.desc()))]
    assert len(expected) > 2
    seen, _ = walk(client, "/api/evaluations", "evaluations", "id", dataset_id=1, split="test", version=2)
    assert seen == expected


def test_feedback_pages_within_the_corrections(app, client):
    add_rows(app, lambda n: feedback(n, correct=n % 3 != 0), count=12)
    seen, _ = walk(client, "/api/feedback", "items", "id", kind="corrections")
    assert seen == [12, 9, 6, 3]


def test_the_limit_defaults_to_100_and_a_page_holds_no_more(app, client):
    add_rows(app, job, count=101)
    first = client.get("/api/jobs").get_json()
    assert [row["id"] for row in first["jobs"]] == list(range(101, 1, -1)) and first["next_before"] == 2
    last = client.get("/api/jobs?before=2").get_json()
    assert [row["id"] for row in last["jobs"]] == [1] and last["next_before"] is None
    assert client.get(f"/api/jobs?limit={MAX_LIMIT}").get_json()["next_before"] is None


BAD = [("limit", "0"), ("limit", "-1"), ("limit", "1.5"), ("limit", "true"), ("limit", "x"), ("limit", " 2"),
       ("limit", str(MAX_LIMIT + 1)), ("limit", "٣"), ("limit", "²"), ("before", "0"), ("before", "-3"),
       ("before", "2.0"), ("before", "false"), ("before", str(2**31)), ("before", str(2**63)),
       ("before", "9" * 5000), ("before", "1e3")]


@pytest.mark.parametrize("url", [entry[0] for entry in LISTS])
def test_a_bad_limit_or_cursor_is_refused_naming_the_field_in_english_and_chinese(client, url):
    for field, raw in BAD:
        english = client.get(url, query_string={field: raw})
        assert english.status_code == 400, (field, raw)
        assert english.get_json()["code"] == "invalid_field" and english.get_json()["field"] == field
        assert english.get_json()["error"].startswith(f"'{field}' must be a whole number from 1 to ")
        chinese = client.get(url, query_string={field: raw}, headers=ZH).get_json()
        assert chinese["field"] == field and chinese["error"].startswith(f"'{field}' 必须是 1 到 ")


@pytest.fixture
def admin(tmp_path):
    """An app with sign-in on, five users (the first an admin) and five tokens of the admin; the bearer
    header of the first token."""
    app = app_with_user(tmp_path, "boss", "correct horse 9", "admin")
    with app.app_context():
        for n in range(4):
            services.create_user(f"user-{n}", "correct horse 9", "viewer")
        boss = services.find_user("boss")
        secret = services.create_token(boss, "token-1")[1]
        for n in range(2, 6):
            services.create_token(boss, f"token-{n}")
    return app, {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize("url,key", [("/api/users", "users"), ("/api/tokens", "tokens")])
def test_users_and_tokens_are_walked_newest_first(admin, url, key):
    app, bearer = admin
    client = app.test_client()
    everything = client.get(url, headers=bearer).get_json()
    ids = [row["id"] for row in everything[key]]
    assert len(ids) == 5 and ids == sorted(ids, reverse=True) and everything["next_before"] is None
    seen, nexts = walk(client, url, key, "id", headers=bearer)
    assert seen == ids and nexts == [ids[1], ids[3], None]
    refused = client.get(url, query_string={"limit": "1.5"}, headers=bearer)
    assert refused.status_code == 400 and refused.get_json()["field"] == "limit"
