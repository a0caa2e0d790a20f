"""Train with a real worker through the API, then classify images the model has never seen."""
import io

import pytest

from tests.images import noisy_image
from tests.integration.test_training import COLOURS, finished, start, upload_colours, wait_for

pytestmark = pytest.mark.integration


def test_trained_model_classifies_held_out_images(stack_client):
    dataset_id = upload_colours(stack_client, seed=20_000)
    job = wait_for(stack_client, start(stack_client, dataset_id, epochs=5, promote_when_done=True), finished)
    assert job["status"] == "succeeded", job["error"]
    for index, (name, colour) in enumerate(COLOURS.items()):
        for n in range(3):
            image = noisy_image(900_000 + index * 100 + n, colour, size=(80 + n * 30, 60))
            response = stack_client.post("/api/predict", content_type="multipart/form-data",
                                         data={"image": (io.BytesIO(image), f"held-out-{n}.png")})
            body = response.get_json()
            assert response.status_code == 200
            assert body["class"] == name, body
            assert body["model_version"] == job["model_version"]
