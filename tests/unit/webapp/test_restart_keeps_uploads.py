"""A restart between an upload's 202 and its check keeps the upload: the start-up sweep removes only what
no dataset waits for."""
from __future__ import annotations

import io

import app as studio
from tests.images import class_files, zip_bytes
from webapp.datasets.services import ingest_upload
from webapp.extensions import db
from webapp.storage import DataDir


def accept_upload(app, client, data: bytes) -> int:
    """POST an archive as a studio with an ingest worker answers it: 202, its check queued, not yet run."""
    app.config["INGEST_IN_REQUEST"] = False
    queued = []
    app.extensions["celery"].send_task = lambda name, args, **options: queued.append(args[0])
    response = client.post("/api/datasets", content_type="multipart/form-data",
                           data={"archive": (io.BytesIO(data), "flowers.zip"), "name": "flowers"})
    assert response.status_code == 202 and response.get_json()["status"] == "processing"
    assert queued == [response.get_json()["id"]]
    return queued[0]


def test_restart_between_the_202_and_the_check_keeps_the_upload(app, client):
    waiting = accept_upload(app, client, zip_bytes(class_files({"rose": 3, "tulip": 3})))
    folders = DataDir(app.config["DATA_DIR"])
    (folders.tmp / "incoming-interrupted").mkdir()  # a reception cut off by the restart
    (folders.tmp / f"ingest-{waiting}-1").mkdir()  # a check's staging cut off by the restart

    studio.sweep_leftovers(app, folders, unchanged_for=0)

    assert sorted(path.name for path in folders.tmp.iterdir()) == [f"upload-{waiting}"]
    with app.app_context():
        dataset = ingest_upload(waiting, "ingest@box")
        assert (dataset.status, dataset.num_images, dataset.error) == ("ready", 6, None)
        db.session.remove()


def test_restart_sweeps_uploads_that_no_dataset_waits_for(app, client):
    finished = accept_upload(app, client, zip_bytes(class_files({"rose": 2, "tulip": 2})))
    with app.app_context():
        ingest_upload(finished, "ingest@box")
    folders = DataDir(app.config["DATA_DIR"])
    (folders.upload(finished)).mkdir()  # left behind by a check that ended while its files were removed
    (folders.upload(999)).mkdir()  # moved into place by an upload whose row was never committed

    studio.sweep_leftovers(app, folders, unchanged_for=0)

    assert list(folders.tmp.iterdir()) == []
