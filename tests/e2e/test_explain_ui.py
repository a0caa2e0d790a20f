"""A person turns on "Show where the model looked" on the Predict page and sees the map over the image."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from tests.e2e.conftest import drop_file
from tests.factories import register_bundle
from tests.images import noisy_image
from webapp import create_app
from webapp.extensions import db
from webapp.models import ModelVersion

pytestmark = pytest.mark.e2e

# The overlay canvas's visible pixels: how many have some opacity, and the canvas's size.
PAINTED = """() => {
  const canvas = document.querySelector(".prediction .explain-overlay");
  if (!canvas || canvas.hidden || !canvas.width) return null;
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted += 1;
  return { painted, total: canvas.width * canvas.height };
}"""


@pytest.fixture(scope="module")
def pinned_version(stack, trained):
    """The session's colour model as an extra, unreleased version (pinned by the page's URL); removed after."""
    app = create_app(stack["config"])
    with app.app_context():
        version = (db.session.scalar(select(func.max(ModelVersion.version))) or 0) + 1
    register_bundle(app, trained[1], version)
    yield version
    app.test_client().delete(f"/api/models/{version}")


def test_the_toggle_draws_where_the_model_looked_over_the_image(page, live_server, pinned_version):
    page.goto(f"{live_server}/predict?version={pinned_version}")
    page.locator("#explain-toggle").check()
    drop_file(page, "#drop-image", noisy_image(4242, (220, 40, 40), size=(90, 70)), "red.png")
    expect(page.locator(".prediction .answer")).to_have_text("red", timeout=30_000)
    expect(page.locator(".prediction .explain-legend")).to_contain_text("“red”")
    expect(page.locator(".prediction .explain-legend")).to_contain_text("Approximate map")
    page.wait_for_function(PAINTED)
    painted = page.evaluate(PAINTED)
    assert painted["painted"] > 0.3 * painted["total"]  # the centre crop of a 90 x 70 image: most of the box
    page.locator("#explain-toggle").uncheck()
    expect(page.locator(".prediction .explain-overlay")).to_be_hidden()
    assert page.js_errors == []
