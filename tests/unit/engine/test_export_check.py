"""The exported ONNX model is compared with Paddle's on the model's own kind of input: the trainer's validation
images, preprocessed; a noise batch only when there are none."""
import numpy as np

from engine.bundle import read_bundle
from engine.runtimes import check_batch, open_session
from engine.trainer import ONNX_CHECK_IMAGES


def largest_difference(files, batch: np.ndarray) -> float:
    onnx, paddle = open_session(files, "onnx"), open_session(files, "paddle")
    return float(np.abs(onnx(batch) - paddle(batch)).max())


def test_the_export_compares_onnx_with_paddle_on_preprocessed_validation_images(trained):
    trainer, folder = trained
    bundle = read_bundle(folder)
    shown = trainer.val_loader.images[:ONNX_CHECK_IMAGES]
    assert 0 < len(shown) <= ONNX_CHECK_IMAGES
    on_images = largest_difference(bundle.files, trainer.preprocess.batch(shown))
    on_noise = largest_difference(bundle.files, check_batch(trainer.preprocess.input_size))
    recorded = bundle.meta["onnx"]["max_abs_diff"]
    assert recorded == on_images != on_noise
