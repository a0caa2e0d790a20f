"""Health reports each part; with Redis unreachable it says so with a 503."""
from tests.stack import app_config
from webapp import create_app
from webapp.database import upgrade_schema
from webapp.datasets import sandbox
from webapp.datasets.sandbox import sandbox_state
from worker.beacon import WorkerBeacon


def test_health_reports_redis_down(client):
    response = client.get("/api/health")
    assert response.status_code == 503
    assert response.get_json() == {"status": "degraded", "database": "ok", "redis": "down",
                                   "workers": [], "training_workers": 0, "services_down": [], "visualdl": None,
                                   "ingest_sandbox": sandbox_state("auto")}


def test_pages_render_with_health_badge(client):
    page = client.get("/datasets").get_data(as_text=True)
    assert 'id="health-badge"' in page and "No datasets yet" in page
    assert client.get("/").headers["Location"].endswith("/datasets")


def test_unknown_page_is_html_404(client):
    response = client.get("/datasets/12345")
    assert response.status_code == 404
    assert "text/html" in response.content_type and "Dataset 12345 does not exist." in response.get_data(as_text=True)
    response = client.get("/no/such/page")
    assert response.status_code == 404 and "Not found." in response.get_data(as_text=True)


def test_health_reports_the_sandbox_of_the_ingest_workers_not_of_the_web_process(tmp_path, redis_url_empty,
                                                                                 monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_problem", lambda: None)  # the web process itself could sandbox
    app = create_app(app_config(tmp_path, REDIS_URL=redis_url_empty))
    upgrade_schema(app)
    client = app.test_client()
    assert client.get("/api/health").get_json()["ingest_sandbox"] == "sandboxed"  # no ingest worker: its own
    app.extensions.pop("health_workers")
    WorkerBeacon(redis_url_empty, "ingest-1@box", ["ingest"], None, sandbox="sandboxed").beat()
    WorkerBeacon(redis_url_empty, "ingest-2@other", ["ingest"], None, sandbox="limits_only").beat()
    WorkerBeacon(redis_url_empty, "trainer-1@box", ["training"], "cpu").beat()
    report = client.get("/api/health").get_json()
    assert report["ingest_sandbox"] == "limits_only"  # the weakest of the workers that check uploads
    assert [(w["name"], w.get("sandbox")) for w in report["workers"]] == [
        ("ingest-1@box", "sandboxed"), ("ingest-2@other", "limits_only"), ("trainer-1@box", None)]
