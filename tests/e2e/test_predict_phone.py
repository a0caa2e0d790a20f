"""A person classifies what is in front of them with a phone: a photo from the camera button, downscaled in the
browser before upload, answered and marked right or wrong on a page that fits the phone's screen."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect
from sqlalchemy import func, select

from tests.e2e.conftest import open_page
from tests.factories import register_bundle
from webapp import create_app
from webapp.extensions import db
from webapp.models import ModelVersion

pytestmark = pytest.mark.e2e

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "has_touch": True, "is_mobile": True,
         "user_agent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                       "Chrome/124.0.0.0 Mobile Safari/537.36"}
ORIENTATION = 0x0112
ROTATE_90_CW = 6  # EXIF: the stored pixels are shown turned a quarter clockwise
# What sticks out of the page's content: the widest right edge of anything in <main>, and main's own overflow.
OVERFLOW = """() => {
  const main = document.querySelector("main");
  const right = Math.max(...Array.from(main.querySelectorAll("*"), (el) => el.getBoundingClientRect().right));
  const screen = document.documentElement.clientWidth;
  return { right, screen, width: document.documentElement.scrollWidth, mainOverflow: main.scrollWidth - main.clientWidth };
}"""


@pytest.fixture(scope="module")
def released(stack, trained):
    """The session's colour model (red, green, blue; decode size 37) registered and released alone."""
    app = create_app(stack["config"])
    with app.app_context():
        version = (db.session.scalar(select(func.max(ModelVersion.version))) or 0) + 1
    register_bundle(app, trained[1], version, promote=True)
    answer = app.test_client().put("/api/release", json={"production": version, "candidate": None})
    assert answer.status_code == 200, answer.get_json()
    return {"version": version, "client": app.test_client()}


@pytest.fixture
def phone(browser):
    page = open_page(browser, **PHONE)
    yield page
    page.context.close()


def photo(colour, size=(3000, 2000), band=None, orientation=None, seed=0) -> bytes:
    """A noisy JPEG of `colour`, as a camera stores it; `band` paints the stored left sixth of it in another
    colour, and `orientation` is its EXIF orientation tag."""
    rng = np.random.default_rng(seed)
    width, height = size
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:] = colour
    if band is not None:
        pixels[:, : width // 6] = band
    pixels = np.clip(pixels + rng.integers(-12, 13, (height, width, 3), dtype=np.int16), 0, 255).astype(np.uint8)
    exif = Image.Exif()
    if orientation:
        exif[ORIENTATION] = orientation
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=85, exif=exif)
    return out.getvalue()


def received_image(app, answer: dict) -> bytes:
    """The image the server answered for (the live server keeps it for feedback)."""
    return app.extensions["prediction_hold"].local(answer["id"]).image


def body_bytes(request) -> int:
    """The size of the body the page sent, as its request says."""
    return int(request.all_headers()["content-length"])


def predict_through_page(page, selector: str, data: bytes, name: str):
    """Pick `data` in the file input `selector`; the request the page sent and the answer it got."""
    with page.expect_response(lambda r: r.url.endswith("/api/predict") and r.request.method == "POST") as answer:
        page.set_input_files(selector, files=[{"name": name, "mimeType": "image/jpeg", "buffer": data}])
    return answer.value.request, answer.value.json()


def assert_fits(page) -> None:
    fit = page.evaluate(OVERFLOW)
    assert fit["right"] <= fit["screen"] and fit["width"] == fit["screen"] and fit["mainOverflow"] <= 0, fit


def test_take_a_photo_get_the_answer_and_mark_it_on_a_phone(phone, live_server, released):
    page = phone
    page.goto(f"{live_server}/predict")
    page.evaluate("() => { window.sameDocument = true; }")
    camera = page.locator(".camera-button")
    expect(camera).to_be_visible()
    expect(camera).to_contain_text("Take a photo")
    expect(page.locator("#camera-input")).to_have_attribute("capture", "environment")
    expect(page.locator("#image-input")).not_to_have_attribute("capture", "environment")
    box = camera.bounding_box()
    assert box["height"] >= 44 and box["x"] + box["width"] <= 390

    request, answer = predict_through_page(page, "#camera-input", photo((220, 40, 40), orientation=ROTATE_90_CW),
                                           "IMG_0001.jpg")
    assert answer["class"] == "red" and answer["model_version"] == released["version"]
    card = page.locator(".prediction").first
    expect(card.locator(".answer")).to_have_text("red")
    expect(card.locator(".sent-size")).to_have_text("sent 37×56 of 2000×3000")
    expect(card.locator(".bar-row")).to_have_count(3)
    card.locator("[data-verdict=right]").tap()
    expect(card.locator(".feedback-row")).to_contain_text("Marked right: red")

    predict_through_page(page, "#camera-input", photo((40, 60, 220), size=(2000, 3000), seed=1), "IMG_0002.jpg")
    card = page.locator(".prediction").first
    expect(card.locator(".answer")).to_have_text("blue")
    card.locator("[data-verdict=wrong]").tap()
    expect(card.locator(".feedback-row input")).to_be_focused()
    # no right class given: the correction stays out of the datasets made from feedback in other tests
    card.locator(".feedback-row button", has_text="Not sure what it is").tap()
    expect(card.locator(".feedback-row .verdict-wrong")).to_have_text("Marked wrong")
    expect(page.locator(".prediction")).to_have_count(2)
    assert page.evaluate("() => window.sameDocument") is True  # no reload on the way

    assert_fits(page)
    page.set_viewport_size({"width": 360, "height": 740})
    assert_fits(page)
    assert page.js_errors == []


def test_a_downscaled_photo_keeps_the_answer_of_the_original(page, live_server, stack_app, released):
    page.goto(f"{live_server}/predict")
    photos = [("portrait.jpg", photo((200, 60, 90), band=(40, 60, 220), orientation=ROTATE_90_CW, seed=2)),
              ("landscape.jpg", photo((60, 150, 170), seed=3))]
    for name, original in photos:
        reference = released["client"].post("/api/predict", data={"image": (io.BytesIO(original), name)},
                                            content_type="multipart/form-data").get_json()
        request, answer = predict_through_page(page, "#image-input", original, name)
        assert answer["class"] == reference["class"]
        confidences = {entry["class"]: entry["confidence"] for entry in answer["top_k"]}
        assert confidences.keys() == {entry["class"] for entry in reference["top_k"]}
        for entry in reference["top_k"]:
            assert abs(confidences[entry["class"]] - entry["confidence"]) <= 0.02, (name, reference, answer)
        sent = received_image(stack_app, answer)
        assert body_bytes(request) < len(original) / 50 and len(sent) < len(original) / 50
        shown = Image.open(io.BytesIO(sent))
        assert shown.getexif().get(ORIENTATION, 1) == 1
        if name == "portrait.jpg":  # turned upright: the stored left band is now the top
            assert shown.size == (37, 56)
            top, middle = shown.convert("RGB").getpixel((18, 2)), shown.convert("RGB").getpixel((18, 40))
            assert top[2] > 150 > top[0] and middle[0] > 150 > middle[2], (top, middle)
        else:
            assert shown.size == (56, 37)

    small = photo((220, 40, 40), size=(36, 30), seed=4)
    request, answer = predict_through_page(page, "#image-input", small, "small.jpg")
    assert received_image(stack_app, answer) == small and answer["class"] == "red"
    assert body_bytes(request) > len(small)
    expect(page.locator(".prediction")).to_have_count(3)
    expect(page.locator(".prediction").first.locator(".sent-size")).to_have_count(0)
    expect(page.locator(".camera-button")).to_be_hidden()  # no camera to point on a desktop
    assert page.js_errors == []
