"""The upload -> train -> predict path in Chinese: every page, label, message and script-made text is
Chinese; only names (classes, datasets, backbones, products) and numbers stay as they are."""
from __future__ import annotations

import re
import zipfile

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import drop_file
from tests.e2e.test_training_ui import fill_fast_options
from tests.images import noisy_image
from tests.integration.test_training import COLOURS

pytestmark = pytest.mark.e2e
# Names and notation that are the same in both languages.
NAMES = {"Image", "Studio", "ONNX", "Runtime", "Paddle", "Inference", "PaddlePaddle", "VisualDL", "Redis",
         "GPU", "CPU", "cpu", "AdamW", "Adam", "SGD", "Momentum", "int8", "ms", "MB", "px", "kB", "p50", "p95",
         "README", "colours", "zip", "png", "jpg", "JPEG", "PNG", "WEBP",
         "GIF", "BMP", "RandAugment", "Mixup", "CutMix", "ImageNet", "top", "onnx", "paddle", "celery",
         "none", "light", "strong", "Top", "Web", "API", "Webhook", "adamw", "adam", "sgd", "momentum"}
WORD = re.compile(r"[A-Za-z][A-Za-z0-9_]{2,}")


READABLE_TEXT = """() => {
  const body = document.body.cloneNode(true);
  // code samples (folder names, commands) and the other language's own name are not translated
  body.querySelectorAll("code, pre, [lang]:not([lang^='zh'])").forEach((node) => node.remove());
  document.body.append(body);
  body.hidden = false;
  const text = body.innerText;
  body.remove();
  return text;
}"""


def data_names(client) -> set[str]:
    """Words of the names people gave things (datasets, classes, feedback labels): data, not interface."""
    names = []
    for summary in client.get("/api/datasets").get_json()["datasets"]:
        dataset = client.get(f"/api/datasets/{summary['id']}").get_json()
        names += [dataset["name"], *(c["name"] for c in dataset.get("classes", []))]
        names += [item["path"] for item in dataset.get("rejected", [])]
    for model in client.get("/api/models").get_json()["models"]:
        names += [model.get("dataset_name") or "", *model.get("class_names", model.get("classes", []))]
    return set(WORD.findall(" ".join(names)))


def english_left(page, client) -> set[str]:
    """Words of Latin letters on the page that are neither names nor notation, once the page's scripts have
    filled it from their first requests (text they write later than the check would otherwise be missed)."""
    page.wait_for_load_state("networkidle")
    text = page.evaluate(READABLE_TEXT) + " " + page.title()
    for select in page.locator("select").all():  # option labels are text a person reads too
        text += " " + " ".join(select.locator("option").all_inner_texts())
    # identifiers (backbones such as resnet18 or pp_lcnet_x1_0, option names) are names too
    allowed = NAMES | data_names(client)
    return {word for word in WORD.findall(text) if word not in allowed and not re.search(r"[_\d]", word)}


def test_upload_train_and_predict_in_chinese(browser, live_server, stack_client, tmp_path):
    context = browser.new_context(locale="zh-CN", extra_http_headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    archive = tmp_path / "colours.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for i, (name, colour) in enumerate(COLOURS.items()):
            for n in range(30):
                bundle.writestr(f"{name}/{n}.png", noisy_image(70_500 + i * 1000 + n, colour))

    page.goto(f"{live_server}/datasets")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert english_left(page, stack_client) == set()
    page.set_input_files("#zip-input", str(archive))
    expect(page.locator("#selection")).not_to_be_empty()
    assert english_left(page, stack_client) == set()
    page.click("#upload-button")
    page.wait_for_url(re.compile(r"/datasets/\d+$"))
    expect(page.locator("#class-table tbody tr")).to_have_count(3, timeout=60_000)
    expect(page.locator("#suggestion-summary")).not_to_be_empty(timeout=30_000)
    assert english_left(page, stack_client) == set()

    fill_fast_options(page, "3")
    page.click("#train-button")
    page.wait_for_url(re.compile(r"/jobs/\d+$"))
    expect(page.locator("#job-status")).to_have_text("已完成", timeout=300_000)
    expect(page.locator("#results")).to_be_visible()
    assert english_left(page, stack_client) == set()
    version = re.search(r"(\d+)", page.locator("#stat-model").inner_text()).group(1)

    page.goto(f"{live_server}/predict")
    page.select_option("#version-picker", version)
    drop_file(page, "#drop-image", noisy_image(4343, COLOURS["绿色"], size=(80, 60)), "样例.png")
    expect(page.locator(".prediction .answer")).to_have_text("绿色", timeout=30_000)
    assert english_left(page, stack_client) == set()
    for path in ("/jobs", "/models", "/feedback", "/account"):
        page.goto(live_server + path)
        assert english_left(page, stack_client) == set(), path
    assert errors == []
    context.close()
