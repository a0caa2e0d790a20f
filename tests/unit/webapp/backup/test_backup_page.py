"""The Workers page lists scheduled backups for admins only, in the reader's language."""
from __future__ import annotations

from tests.factories import app_with_user, form_token


def test_admins_see_the_backups_section_and_viewers_do_not(tmp_path, client, redis_url_empty):
    page = client.get("/workers", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)  # sign-in off: admin
    assert "定时备份" in page and "js/backups.js" in page and "BACKUP_EVERY_HOURS" in page

    app = app_with_user(tmp_path / "signed", "vic", "a password 1", "viewer", REDIS_URL=redis_url_empty)
    viewer = app.test_client()
    viewer.post("/sign-in", data={"username": "vic", "password": "a password 1", "csrf_token": form_token(viewer)})
    page = viewer.get("/workers", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Workers" in page and "Scheduled backups" not in page and "js/backups.js" not in page
    assert viewer.get("/api/backups").status_code == 403
