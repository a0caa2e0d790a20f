"""Hostile and random input to every API endpoint: never a 5xx, always a JSON error with a code."""
from __future__ import annotations

import io
import json
import random

import pytest

from tests.images import class_files, noisy_image, zip_bytes

ODD_TEXT = ["", " ", "\0", "../../etc/passwd", "玫瑰/花.jpg", "e\u0301", "🌹" * 3, "a" * 5000, "NaN",
            "-0", "1e309", "٣", "0x10", "true", "null", "[]", "{}", "%00", "<script>", "C:\\x.png", "/abs.png"]
ODD_VALUES = [None, True, False, 0, -1, 1.5, float("inf"), 2**64, -(2**63), 10**400, "", "x", "0", "1", [], [1],
              {}, {"a": 1}, "\0", "蓝色", "gpu", "any"]
OPTIONS = ["backbone", "pretrained", "epochs", "batch_size", "learning_rate", "image_size", "optimizer",
           "freeze_backbone", "label_smoothing", "early_stopping_patience", "weight_decay", "warmup_epochs",
           "grad_clip", "seed", "dataset_id", "epoch", "augmentation", "randaugment_n", "randaugment_m",
           "random_erasing", "mixup_alpha", "cutmix_alpha", "teacher_version", "distill_temperature",
           "distill_weight", "init_version", "export_int8", "int8_max_accuracy_drop", "device", ""]


def check(response) -> None:
    """No 5xx, except that the unit app has no Redis: a valid job is refused with 503 queue_unavailable."""
    body = response.get_json(silent=True)
    unavailable = response.status_code == 503 and (body or {}).get("code") == "queue_unavailable"
    assert response.status_code < 500 or unavailable, response.get_data(as_text=True)[:300]
    if response.status_code >= 400:
        assert isinstance(body, dict) and body.get("code") and body.get("error"), response.get_data()[:300]


def safe_json(value) -> str:
    try:
        return json.dumps(value)
    except (OverflowError, ValueError):
        return json.dumps(str(value))


@pytest.fixture
def dataset_id(client):
    response = client.post("/api/datasets", content_type="multipart/form-data", data={
        "archive": (io.BytesIO(zip_bytes(class_files({"a": 2, "b": 2}))), "d.zip")})
    return response.get_json()["id"]


def test_job_options_fuzz(client, dataset_id):
    rng = random.Random(7)
    for _ in range(300):
        body = {rng.choice(OPTIONS): rng.choice(ODD_VALUES) for _ in range(rng.randint(0, 4))}
        if rng.random() < 0.7:
            body["dataset_id"] = dataset_id
        check(client.post("/api/jobs", data=safe_json(body), content_type="application/json"))
    for raw in ["", "{", "[1,2", "\"text\"", "1e999", "NaN", "{\"dataset_id\": NaN}", "\xff\xfe", "null"]:
        check(client.post("/api/jobs", data=raw, content_type="application/json"))
        check(client.post("/api/jobs", data=raw, content_type="text/plain"))


def test_recommendation_query_fuzz(client, dataset_id):
    """Odd values for any option in the recommendation's query, and odd dataset ids in its URL."""
    rng = random.Random(17)
    for _ in range(200):
        query = {rng.choice(OPTIONS): rng.choice(ODD_TEXT + [str(v) for v in ODD_VALUES]) for _ in range(rng.randint(1, 4))}
        response = client.get(f"/api/datasets/{dataset_id}/recommendation", query_string=query)
        check(response)
        if response.status_code == 200:
            assert response.get_json()["config"]["epochs"] >= 1
    for text in ODD_TEXT:
        check(client.get(f"/api/datasets/{text.replace('/', '%2F')}/recommendation"))


def test_timing_probe_fuzz(client):
    """Odd bodies for POST /api/timing-probes: a 4xx naming the problem (or 503: the unit app has no Redis)."""
    rng = random.Random(19)
    fields = ["backbone", "image_size", "batch_size", "epochs", "dataset_id", ""]
    for _ in range(150):
        body = {rng.choice(fields): rng.choice(ODD_VALUES + [8, 64, 512, 1024, 2048, "resnet18"])
                for _ in range(rng.randint(0, 4))}
        check(client.post("/api/timing-probes", data=safe_json(body), content_type="application/json"))
    for raw in ["", "{", "[1,2", "\"text\"", "1e999", "NaN", "\xff\xfe", "null", "[]"]:
        check(client.post("/api/timing-probes", data=raw, content_type="application/json"))
        check(client.post("/api/timing-probes", data=raw, content_type="text/plain"))


def test_upload_fuzz(client):
    rng = random.Random(11)
    for _ in range(40):
        data = {"name": rng.choice(ODD_TEXT)}
        kind = rng.choice(["archive", "files", "both", "none", "junk"])
        if kind in ("archive", "both"):
            data["archive"] = (io.BytesIO(rng.choice([b"", b"PK\x03\x04junk", rng.randbytes(300),
                                                      zip_bytes({rng.choice(ODD_TEXT) or "x": b"1"})])),
                               rng.choice(ODD_TEXT) or "a.zip")
        if kind in ("files", "both"):
            data["files"] = [(io.BytesIO(rng.choice([noisy_image(i, (9, 9, 9)), rng.randbytes(50), b""])),
                              rng.choice(ODD_TEXT) or "f") for i in range(rng.randint(1, 4))]
        if kind == "junk":
            data["other"] = rng.choice(ODD_TEXT)
        check(client.post("/api/datasets", data=data, content_type="multipart/form-data"))
    check(client.post("/api/datasets", data=b"--x\r\nbroken", content_type="multipart/form-data; boundary=x"))
    check(client.post("/api/datasets", data="{}", content_type="application/json"))


def test_predict_and_id_routes_fuzz(served):
    client = served.test_client()
    rng = random.Random(5)
    for _ in range(60):
        form = {key: rng.choice(ODD_TEXT) for key in rng.sample(["version", "top_k", "name"], rng.randint(0, 3))}
        payload = rng.choice([noisy_image(3, (1, 2, 3)), rng.randbytes(rng.randint(0, 400)), b"GIF89a" + b"\0" * 20])
        form["image"] = (io.BytesIO(payload), rng.choice(ODD_TEXT) or "x")
        check(client.post("/api/predict", data=form, content_type="multipart/form-data"))
    for path in ["/api/jobs", "/api/datasets", "/api/models", "/api/backbones"]:
        for text in ODD_TEXT[:12]:
            check(client.get(path, query_string={"status": text, "version": text}))
    for text in ODD_TEXT:
        for method, path in [("GET", "/api/datasets/{}"), ("DELETE", "/api/models/{}"), ("POST", "/api/jobs/{}/cancel"),
                             ("POST", "/api/jobs/{}/resume"), ("GET", "/api/jobs/{}/confusion/val/0/0"),
                             ("GET", "/api/jobs/1/confusion/{}/0/0"),
                             ("GET", "/api/jobs/{}/events"), ("PUT", "/api/models/{}")]:
            check(client.open(path.format(text.replace("/", "%2F")), method=method))


def test_account_password_and_token_expiry_fuzz(tmp_path, redis_url_empty):
    """The signed-in person's own endpoints: odd passwords, odd token lifetimes, odd bodies."""
    from tests.factories import app_with_user, form_token

    app = app_with_user(tmp_path, "ann", "first password", "viewer", REDIS_URL=redis_url_empty)
    client = app.test_client()
    client.post("/sign-in", data={"username": "ann", "password": "first password", "csrf_token": form_token(client)})
    csrf = {"X-CSRF-Token": form_token(client, "/account")}
    rng = random.Random(21)
    for _ in range(6):  # each string is checked as a password (scrypt): few rounds
        body = {"current_password": rng.choice(ODD_VALUES + ["first password"]), "password": rng.choice(ODD_VALUES)}
        check(client.post("/api/me/password", data=safe_json(body), content_type="application/json", headers=csrf))
    for _ in range(40):
        body = {"name": rng.choice(["t"] + ODD_TEXT), "expires_in_days": rng.choice(ODD_VALUES + [30, 3650, 3651])}
        check(client.post("/api/tokens", data=safe_json(body), content_type="application/json", headers=csrf))
    for raw in ["", "{", "1e999", "NaN", "\xff\xfe", "null", "[]"]:
        for path in ("/api/me/password", "/api/tokens"):
            check(client.post(path, data=raw, content_type="application/json", headers=csrf))
    check(client.delete("/api/me/sessions", data="{", content_type="application/json", headers=csrf))
    assert client.get("/api/me").json["code"] == "unauthorized"


RELEASE_FIELDS = ["production", "candidate", "candidate_share", "revision", "share", ""]


def test_release_and_version_settings_fuzz(served):
    client = served.test_client()
    rng = random.Random(9)
    for _ in range(200):
        body = {rng.choice(RELEASE_FIELDS): rng.choice(ODD_VALUES + [1, 2, 50]) for _ in range(rng.randint(0, 3))}
        check(client.put("/api/release", data=safe_json(body), content_type="application/json"))
        check(client.put("/api/models/1", data=safe_json({"abstain_threshold": rng.choice(ODD_VALUES)}),
                         content_type="application/json"))
    for raw in ["", "{", "[1,2", "1e999", "NaN", "{\"production\": NaN}", "\xff\xfe", "null"]:
        check(client.put("/api/release", data=raw, content_type="application/json"))
        check(client.put("/api/models/1", data=raw, content_type="application/json"))
    for text in ODD_TEXT:
        check(client.get("/api/release/stats", query_string={"hours": text}))
        if text.isascii() and text.isprintable():  # what an HTTP header can carry
            check(client.post("/api/predict", headers={"X-Client-Id": text}, content_type="multipart/form-data",
                              data={"image": (io.BytesIO(noisy_image(3, (1, 2, 3))), "x.png")}))
    assert client.get("/api/release").get_json()["production"] == 1  # nothing above could change it
    check(client.post("/api/release/rollback"))


CLASS_NAMES = ["red", "green", "blue", "violet", ""]


def test_class_thresholds_fuzz(served):
    """Odd per-class thresholds, calibrations and suggestion queries: refused in words, never a 5xx."""
    client = served.test_client()
    rng = random.Random(26)
    for _ in range(120):
        values = {rng.choice(CLASS_NAMES + ODD_TEXT): rng.choice(ODD_VALUES + [0.5]) for _ in range(rng.randint(0, 3))}
        body = {"class_thresholds": values if rng.random() < 0.8 else rng.choice(ODD_VALUES)}
        if rng.random() < 0.3:
            body["calibration"] = rng.choice(ODD_VALUES + [{"precision": rng.choice(ODD_VALUES + [0.9]),
                                                            "evaluation_id": rng.choice(ODD_VALUES + [1])}])
        check(client.put("/api/models/1", data=safe_json(body), content_type="application/json"))
        check(client.get(f"/api/models/{rng.choice([1, 2, 2**40])}/class-thresholds/suggestion",
                         query_string={"precision": rng.choice(ODD_TEXT + ["0.9"]), "split": rng.choice(ODD_TEXT)}))
    assert set(client.get("/api/models/1").get_json()["class_thresholds"]) <= {"red", "green", "blue"}


FEEDBACK_FIELDS = ["correct", "label", "mode", "version", "name", "include", "scope", ""]


def test_feedback_fuzz(served):
    client = served.test_client()
    rng = random.Random(13)
    answer = client.post("/api/predict", content_type="multipart/form-data",
                         data={"image": (io.BytesIO(noisy_image(3, (1, 2, 3))), "x.png")}).get_json()
    for _ in range(150):
        body = {rng.choice(FEEDBACK_FIELDS): rng.choice(ODD_VALUES + ODD_TEXT) for _ in range(rng.randint(0, 3))}
        target = rng.choice([answer["id"], rng.choice(ODD_TEXT).replace("/", "%2F") or "x"])
        check(client.post(f"/api/predictions/{target}/feedback", data=safe_json(body), content_type="application/json"))
        check(client.post("/api/feedback/dataset", data=safe_json(body), content_type="application/json"))
        check(client.post("/api/feedback/purge", data=safe_json(body), content_type="application/json"))
    for raw in ["", "{", "[1,2", "1e999", "NaN", "{\"correct\": NaN}", "\xff\xfe", "null"]:
        check(client.post(f"/api/predictions/{answer['id']}/feedback", data=raw, content_type="application/json"))
        check(client.post("/api/feedback/dataset", data=raw, content_type="application/json"))
    for text in ODD_TEXT:
        check(client.get("/api/feedback", query_string={"version": text, "limit": text, "kind": text}))
        check(client.get(f"/api/feedback/{text.replace('/', '%2F')}/image", query_string={"thumbnail": text}))



REVIEW_FIELDS = ["enabled", "margin", "sample_rate", "hourly_cap", "keep_anonymous", "label", "dismiss", "version", ""]


def test_review_queue_fuzz(served):
    """Odd settings, decisions, revision requests, queries and item ids for the review queue."""
    client = served.test_client()
    client.put("/api/review/settings", json={"enabled": True, "margin": 1, "sample_rate": 1})
    client.post("/api/predict", content_type="multipart/form-data",
                data={"image": (io.BytesIO(noisy_image(3, (1, 2, 3))), "x.png")})
    item = client.get("/api/review/items").get_json()["items"][0]["id"]
    rng = random.Random(29)
    for _ in range(150):
        body = {rng.choice(REVIEW_FIELDS): rng.choice(ODD_VALUES + ODD_TEXT) for _ in range(rng.randint(0, 3))}
        target = rng.choice([str(item), rng.choice(ODD_TEXT).replace("/", "%2F") or "x"])
        check(client.put("/api/review/settings", data=safe_json(body), content_type="application/json"))
        check(client.post(f"/api/review/items/{target}", data=safe_json(body), content_type="application/json"))
        check(client.post("/api/review/revision", data=safe_json(body), content_type="application/json"))
    for raw in ["", "{", "[1,2", "1e999", "NaN", "{\"margin\": NaN}", "\xff\xfe", "null"]:
        check(client.put("/api/review/settings", data=raw, content_type="application/json"))
        check(client.post(f"/api/review/items/{item}", data=raw, content_type="application/json"))
        check(client.post("/api/review/revision", data=raw, content_type="application/json"))
    for text in ODD_TEXT:
        check(client.get("/api/review/items", query_string={"status": text, "version": text, "limit": text}))
        check(client.get(f"/api/review/items/{text.replace('/', '%2F')}/image", query_string={"thumbnail": text}))

PAGED = ["/api/jobs", "/api/datasets", "/api/models", "/api/evaluations", "/api/feedback", "/api/tokens", "/api/users",
         "/api/review/items"]
PAGE_TEXT = ODD_TEXT + [str(value) for value in ODD_VALUES] + ["1", "500", "501", "2147483647", "2147483648",
                                                                 str(2**63), "+1", " 1", "1 ", "01", "1_0", "²"]


def test_paging_query_fuzz(client, dataset_id):
    """Odd limits and cursors on every paged list, alone and beside its filters: a page with its
    `next_before`, or a 4xx naming the field at fault."""
    rng = random.Random(23)
    for _ in range(250):
        names = rng.sample(["limit", "before", "status", "dataset_id", "split", "version", "kind"], rng.randint(1, 3))
        response = client.get(rng.choice(PAGED), query_string={name: rng.choice(PAGE_TEXT) for name in names})
        check(response)
        body = response.get_json()
        if response.status_code == 200:
            assert "next_before" in body
        elif body["code"] == "invalid_field":
            assert body["field"] in names
    for text in PAGE_TEXT:  # "²" is a digit to str.isdigit, yet no number to int()
        check(client.get("/api/release/stats", query_string={"hours": text}))


def test_reference_and_document_fuzz(client):
    """The document and the reference page's files take no input but their path: odd paths are a 404, never a
    file outside Swagger UI's folder, and odd queries or bodies change nothing in the document."""
    document = client.get("/api/openapi.json").get_json()
    for text in ODD_TEXT:
        check(client.get("/api/docs/assets/" + text.lstrip("/")))
        assert client.get("/api/openapi.json", query_string={"x": text}).get_json() == document
    for name in ("../../../etc/passwd", "..%2f..%2fsetup.cfg", "%2e%2e/%2e%2e/webapp/contract.py", "\\..\\x"):
        answer = client.get("/api/docs/assets/" + name)
        assert answer.status_code == 404 and answer.get_json()["code"] == "not_found", name
    assert client.post("/api/openapi.json", json={}).status_code == 405


REVISION_FIELDS = ["base", "fix", "kinds", "drop", "relabel", "move", "comment", "image", "class_name", "split", ""]


def test_revision_bodies_and_urls_fuzz(client, dataset_id):
    """Odd bodies for a new revision, odd revision numbers, queries and label-search bodies: a 4xx with words,
    and nothing made by a refusal beyond what a valid body makes."""
    rng = random.Random(29)
    odd_items = ODD_VALUES + [[{"image": 1, "class_name": "a"}], [{"image": "1", "split": "val"}],
                              [{"image": 2**70, "split": "train"}], ["blurry", "x"], "remove_duplicates",
                              "drop_flagged"]
    for _ in range(250):
        body = {rng.choice(REVISION_FIELDS): rng.choice(odd_items) for _ in range(rng.randint(0, 4))}
        check(client.post(f"/api/datasets/{dataset_id}/revisions", data=safe_json(body),
                          content_type="application/json"))
    for raw in ["", "{", "[1,2", "\"text\"", "1e999", "NaN", "\xff\xfe", "null", "[]"]:
        check(client.post(f"/api/datasets/{dataset_id}/revisions", data=raw, content_type="application/json"))
        check(client.post(f"/api/datasets/{dataset_id}/label-searches", data=raw, content_type="application/json"))
    for _ in range(100):
        body = {rng.choice(["revision", "folds", "x"]): rng.choice(ODD_VALUES) for _ in range(rng.randint(0, 3))}
        check(client.post(f"/api/datasets/{dataset_id}/label-searches", data=safe_json(body),
                          content_type="application/json"))
    for text in ODD_TEXT + ["0", "-1", str(2**63), str(2**64)]:
        number = text.replace("/", "%2F")
        for path in (f"revisions/{number}", f"revisions/{number}/diff", f"revisions/{number}/archive",
                     f"label-searches/{number}"):
            check(client.get(f"/api/datasets/{dataset_id}/{path}"))
        check(client.delete(f"/api/datasets/{dataset_id}/revisions/{number}"))
        check(client.post(f"/api/datasets/{dataset_id}/label-searches/{number}/cancel"))
        for query in ("against", "revision"):
            check(client.get(f"/api/datasets/{dataset_id}/revisions/1/diff", query_string={query: text}))
            check(client.get(f"/api/datasets/{dataset_id}/quality", query_string={query: text}))
        check(client.get(f"/api/datasets/{dataset_id}/label-searches/plan", query_string={"folds": text}))
    numbers = [revision["number"] for revision in
               client.get(f"/api/datasets/{dataset_id}/revisions").get_json()["revisions"]]
    assert numbers == sorted(numbers, reverse=True) and numbers[-1] == 1


BATCH_FIELDS = ["dataset_id", "revision", "version", "top_k", "x", ""]


def test_batch_prediction_fuzz(served, dataset_id):
    """Odd batch requests (JSON bodies, form fields beside an archive, broken archives) and odd run ids: a 4xx with
    words (the unit app has no Redis: a valid run is refused with 503 queue_unavailable)."""
    client = served.test_client()
    rng = random.Random(41)
    for _ in range(120):
        body = {rng.choice(BATCH_FIELDS): rng.choice(ODD_VALUES) for _ in range(rng.randint(0, 4))}
        if rng.random() < 0.5:
            body["dataset_id"] = dataset_id
        check(client.post("/api/batch-predictions", data=safe_json(body), content_type="application/json"))
    for raw in ["", "{", "[1,2", "\"text\"", "1e999", "NaN", "\xff\xfe", "null", "[]"]:
        check(client.post("/api/batch-predictions", data=raw, content_type="application/json"))
        check(client.post("/api/batch-predictions", data=raw, content_type="text/plain"))
    archive = zip_bytes({"a.png": noisy_image(1, (200, 30, 30))})
    for _ in range(40):
        fields = {rng.choice(BATCH_FIELDS[:4]): rng.choice(ODD_TEXT) for _ in range(rng.randint(1, 3))}
        payload = rng.choice([archive, archive[:40], b"PK\x05\x06" + b"\0" * 18, b""])
        check(client.post("/api/batch-predictions", content_type="multipart/form-data",
                          data={"archive": (io.BytesIO(payload), "x.zip"), **fields}))
    for text in ODD_TEXT + ["0", "-1", str(2**63), str(2**64)]:
        number = text.replace("/", "%2F")
        for path in (number, f"{number}/results.csv", f"{number}/results.jsonl"):
            check(client.get(f"/api/batch-predictions/{path}"))
        check(client.post(f"/api/batch-predictions/{number}/cancel"))
        check(client.delete(f"/api/batch-predictions/{number}"))
        check(client.get("/api/batch-predictions", query_string={"before": text, "limit": text}))


def test_predict_explain_fuzz(served):
    """`explain` on POST /api/predict: odd values are refused as a field, valid ones answer an explanation."""
    client = served.test_client()
    for text in ODD_TEXT + ["1", "png", "0", "2", "PNG"]:
        form = {"image": (io.BytesIO(noisy_image(3, (1, 2, 3))), "x.png"), "explain": text}
        answer = client.post("/api/predict", data=form, content_type="multipart/form-data")
        check(answer)
        check(client.post("/api/predict", query_string={"explain": text}, content_type="multipart/form-data",
                          data={"image": (io.BytesIO(noisy_image(3, (1, 2, 3))), "x.png")}))
        if text in ("1", "png"):
            assert answer.get_json()["explanation"]["size"] == [1, 1]
        for path in (f"/api/models/1/explanations?image={text}", "/api/models/{}/explanations?image=1"):
            check(client.get(path.format(text.replace("/", "%2F").replace("?", "%3F"))))


AUDIT_FILTERS = ["actor", "action", "subject_type", "subject_id", "address", "since", "until", "limit", "before"]
AUDIT_TEXT = ODD_TEXT + ["2026-12-06", "2026-12-06T07:00:00Z", "2026-12-06T07:00:00+08:00", "2026-13-40", "user.",
                         "%", "_", "a" * 201, "9999-12-31T23:59:59Z", "0001-01-01",
                         "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]


def test_audit_log_query_fuzz(client):
    """Odd filters on GET /api/audit: a page of entries, or a 4xx naming the filter at fault."""
    rng = random.Random(31)
    for _ in range(200):
        names = rng.sample(AUDIT_FILTERS, rng.randint(1, 4))
        response = client.get("/api/audit", query_string={name: rng.choice(AUDIT_TEXT) for name in names})
        check(response)
        body = response.get_json()
        if response.status_code == 200:
            assert isinstance(body["entries"], list) and "next_before" in body
        else:
            assert body["field"] in names


# --- webhooks ---------------------------------------------------------------------------------------------
WEBHOOK_FIELDS = ["url", "description", "events", "enabled", "secret", ""]
WEBHOOK_VALUES = ODD_VALUES + ODD_TEXT + [["test"], ["job.failed", "nope"], "https://hooks.example/in",
                                          "http://u:p@hooks.example/", "ftp://hooks.example/", "http://[::1", "http://:80"]


def test_webhook_fuzz(client):
    """Odd endpoint bodies (new and changed), odd endpoint and delivery ids: a 4xx with words, never a 5xx."""
    rng = random.Random(27)
    endpoint = client.post("/api/webhooks", json={"url": "https://hooks.example/in", "events": ["test"]}).get_json()
    delivery = client.post(f"/api/webhooks/{endpoint['id']}/test").get_json()
    for _ in range(150):
        body = {rng.choice(WEBHOOK_FIELDS): rng.choice(WEBHOOK_VALUES) for _ in range(rng.randint(0, 4))}
        check(client.post("/api/webhooks", data=safe_json(body), content_type="application/json"))
        check(client.put(f"/api/webhooks/{endpoint['id']}", data=safe_json(body), content_type="application/json"))
    for raw in ["", "{", "[1,2", "\"text\"", "1e999", "NaN", "\xff\xfe", "null", "[]"]:
        check(client.post("/api/webhooks", data=raw, content_type="application/json"))
        check(client.put(f"/api/webhooks/{endpoint['id']}", data=raw, content_type="text/plain"))
    for text in ODD_TEXT + ["0", "-1", str(2**63), str(2**64)]:
        number = text.replace("/", "%2F")
        for path in (number, f"{number}/deliveries", f"{endpoint['id']}/deliveries/{number}/resend"):
            check(client.get(f"/api/webhooks/{path}"))
        for action in ("rotate", "test", f"deliveries/{delivery['id']}/resend"):
            check(client.post(f"/api/webhooks/{number}/{action}"))
        check(client.put(f"/api/webhooks/{number}", json={"enabled": False}))
        check(client.delete(f"/api/webhooks/{number}"))
        check(client.get(f"/api/webhooks/{endpoint['id']}/deliveries", query_string={"before": text, "limit": text}))


def test_backups_fuzz(client):
    """GET /api/backups takes no input: odd queries, methods and paths under it are a 4xx with a code."""
    rng = random.Random(27)
    for _ in range(30):
        check(client.get("/api/backups", query_string={rng.choice(ODD_TEXT): rng.choice(ODD_TEXT)}))
    for method in ("POST", "PUT", "DELETE"):
        check(client.open("/api/backups", method=method, data=rng.choice(ODD_TEXT), content_type="application/json"))
    for text in ODD_TEXT[:8]:
        check(client.get(f"/api/backups/{text.replace('/', '%2F')}"))


def test_metrics_access_fuzz(tmp_path, redis_url_empty):
    """GET /metrics with sign-in on: odd bearer tokens, schemes and queries are refused in JSON (never a page,
    never the figures); the scrape token alone opens it, whatever the query; other methods are a JSON 405."""
    from tests.factories import app_with_user

    app = app_with_user(tmp_path, "ann", "first password", "admin", REDIS_URL=redis_url_empty,
                        METRICS_TOKEN="scrape-token-1")
    client = app.test_client()
    rng = random.Random(27)
    suffixes = [text for text in ODD_TEXT if text.replace("\0", "").strip()]  # the token with more after it
    for _ in range(40):
        header = rng.choice(["Bearer " + rng.choice(ODD_TEXT), "Bearer", "Basic eDp5", rng.choice(ODD_TEXT),
                             "Bearer scrape-token-1" + rng.choice(suffixes), "bearer  scrape-token-"])
        answer = client.get("/metrics", headers={"Authorization": header.replace("\0", "")},
                            query_string={"name[]": rng.choice(ODD_TEXT)})
        check(answer)
        assert answer.status_code in (401, 403) and "studio_" not in answer.get_data(as_text=True)
    answer = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-1"},
                        query_string={"x": rng.choice(ODD_TEXT)})
    assert answer.status_code == 200 and "studio_background_work" in answer.get_data(as_text=True)
    for method in ("post", "put", "delete"):
        answer = getattr(client, method)("/metrics", data="{", headers={"Authorization": "Bearer scrape-token-1"})
        check(answer)
        assert answer.status_code == 405
