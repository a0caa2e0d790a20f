"""The prediction page knows the decode sizes of the versions that may answer, for the browser's downscaling."""
import json
import shutil

from tests.factories import register_bundle
from webapp.predict.pages import released_decode_size


def test_the_page_names_the_decode_size_of_each_version_and_of_the_released_arms(served, trained, tmp_path):
    client = served.test_client()
    page = client.get("/predict").get_data(as_text=True)
    assert 'id="drop-image" class="dropzone" tabindex="0" data-decode-size="37"' in page
    assert '<option value="1" data-decode-size="37">' in page

    larger = tmp_path / "larger"
    shutil.copytree(trained[1], larger)
    meta = json.loads((larger / "meta.json").read_text())
    meta["preprocess"]["decode_size"] = 74
    (larger / "meta.json").write_text(json.dumps(meta))
    register_bundle(served, larger, 2)
    assert client.put("/api/release", json={"candidate": 2, "candidate_share": 5}).status_code == 200
    page = client.get("/predict").get_data(as_text=True)
    assert 'class="dropzone" tabindex="0" data-decode-size="74"' in page  # the larger of production and candidate
    assert '<option value="1" data-decode-size="37">' in page and '<option value="2" data-decode-size="74">' in page


def test_an_unknown_decode_size_means_images_go_as_they_are(served):
    with served.app_context():
        assert released_decode_size(1, None) == 37
        assert released_decode_size(1, 99) is None  # no bundle: its size could be larger
        assert released_decode_size(None, None) is None
