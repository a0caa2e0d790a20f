"""An admin calibrates per-class thresholds on the Models page: suggest for a target precision, apply, edit a
class by hand, and read both changes in the release history."""
import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from tests.factories import register_bundle
from webapp.extensions import db
from webapp.models import Evaluation, ModelVersion

pytestmark = pytest.mark.e2e


def simulated_evaluation(app, version: int) -> int:
    """A finished test evaluation: red 30 images (also named for 6 blues at low confidence), green 30 always
    right, blue 12 (too few to calibrate)."""
    label = [0] * 30 + [1] * 30 + [2] * 12
    predicted = [0] * 30 + [1] * 30 + [0] * 6 + [2] * 6
    confidence = [0.8 + i / 400 for i in range(60)] + [0.5] * 6 + [0.9] * 6
    sample = {"confidence": confidence, "correct": [int(p == t) for p, t in zip(predicted, label)],
              "predicted": predicted, "label": label}
    with app.app_context():
        row = Evaluation(version=version, dataset_id=None, dataset_name="colours", revision=1, split="test",
                         status="succeeded", progress=1.0, report={"calibration": sample})
        db.session.add(row)
        db.session.commit()
        return row.id


def test_suggest_apply_and_edit_class_thresholds(page, live_server, stack_app, stack_client, trained):
    with stack_app.app_context():
        version = (db.session.scalar(select(func.max(ModelVersion.version))) or 0) + 1
    register_bundle(stack_app, trained[1], version)
    evaluation_id = simulated_evaluation(stack_app, version)
    page.goto(f"{live_server}/models")
    page.select_option("#thresholds-version", str(version))
    expect(page.locator("#thresholds-table tbody tr")).to_have_count(3)
    expect(page.locator("#thresholds-calibration")).to_have_text("No class has its own threshold.")

    page.select_option("#thresholds-precision", "0.95")
    page.locator("#thresholds-suggest").click()
    red, green, blue = (page.locator(f'#thresholds-table tr[data-class="{name}"] td') for name in ("red", "green", "blue"))
    expect(red.nth(2)).to_have_text("0.800")
    expect(red.nth(3)).to_have_text("100.0%")
    expect(red.nth(4)).to_have_text("30 of 36 (83%)")
    expect(green.nth(2)).to_have_text("none needed")
    expect(blue.nth(5)).to_have_text("Only 12 images of 'blue' in the split; at least 20 are needed to set its threshold.")
    expect(page.locator("#thresholds-source")).to_contain_text(f"evaluation #{evaluation_id}")

    page.locator("#thresholds-apply").click()
    expect(page.locator("#thresholds-calibration")).to_have_text(
        "Calibrated for 95% precision on the test split of revision 1 of 'colours'.")
    expect(red.nth(1).locator("input")).to_have_value("0.8")
    saved = stack_client.get(f"/api/models/{version}").get_json()
    assert saved["class_thresholds"] == {"red": 0.8}
    assert saved["class_thresholds_calibration"]["evaluation_id"] == evaluation_id

    green.nth(1).locator("input").fill("1.5")
    page.locator("#thresholds-save").click()
    expect(page.locator("#thresholds-error")).to_contain_text("class green")
    green.nth(1).locator("input").fill("0.9")
    page.locator("#thresholds-save").click()
    expect(page.locator("#thresholds-calibration")).to_have_text("Set by hand.")
    expect(page.locator(f'.thresholds-summary[data-version="{version}"]')).to_have_text("per class: red 0.8 · green 0.9")
    assert stack_client.get(f"/api/models/{version}").get_json()["class_thresholds"] == {"red": 0.8, "green": 0.9}

    page.locator("#release-history summary").click()
    history = page.locator(".history li")
    expect(history.first).to_contain_text(f"v{version} class thresholds set by hand by ")
    expect(history.first).to_contain_text("green off → 0.9")
    expect(history.nth(1)).to_contain_text(
        f"v{version} class thresholds calibrated for 95% precision on the test split of revision 1 of 'colours'")
    assert page.js_errors == []
