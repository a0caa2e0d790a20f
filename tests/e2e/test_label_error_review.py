"""A person looks for likely label errors in a dataset: reads the plan, starts a real search on the stack's
worker and watches it, then reviews a search's findings (accept one suggestion, drop one image) and makes a
new revision, in English and in Chinese."""
from __future__ import annotations

import io
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import open_page
from tests.images import noisy_image, zip_bytes
from tests.stack import upload_dataset
from webapp.extensions import db
from webapp.models import DatasetImage, DatasetRevision, LabelSearch, utcnow

pytestmark = pytest.mark.e2e
TINY = {"red": (220, 40, 40), "blue": (40, 60, 220)}
LANGUAGES = {
    "en": {"locale": "en-US", "headers": {"Accept-Language": "en-US,en;q=0.9"}, "made": "Revision 2 made",
           "plan": "trainings of"},
    "zh": {"locale": "zh-CN", "headers": {"Accept-Language": "zh-CN,zh;q=0.9"}, "made": "已生成修订版 2",
           "plan": "次"},
}


@pytest.fixture
def tiny_dataset(stack_client):
    """Two classes of four 16 px images; deleted again when the test ends (the stack is shared)."""
    files = {f"{name}/{n}.png": noisy_image(7_000 + i * 100 + n, colour, size=(16, 16))
             for i, (name, colour) in enumerate(TINY.items()) for n in range(4)}
    dataset = upload_dataset(stack_client, {"archive": (io.BytesIO(zip_bytes(files)), "tiny.zip")})
    assert dataset["status"] == "ready"
    yield dataset["id"]
    assert stack_client.delete(f"/api/datasets/{dataset['id']}").status_code == 200


def finished_search(app, dataset_id: int) -> tuple[int, list[tuple[int, str]]]:
    """A search of revision 1 that ended doubting one image of each class, as the worker leaves it; its id and
    the (id, path) of the red then the blue image it doubts."""
    with app.app_context():
        revision = db.session.scalar(db.select(DatasetRevision).where(DatasetRevision.dataset_id == dataset_id,
                                                                      DatasetRevision.number == 1))
        images = db.session.scalars(db.select(DatasetImage).where(DatasetImage.revision_id == revision.id,
                                                                  DatasetImage.split == "train")
                                    .order_by(DatasetImage.original_path)).all()
        red, blue = [next(image for image in images if image.class_name == name) for name in TINY]
        issues = [{"image_id": image.id, "given": image.class_name, "suggested": other, "given_probability": 0.1,
                   "suggested_probability": 0.9 - 0.2 * n, "score": 0.8 - 0.2 * n}
                  for n, (image, other) in enumerate(((red, "blue"), (blue, "red")))]
        search = LabelSearch(dataset_id=dataset_id, revision_id=revision.id, revision=1, status="succeeded",
                             progress=1.0, phase="done", issues=issues, finished_at=utcnow(),
                             config={"folds": 2, "options": {"backbone": "resnet18"}})
        doubted = [(red.id, red.original_path), (blue.id, blue.original_path)]
        db.session.add(search)
        db.session.commit()
        return search.id, doubted


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_plan_search_review_and_revise(browser, live_server, stack_app, stack_client, tiny_dataset, language):
    words = LANGUAGES[language]
    page = open_page(browser, viewport={"width": 1280, "height": 900}, locale=words["locale"],
                     extra_http_headers=words["headers"])
    try:
        page.goto(f"{live_server}/datasets/{tiny_dataset}/label-errors")
        page.select_option('#search-form select[name="folds"]', "2")
        plan = page.locator("#plan-text")
        expect(plan).to_contain_text(words["plan"])
        expect(page.locator("#start-search")).to_be_enabled()
        expect(page.locator("#searches-card .empty")).to_be_visible()

        # a real search of the tiny dataset on the stack's worker, followed live
        page.click("#start-search")
        expect(page.locator("#search-card")).to_be_visible()
        page.wait_for_url(re.compile(r"label-errors\?search=\d+$"))
        expect(page.locator("#search-status")).to_have_class(re.compile("pill-succeeded"), timeout=180_000)
        expect(page.locator("#issue-list, #no-issues").first).to_be_visible()
        expect(page.locator("#searches-table tbody tr")).to_have_count(1)

        # a search that doubted one image of each class, reviewed: accept one suggestion, drop the other
        search_id, ((red_id, red_path), (blue_id, blue_path)) = finished_search(stack_app, tiny_dataset)
        page.goto(f"{live_server}/datasets/{tiny_dataset}/label-errors?search={search_id}")
        items = page.locator("#issue-list .issue")
        expect(items).to_have_count(2)
        expect(items.first).to_contain_text(red_path)
        expect(page.locator("#make-revision")).to_be_disabled()
        page.check(f'input[name="decision-{red_id}"][value="accept"]')
        page.check(f'input[name="decision-{blue_id}"][value="drop"]')
        expect(items.nth(1)).to_have_attribute("data-decision", "drop")
        page.fill('#revise-form input[name="comment"]', "checked by eye")
        page.click("#make-revision")
        expect(page.locator("#revision-done")).to_contain_text(words["made"])
        expect(page.locator("#revision-done a")).to_have_attribute("href", f"/datasets/{tiny_dataset}")
        expect(page.locator('#search-form select[name="revision"]')).to_have_value("2")
        assert page.js_errors == []
    finally:
        page.context.close()

    revision = stack_client.get(f"/api/datasets/{tiny_dataset}/revisions/2").get_json()
    assert revision["parent"] == 1 and revision["comment"] == "checked by eye"
    assert revision["changes"] == {"added": 0, "removed": 1, "relabelled": 1, "moved": 0}
    diff = stack_client.get(f"/api/datasets/{tiny_dataset}/revisions/2/diff").get_json()
    assert [(item["path"], item["to"]) for item in diff["relabelled"]] == [(red_path, "blue")]
    assert [item["path"] for item in diff["removed"]] == [blue_path]
