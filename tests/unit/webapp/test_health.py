"""Health reports each part; with Redis unreachable it says so with a 503."""
from webapp.datasets.sandbox import sandbox_state


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
