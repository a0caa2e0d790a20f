"""The dataset page shows the shown revision's quality report (each finding with its images and its fix) and
the dataset's revisions, and its train form offers every revision."""
from __future__ import annotations

import io
import re

import numpy as np
from PIL import Image
from sqlalchemy import null, update

from tests.images import zip_bytes
from webapp.extensions import db
from webapp.models import DatasetImage, DatasetRevision, QualityScan

CLASSES = ("cat", "dog")


def scene(seed: int, size=(64, 48)) -> Image.Image:
    """A distinct picture per seed: smooth colour patches under pixel noise (sharp, colourful, rich)."""
    rng = np.random.default_rng(seed)
    low = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    smooth = np.asarray(low.resize(size, Image.BICUBIC), dtype=np.int16)
    return Image.fromarray(np.clip(smooth + rng.integers(-60, 61, smooth.shape), 0, 255).astype(np.uint8))


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def planted_files(seed: int = 0) -> dict[str, bytes]:
    """A split dataset of two classes with two planted findings: `val/cat/leak.jpg` is train/cat/0.png
    enlarged and recompressed (leakage), and `train/dog/copy.png` has the bytes of train/dog/0.png (an exact
    duplicate)."""
    files = {}
    for index, name in enumerate(CLASSES):
        for split, count in (("train", 4), ("val", 2)):
            for n in range(count):
                offset = index * 100 + (50 if split == "val" else 0) + n
                files[f"{split}/{name}/{n}.png"] = encoded(scene(seed + offset))
    files["val/cat/leak.jpg"] = encoded(scene(seed).resize((96, 72), Image.BILINEAR), "JPEG", quality=80)
    files["train/dog/copy.png"] = files["train/dog/0.png"]
    return files


def upload(client, files: dict[str, bytes], name: str = "planted") -> dict:
    response = client.post("/api/datasets", content_type="multipart/form-data",
                           data={"name": name, "archive": (io.BytesIO(zip_bytes(files)), "planted.zip")})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def findings(html: str, kind: str) -> str:
    """The HTML of one finding kind's part of the quality section."""
    found = re.search(rf'<section class="quality-kind" id="quality-{kind}".*?</section>', html, re.S)
    assert found, f"no {kind} on the page"
    return found.group(0)


def test_the_page_shows_the_leak_and_the_duplicate_with_both_images_and_their_fixes(client):
    dataset = upload(client, planted_files())
    html = client.get(f"/datasets/{dataset['id']}").get_data(as_text=True)
    report = client.get(f"/api/datasets/{dataset['id']}/quality").get_json()
    counts = report["report"]["counts"]
    assert {kind: count for kind, count in counts.items() if count} == {"leakage": 1, "duplicates": 1}

    leak = findings(html, "leakage")
    pair = report["report"]["leakage"][0]
    for key in (pair["a"], pair["b"]):
        assert f'src="/datasets/{dataset["id"]}/thumbs/{key}.jpg"' in leak
    assert "train/cat/0.png" in leak and "val/cat/leak.jpg" in leak and "96×72" in leak
    assert f"Distance {pair['distance']:.4f}" in leak
    assert 'data-fix="move_leaked_to_train"' in leak and 'data-fix="drop_leaked"' in leak

    duplicate = findings(html, "duplicates")
    assert "train/dog/0.png" in duplicate and "train/dog/copy.png" in duplicate
    assert "Exact copy (the same bytes)" in duplicate and 'data-fix="remove_duplicates"' in duplicate
    assert '<a href="#quality-leakage">Leakage across splits</a>: 1' in html
    assert "Conflicting labels: none" in html
    assert "decoded at 128×128 px" in html
    assert 'href="/datasets/%s/label-errors"' % dataset["id"] in html


def test_a_fix_makes_revision_2_which_the_page_shows_beside_revision_1(client):
    dataset = upload(client, planted_files(seed=1000))
    made = client.post(f"/api/datasets/{dataset['id']}/revisions",
                       json={"fix": "move_leaked_to_train", "comment": "leak gone"})
    assert made.status_code == 201, made.get_json()

    html = client.get(f"/datasets/{dataset['id']}").get_data(as_text=True)
    assert re.search(r'<strong>Revision 2</strong>\s*<span class="pill pill-newest">', html)
    assert "Moved 1 validation or test images that near-copy an image of another split to train." in html
    assert "“leak gone”" in html and "From revision 1:" in html and "1 moved to another split" in html
    assert 'id="quality-leakage"' not in html and "Leakage across splits: none" in html
    assert 'data-compare="2" data-against="1"' in html
    assert html.index('data-number="2"') < html.index('data-number="1"')  # newest first
    assert re.search(r'<option value="2" selected>Revision 2 \(newest\)', html)
    assert f'href="/api/datasets/{dataset["id"]}/revisions/1/archive"' in html

    older = client.get(f"/datasets/{dataset['id']}?revision=1").get_data(as_text=True)
    assert 'id="quality-leakage"' in older and "older revision" in older
    assert re.search(r'<option value="1" selected>Revision 1 ·', older)
    missing = client.get(f"/datasets/{dataset['id']}?revision=9")
    assert missing.status_code == 404 and "has no revision 9" in missing.get_data(as_text=True)


def test_a_clean_dataset_says_nothing_was_found(client):
    files = {path: data for path, data in planted_files(seed=2000).items()
             if path not in ("val/cat/leak.jpg", "train/dog/copy.png")}
    dataset = upload(client, files)
    html = client.get(f"/datasets/{dataset['id']}").get_data(as_text=True)
    assert "Nothing found: no near duplicates" in html
    assert 'class="quality-kind"' not in html and "data-fix=" not in html
    assert 'data-delete-revision' not in html  # the only revision cannot be deleted


def test_a_dataset_uploaded_before_the_report_offers_to_measure_it_then_shows_the_scan_moving(app, client):
    dataset = upload(client, planted_files(seed=3000))
    with app.app_context():
        db.session.execute(update(DatasetImage).where(DatasetImage.dataset_id == dataset["id"])
                           .values(signature=null()))
        db.session.execute(update(DatasetRevision).where(DatasetRevision.dataset_id == dataset["id"])
                           .values(quality=null()))
        db.session.commit()
    html = client.get(f"/datasets/{dataset['id']}").get_data(as_text=True)
    assert "13 images are not measured yet." in html and 'id="scan-quality"' in html
    assert "data-scan-active" not in html and 'class="quality-kind"' not in html

    with app.app_context():
        db.session.add(QualityScan(dataset_id=dataset["id"], status="running", progress=0.4))
        db.session.commit()
    html = client.get(f"/datasets/{dataset['id']}").get_data(as_text=True)
    assert "data-scan-active" in html and 'aria-valuenow="40"' in html and "Measuring the images… 40%" in html
    assert 'id="scan-quality"' not in html


def test_a_long_list_of_revisions_shows_the_newest_five_and_the_shown_one(client):
    dataset = upload(client, planted_files(seed=4000))
    for _ in range(6):
        made = client.post(f"/api/datasets/{dataset['id']}/revisions", json={"base": 1, "fix": "move_leaked_to_train"})
        assert made.status_code == 201, made.get_json()
    html = client.get(f"/datasets/{dataset['id']}?revision=1").get_data(as_text=True)
    assert re.findall(r'data-number="(\d+)"', html) == ["7", "6", "5", "4", "3", "2", "1"]
    assert re.findall(r'data-number="(\d+)"[^>]*hidden>', html) == ["2"]  # revision 1 is shown: never hidden
    assert 'data-show-all="revisions"' in html and "Show all 7" in html
