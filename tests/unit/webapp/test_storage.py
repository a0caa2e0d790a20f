"""DataDir names every place under DATA_DIR, and the modules that write there ask it."""
from __future__ import annotations

from engine.config import TrainConfig
from engine.trainer import Trainer, TrainData
from webapp.storage import DataDir, DatasetFiles


def test_each_file_of_the_install_has_its_place(tmp_path):
    folders = DataDir(tmp_path)
    assert folders.install_id == tmp_path / "install.id"
    assert folders.key_file("setup.token") == tmp_path / "keys" / "setup.token"
    assert folders.redis_log == tmp_path / "redis" / "redis.log"
    assert folders.service_log("visualdl") == tmp_path / "run" / "visualdl.log"
    assert folders.feedback_image("p1.png") == tmp_path / "feedback" / "p1.png"
    assert folders.feedback_thumbnail("p1.png") == tmp_path / "feedback" / "p1.thumb.jpg"


def test_a_dataset_s_images_and_thumbnails_are_laid_out_in_one_place(tmp_path):
    files = DataDir(tmp_path).dataset_files(3)
    assert files == DatasetFiles(tmp_path / "datasets" / "3")
    assert files.image("ab.png") == tmp_path / "datasets" / "3" / "images" / "ab.png"
    assert files.thumbnail("ab") == tmp_path / "datasets" / "3" / "thumbs" / "ab.jpg"
    assert DatasetFiles(tmp_path / "staging").thumbs == tmp_path / "staging" / "thumbs"  # an ingest's staging


def test_a_bundle_being_exported_is_a_leftover_until_renamed(tmp_path):
    folders = DataDir(tmp_path)
    staging = folders.model_staging("7-abc")
    staging.mkdir(parents=True)
    folders.model(1).mkdir()
    assert staging.parent == folders.models and folders.leftovers() == [staging]


def test_the_trainer_keeps_features_where_the_data_dir_says(tmp_path):
    folders = DataDir(tmp_path)
    data = TrainData(["a", "b"], [], [])
    assert Trainer(TrainConfig(), data, folders.image_cache, device="cpu").feature_cache == folders.feature_cache
    given = Trainer(TrainConfig(), data, tmp_path / "c", device="cpu", feature_cache=tmp_path / "f")
    assert given.feature_cache == tmp_path / "f"
