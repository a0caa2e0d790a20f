"""Every page of the studio, populated, at a phone's and a laptop's size in English and Chinese: nothing scrolls
sideways and nothing sticks out of its card. The pages come from the app's URL map, so a new page is taken too;
the screenshots go to screenshots/ (git-ignored) for a reviewer to look at."""
from __future__ import annotations

import io
import shutil
from contextlib import ExitStack

import numpy as np
import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from engine.metrics import per_class_report
from tests.e2e.test_accessibility import FIRST_RUN, NOT_FOUND, html_pages, page_paths, severe_violations
from tests.factories import register_bundle
from tests.images import class_files, zip_bytes
from tests.stack import DATABASE_FILE, app_config, serving, upload_dataset
from webapp import ROOT, create_app
from webapp.accounts import services as accounts
from webapp.extensions import db
from webapp.models import DatasetImage, EpochMetric, Job, ModelVersion, utcnow
from webapp.storage import DataDir

pytestmark = pytest.mark.e2e

SHOTS = ROOT / "screenshots"
# Tables that fit their card on a laptop, without scrolling.
FIT_ON_LAPTOP = ["#models-table", "#per-class", "#test-per-class", "#epoch-table", "#jobs-table"]
SIZES = {"390x844": {"width": 390, "height": 844}, "1280x800": {"width": 1280, "height": 800}}
LANGUAGES = {"en": "en-US", "zh": "zh-CN"}
CLASSES = [f"{name}（{n}号样本，长名字）" for n, name in enumerate(
    ["金毛寻回犬", "拉布拉多犬", "德国牧羊犬", "英国短毛猫", "暹罗猫", "布偶猫", "红腹锦鸡", "丹顶鹤",
     "帝王企鹅", "大熊猫", "东北虎", "金丝猴"], start=1)]
DATASET_NAME = "二〇二六年春季生产线质检图片（第三批，已人工复核）"

# Elements that stick out of their card, or the document wider than the window. An element inside a container
# that scrolls or clips sideways (a table's wrapper) is that container's business: the container is checked.
LAYOUT_PROBLEMS = """([width, fitting]) => {
  const problems = [];
  for (const table of fitting.length ? document.querySelectorAll(fitting.join(", ")) : []) {
    const wrapper = table.closest(".scroll");
    if (wrapper && wrapper.scrollWidth > wrapper.clientWidth) {
      problems.push(`${table.id} needs ${wrapper.scrollWidth} px in a ${wrapper.clientWidth} px wide card`);
    }
  }
  if (document.documentElement.scrollWidth !== width) {
    problems.push(`document is ${document.documentElement.scrollWidth} px wide in a ${width} px window`);
  }
  const clips = (node) => ["auto", "scroll", "hidden"].includes(getComputedStyle(node).overflowX);
  const name = (node) => node.tagName.toLowerCase() + (node.id ? `#${node.id}` : "")
    + (node.classList.length ? "." + [...node.classList].join(".") : "");
  const reported = new Set();  // an element's descendants that stick out with it are not named again
  for (const card of document.querySelectorAll(".card")) {
    const box = card.getBoundingClientRect();
    if (box.width === 0) continue;
    if (card.scrollWidth > card.clientWidth + 1) {  // text too: what overflows a card widens its scroll area
      problems.push(`${name(card)} holds ${card.scrollWidth} px of content in ${card.clientWidth} px`);
    }
    for (const node of card.querySelectorAll("*")) {
      if (reported.has(node.parentElement)) { reported.add(node); continue; }
      const rect = node.getBoundingClientRect();
      if (rect.width === 0 || rect.height === 0) continue;
      let parent = node.parentElement, inside = false;
      while (parent && parent !== card) { if (clips(parent)) { inside = true; break; } parent = parent.parentElement; }
      if (inside) continue;
      if (rect.left < box.left - 1 || rect.right > box.right + 1) {
        reported.add(node);
        problems.push(`${name(node)} spans ${Math.round(rect.left)}-${Math.round(rect.right)} px, outside its card `
          + `${name(card)} (${Math.round(box.left)}-${Math.round(box.right)} px)`);
      }
    }
  }
  return problems;
}"""

# Every chart is drawn at the width it has on the page (its viewBox), and that width is above `least`.
CHARTS_DRAWN_WIDER_THAN = """(least) => [...document.querySelectorAll("svg.chart")].every((svg) => {
  const width = Math.round(svg.getBoundingClientRect().width);
  return width > least && width === Number(svg.getAttribute("viewBox").split(" ")[2]);
})"""


def _finished_job(dataset: dict) -> Job:
    """A succeeded job on the dataset with epochs, a confusion matrix and per-class figures on val and test."""
    rng = np.random.default_rng(24)
    size = len(CLASSES)
    matrices = [np.diag(rng.integers(8, 30, size)) + rng.integers(0, 3, (size, size)) for _ in range(2)]
    config = {"backbone": "mobilenet_v3_small", "pretrained": True, "freeze_backbone": False, "epochs": 8,
              "batch_size": 32, "image_size": 224, "learning_rate": 0.001, "optimizer": "adamw",
              "augmentation": "light", "early_stopping_patience": 3}
    job = Job(dataset_id=dataset["id"], dataset_name=DATASET_NAME, status="succeeded", phase="done", config=config,
              class_names=CLASSES, progress=1.0, epoch=8, step=12, steps=12, best_epoch=7, best_val_acc=0.91234,
              confusion=matrices[0].tolist(), per_class=per_class_report(matrices[0], CLASSES),
              test={"images": int(matrices[1].sum()), "accuracy": 0.9, "top5": 0.99, "loss": 0.31,
                    "confusion": matrices[1].tolist(), "per_class": per_class_report(matrices[1], CLASSES)},
              started_at=utcnow(), finished_at=utcnow())
    job.epochs = [EpochMetric(epoch=n, train_loss=2.4 / n, train_acc=1 - 0.5 / n, val_loss=2.5 / n,
                              val_acc=1 - 0.6 / n, val_top5=0.99, lr=0.001 / n, seconds=123.4,
                              images_per_s=1234.5) for n in range(1, 9)]
    return job


@pytest.fixture(scope="module")
def populated(stack, trained, first_run):
    """The stack's app with a dataset of 12 long Chinese class names, a finished job and its version, and
    several versions from the session's trained bundle; yields {page name: URL} and what the pages show."""
    app = create_app(stack["config"])
    client = app.test_client()
    files = {}
    for split, count, seed in (("train", 3, 24_000), ("val", 2, 24_100), ("test", 1, 24_200)):
        for path, data in class_files({str(n): count for n in range(len(CLASSES))}, seed=seed).items():
            number, image = path.split("/")
            files[f"{split}/{CLASSES[int(number)]}/{image}"] = data
    dataset = upload_dataset(client, {"name": DATASET_NAME, "archive": (io.BytesIO(zip_bytes(files)), "set.zip")})
    assert dataset["status"] == "ready" and len(dataset["classes"]) == len(CLASSES)
    with app.app_context():
        newest = db.session.scalar(select(func.max(ModelVersion.version))) or 0
    for version in range(newest + 1, newest + 4):
        register_bundle(app, trained[1], version)
    with app.app_context():
        job = _finished_job(dataset)
        db.session.add(job)
        db.session.flush()
        version = newest + 4
        shutil.copytree(trained[1], DataDir(app.config["DATA_DIR"]).model(version))
        db.session.add(ModelVersion(version=version, job_id=job.id, dataset_id=dataset["id"], image_size=224,
                                    backbone="mobilenet_v3_small", class_names=CLASSES, val_acc=0.91234,
                                    bundle_bytes=6_543_210))
        db.session.commit()
        ids = {"dataset_id": dataset["id"], "job_id": job.id,
               "image_id": db.session.scalar(select(func.min(DatasetImage.id))
                                             .where(DatasetImage.dataset_id == dataset["id"]))}
    # what the pages show of these rows once their scripts have drawn them: {page: (selector, count)}
    shown = {"jobs-show": ("#confusion tr", len(CLASSES) + 1), "jobs-index": (f'tr[data-job="{ids["job_id"]}"]', 1),
             "datasets-show": ("#class-table tbody tr", len(CLASSES)),
             "registry-index": (f'#models-table tr[data-version="{version}"]', 1)}
    with serving(app) as url:
        yield {name: (path if "://" in path else url + path)
               for name, path in _pages(app, ids, first_run).items()}, shown


def _pages(app, ids: dict, first_run: dict[str, str]) -> dict[str, str]:
    """{name: URL} of every page of the URL map (as the accessibility test finds them), with the ids of the
    populated rows, the error page, and the pages of a first run (setup, sign-in) on studios of their own."""
    paths = page_paths(app, ids)
    pages, others = html_pages(app.test_client(), {e: p for e, p in paths.items() if e not in FIRST_RUN})
    assert others <= {"health.home", "datasets.thumbnail"}, f"{others}: a new page that answers no HTML here?"
    named = {endpoint.replace(".", "-").replace("_", "-"): path for endpoint, path in pages.items()}
    return {**named, "error": NOT_FOUND, **{endpoint.replace(".", "-").replace("_", "-"): first_run[endpoint]
                                             + paths[endpoint] for endpoint in FIRST_RUN}}


@pytest.fixture(scope="module")
def first_run(stack, migrated_sqlite, tmp_path_factory):
    """{endpoint: base URL} of two studios with sign-in on: one before its first account (setup), one after."""
    urls = {}
    with ExitStack() as servers:
        for endpoint in FIRST_RUN:
            folder = tmp_path_factory.mktemp("first-run")
            shutil.copyfile(migrated_sqlite, folder / DATABASE_FILE)
            app = create_app(app_config(folder, REDIS_URL=stack["config"]["REDIS_URL"], AUTH="on"))
            if endpoint == "accounts.sign_in":
                with app.app_context():
                    accounts.create_user("admin", "first run password", "admin")
            urls[endpoint] = servers.enter_context(serving(app))
        yield urls


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("size", SIZES)
def test_every_page_fits_its_window(browser, populated, size, language):
    pages, shown = populated
    assert {"datasets-show", "jobs-show", "registry-index", "predict-index"} <= pages.keys()
    SHOTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport=SIZES[size], locale=LANGUAGES[language],
                                  is_mobile=size == "390x844", has_touch=size == "390x844")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    problems = {}
    try:
        for name, path in pages.items():
            page.goto(path)
            page.wait_for_load_state("networkidle")
            if name in shown:
                expect(page.locator(shown[name][0])).to_have_count(shown[name][1])
            page.evaluate("document.fonts.ready")
            page.screenshot(path=SHOTS / f"{name}-{size}-{language}.png", full_page=True)
            fitting = FIT_ON_LAPTOP if size == "1280x800" else []
            found = page.evaluate(LAYOUT_PROBLEMS, [SIZES[size]["width"], fitting])
            if size == "390x844":  # the accessibility test scans laptop pages; the phone layout is scanned here
                found += severe_violations(page, exclude=("#swagger-ui",))
            if found:
                problems[name] = found
    finally:
        context.close()
    assert errors == []
    assert not problems, "\n".join(f"{name}: {line}" for name, lines in problems.items() for line in lines)


def test_the_header_menu_opens_and_closes_with_the_keyboard(browser, populated):
    pages, _ = populated
    context = browser.new_context(viewport=SIZES["390x844"], is_mobile=True, has_touch=True)
    page = context.new_page()
    try:
        page.goto(pages["jobs-index"])
        toggle = page.locator("#menu-toggle")
        link = page.locator("#site-menu nav a", has_text="Models")
        expect(toggle).to_have_attribute("aria-expanded", "false")
        expect(link).to_be_hidden()
        expect(page.locator("#health-badge")).to_be_hidden()
        toggle.focus()
        page.keyboard.press("Enter")
        expect(toggle).to_have_attribute("aria-expanded", "true")
        for part in (link, page.locator("#health-badge"), page.locator("#language-switch"),
                     page.locator("#account-link")):
            expect(part).to_be_visible()
        page.keyboard.press("Tab")
        expect(page.locator("#site-menu nav a").first).to_be_focused()
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=SHOTS / "header-menu-open-390x844-en.png")
        page.keyboard.press("Escape")
        expect(toggle).to_have_attribute("aria-expanded", "false")
        expect(toggle).to_be_focused()
        expect(link).to_be_hidden()
        toggle.press("Space")
        link.click()
        expect(page).to_have_url(pages["registry-index"])
        page.set_viewport_size(SIZES["1280x800"])  # a wide window shows the links in a row, no button
        expect(page.locator("#menu-toggle")).to_be_hidden()
        expect(page.locator("#site-menu nav a", has_text="Models")).to_be_visible()
    finally:
        context.close()


def test_charts_and_tables_follow_the_width_of_their_card(browser, populated):
    pages, _ = populated
    context = browser.new_context(viewport=SIZES["390x844"])
    page = context.new_page()
    try:
        page.goto(pages["jobs-show"])
        expect(page.locator("#chart-loss polyline")).to_have_count(2)
        epochs = page.locator("#epoch-table").locator("xpath=..")  # wider than a phone: its wrapper scrolls
        expect(epochs).to_have_attribute("tabindex", "0")
        epochs.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function("() => document.querySelector('#epoch-table').parentElement.scrollLeft > 0")
        page.wait_for_function(CHARTS_DRAWN_WIDER_THAN, arg=0)
        narrow = page.evaluate("() => document.querySelector('svg.chart').getBoundingClientRect().width")
        page.set_viewport_size(SIZES["1280x800"])
        page.wait_for_function(CHARTS_DRAWN_WIDER_THAN, arg=narrow)
        expect(page.locator("#chart-acc polyline")).to_have_count(2)
        expect(epochs).not_to_have_attribute("tabindex", "0")  # it fits a laptop: no stop for the keyboard
    finally:
        context.close()
