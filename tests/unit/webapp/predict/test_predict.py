"""POST /api/predict: answers, parity with training, bad input, version pick-up and thread safety."""
from __future__ import annotations

import io
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import paddle
import pytest
from PIL import Image

from engine.images import open_checked
from tests.factories import register_bundle
from tests.images import image_bytes, noisy_image
from webapp.predict.schemas import Prediction


def predict(client, data: bytes, name="x.png", **fields):
    """POST the image with `fields`; an answer is checked against its documented model (the contract does
    not check the answers of a route that reads its own body)."""
    form = {"image": (io.BytesIO(data), name), **{k: str(v) for k, v in fields.items()}}
    response = client.post("/api/predict", data=form, content_type="multipart/form-data")
    if response.status_code == 200:
        Prediction.model_validate(response.get_json())
    return response


def jpeg_rotated(color) -> bytes:
    """A tall JPEG stored sideways with an EXIF orientation tag, as phones write them."""
    image = Image.fromarray(np.asarray(Image.open(io.BytesIO(noisy_image(5, color, size=(90, 60))))))
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    image.save(out, "JPEG", quality=92, exif=exif)
    return out.getvalue()


def varied_inputs() -> dict[str, bytes]:
    rgba = Image.new("RGBA", (50, 40), (40, 200, 60, 255))
    rgba.putpixel((3, 3), (0, 0, 0, 0))
    out_rgba, out_gif, out_gray, out_webp = io.BytesIO(), io.BytesIO(), io.BytesIO(), io.BytesIO()
    rgba.save(out_rgba, "PNG")
    Image.open(io.BytesIO(noisy_image(7, (220, 40, 40)))).convert("P").save(out_gif, "GIF")
    Image.open(io.BytesIO(noisy_image(8, (40, 60, 220)))).convert("L").save(out_gray, "PNG")
    Image.open(io.BytesIO(noisy_image(9, (40, 60, 220)))).save(out_webp, "WEBP")
    return {"png": noisy_image(11, (220, 40, 40), size=(120, 80)), "jpeg_exif": jpeg_rotated((40, 200, 60)),
            "rgba": out_rgba.getvalue(), "gif": out_gif.getvalue(), "gray": out_gray.getvalue(),
            "webp": out_webp.getvalue(), "big_jpeg": image_bytes((40, 60, 220), size=(2000, 1500), fmt="JPEG"),
            "big_noisy_jpeg": _noisy_jpeg((1600, 1200))}


def _noisy_jpeg(size) -> bytes:
    """Large and full of detail, so decoding at a reduced JPEG scale visibly changes the pixels."""
    out = io.BytesIO()
    Image.open(io.BytesIO(noisy_image(13, (40, 200, 60), size=size, noise=90))).save(out, "JPEG", quality=95)
    return out.getvalue()


def test_answer_has_the_documented_shape(served):
    body = predict(served.test_client(), noisy_image(42, (40, 200, 60)), top_k=2).get_json()
    assert set(body) == {"id", "class", "confidence", "abstained", "abstained_by", "top_k", "model_version",
                         "runtime", "arm", "elapsed_ms"}
    assert body["class"] == "green" and body["model_version"] == 1 and body["arm"] == "production"
    assert body["abstained"] is False and body["abstained_by"] is None
    measured = json.loads(Path(served.config["DATA_DIR"], "models", "1", "meta.json").read_text())["runtimes"]
    assert body["runtime"] == measured["cpu-1t"]["runtime"]
    assert [entry["class"] for entry in body["top_k"]][0] == "green" and len(body["top_k"]) == 2
    assert body["top_k"][0]["confidence"] == body["confidence"] >= body["top_k"][1]["confidence"]


def test_an_answer_below_the_threshold_names_no_class(served):
    client = served.test_client()
    assert client.put("/api/models/1", json={"abstain_threshold": 0.999999}).status_code == 200
    body = predict(client, noisy_image(42, (40, 200, 60)), version=1).get_json()
    assert (body["class"], body["abstained"], body["abstained_by"], body["arm"]) == (None, True, "version", "pinned")
    assert body["top_k"][0]["class"] == "green" and body["confidence"] == body["top_k"][0]["confidence"]


def test_top_k_is_capped_by_the_classes(served):
    body = predict(served.test_client(), noisy_image(1, (220, 40, 40)), top_k=50).get_json()
    assert len(body["top_k"]) == 3
    assert abs(sum(entry["confidence"] for entry in body["top_k"]) - 1) < 1e-4


def test_serving_matches_training_eval_probabilities(served, trained):
    """The served bundle (Paddle Inference, upload decoding) gives the probabilities the trainer's model
    gives on the images as training decodes them (the cache's square, the evaluation batch)."""
    trainer, _ = trained
    loaded = served.extensions["model_server"].get(1)
    trainer.model.eval()
    for name, data in varied_inputs().items():
        decoded, _ = open_checked(data, 10**8, loaded.decode_size)
        served_probs = loaded.probabilities(decoded)
        square = trainer.preprocess.square(Image.open(io.BytesIO(data)))
        logits = trainer.model(paddle.to_tensor(trainer.preprocess.batch(square[None])))
        engine_probs = paddle.nn.functional.softmax(logits, axis=-1).numpy()[0]
        np.testing.assert_allclose(served_probs, engine_probs, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("data, name, status, words", [
    (b"just some text", "a.txt", 415, "not an image"),
    (image_bytes(fmt="TIFF"), "a.tif", 415, "TIFF images are not supported"),
    (image_bytes(fmt="JPEG", size=(300, 300))[:400], "cut.jpg", 400, "truncated or corrupt"),
    (b"", "empty.png", 400, "empty"),
])
def test_bad_images_get_a_clear_4xx(served, data, name, status, words):
    response = predict(served.test_client(), data, name=name)
    assert response.status_code == status
    assert words in response.get_json()["error"] and response.get_json()["field"] == "image"


def test_decompression_bomb_is_refused_before_decoding(served):
    bomb = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(bomb, "PNG")
    response = predict(served.test_client(), bomb.getvalue())
    assert response.status_code == 400
    assert response.get_json()["error"] == "The image is 12000x12000 pixels; the limit is 40 megapixels."


def test_over_the_size_limit_is_413(served):
    served.config["PREDICT_MAX_BYTES"] = 1000
    response = predict(served.test_client(), noisy_image(3, (1, 2, 3), size=(200, 200)))
    assert response.status_code == 413 and "larger than" in response.get_json()["error"]


def test_missing_field_bad_top_k_and_unknown_version(served):
    client = served.test_client()
    assert client.post("/api/predict", data={}, content_type="multipart/form-data").get_json()["field"] == "image"
    for top_k in ("many", "1.5", "-1", "0", "1001", "٣", " 3"):
        response = predict(client, noisy_image(1, (1, 2, 3)), top_k=top_k)
        assert response.status_code == 400 and response.get_json()["field"] == "top_k", top_k
        assert "must be a whole number from 1 to 1000" in response.get_json()["error"]
    response = predict(client, noisy_image(1, (1, 2, 3)), version="true")
    assert response.status_code == 400 and response.get_json()["field"] == "version"
    response = predict(client, noisy_image(1, (1, 2, 3)), version=9)
    assert response.status_code == 404 and response.get_json()["error"] == "Model version 9 does not exist."


def test_no_model_yet_is_409_pointing_to_training(client):
    response = predict(client, noisy_image(1, (1, 2, 3)))
    assert response.status_code == 409 and "start training" in response.get_json()["error"]


def answers_until(client, version: int | None, seconds: float = 30) -> list[int]:
    """The versions that answered unpinned requests, in order, until `version` answered (or for `seconds`
    when it is None): a version this process refuses to load leaves the previous production version answering."""
    seen, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        body = predict(client, noisy_image(1, (220, 40, 40))).get_json()
        assert body["class"] == "red", body
        if not seen or seen[-1] != body["model_version"]:
            seen.append(body["model_version"])
        if body["model_version"] == version:
            break
        time.sleep(0.05)
    return seen


def test_promoted_version_is_picked_up_and_a_corrupt_one_refused(served, trained):
    client = served.test_client()
    assert predict(client, noisy_image(1, (220, 40, 40))).get_json()["model_version"] == 1
    register_bundle(served, trained[1], 2, promote=True)  # as a job started with "promote when done"
    assert answers_until(client, 2) in ([1, 2], [2])
    register_bundle(served, trained[1], 3, promote=True)
    params = Path(served.config["DATA_DIR"], "models", "3", "model.pdiparams")
    params.write_bytes(params.read_bytes()[:-8] + b"tampered")
    assert answers_until(client, None, seconds=3) == [2]  # the refused version never takes traffic
    pinned = predict(client, noisy_image(1, (220, 40, 40)), version=3)
    assert pinned.status_code == 409
    assert "failed its integrity check: model.pdiparams" in pinned.get_json()["error"]
    shutil.copyfile(trained[1] / "model.pdiparams", params)  # repaired: checked again, not refused forever
    assert predict(client, noisy_image(1, (220, 40, 40)), version=3).get_json()["model_version"] == 3
    assert answers_until(client, 3)[-1] == 3


def test_sixteen_concurrent_clients_get_the_sequential_answers(served):
    images = [noisy_image(200 + i, color, size=(64 + i, 48)) for i, color in
              enumerate([(220, 40, 40), (40, 200, 60), (40, 60, 220)] * 4)]

    def ask(data):
        body = served.test_client().post("/api/predict", data={"image": (io.BytesIO(data), "x.png"), "top_k": "3"},
                                         content_type="multipart/form-data").get_json()
        return json.dumps(body["top_k"])

    sequential = [ask(data) for data in images]
    with ThreadPoolExecutor(max_workers=16) as pool:
        concurrent = list(pool.map(ask, images * 4))
    assert concurrent == sequential * 4
