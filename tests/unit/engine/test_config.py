"""Job options: one model with each option's type, range and message; TrainConfig built on it loads what
older versions of the studio stored."""
from __future__ import annotations

import pytest

from engine.config import TrainConfig
from engine.errors import StudioError
from engine.options import JobOptions

# A job's config as the first versions stored it (before augmentation, distillation, continuing and int8
# existed): the learning rate already resolved, the image size a number.
FIRST_STORED = {"backbone": "resnet18", "pretrained": False, "epochs": 3, "batch_size": 16, "learning_rate": 0.002,
                "image_size": 64, "optimizer": "adamw", "freeze_backbone": False, "label_smoothing": 0.1,
                "early_stopping_patience": 0, "weight_decay": 0.0001, "warmup_epochs": 1.0, "grad_clip": 5.0,
                "seed": 42}


def test_a_config_stored_by_an_older_version_still_loads_with_todays_defaults():
    for load in (lambda stored: TrainConfig(**stored), TrainConfig.from_dict):
        config = load(FIRST_STORED)
        assert (config.backbone, config.image_size, config.learning_rate) == ("resnet18", 64, 0.002)
        assert (config.augmentation, config.randaugment_n, config.teacher_version, config.export_int8) == (
            "light", 0, None, False)


def test_a_stored_config_rebuilds_the_same_config():
    config = TrainConfig.from_dict({"augmentation": "strong", "mixup_alpha": 0, "epochs": 4, "warmup_epochs": 2})
    stored = config.to_dict()
    assert TrainConfig(**stored).to_dict() == stored and stored["learning_rate"] == 1e-3
    assert stored["warmup_epochs"] == 2.0 and isinstance(stored["warmup_epochs"], float)


@pytest.mark.parametrize("options, field, words", [
    ({"epochs": "1"}, "epochs", "whole number"), ({"epochs": True}, "epochs", "whole number"),
    ({"epochs": 2.0}, "epochs", "whole number"), ({"pretrained": "true"}, "pretrained", "true or false"),
    ({"pretrained": 1}, "pretrained", "true or false"), ({"learning_rate": "0.1"}, "learning_rate", "a number"),
    ({"backbone": 5}, "backbone", "Choose one of"),
    ({"epochs": 2, "warmup_epochs": 3}, "warmup_epochs", "cannot exceed"),
    ({"warmup_epochs": -1}, "warmup_epochs", "cannot exceed"), ({"image_size": 36}, "image_size", "multiple of 8"),
    ({"seed": -1}, "seed", "4294967295"), ({"init_version": 2**31}, "init_version", "model version number"),
    ({"optimiser": "adam"}, "optimiser", "not a training option"),
])
def test_options_are_strict_and_refused_with_their_own_message(options, field, words):
    with pytest.raises(StudioError) as refused:
        TrainConfig.from_dict(options)
    assert refused.value.details["field"] == field and words in refused.value.message
    assert refused.value.code == ("unknown_option" if field == "optimiser" else "invalid_option")


def test_a_number_where_a_float_is_meant_and_choices_in_any_case_are_taken():
    config = TrainConfig.from_dict({"learning_rate": 1, "backbone": " ResNet18 ", "optimizer": "Momentum"})
    assert (config.learning_rate, config.backbone, config.optimizer) == (1.0, "resnet18", "momentum")
    assert config.image_size == 224


def test_options_left_null_are_decided_by_the_config_and_not_by_the_request():
    sent = JobOptions.parse({"image_size": None, "augmentation": "strong", "epochs": 5})
    assert sent.image_size is None and sent.randaugment_n is None and sent.chosen() == {"augmentation": "strong",
                                                                                         "epochs": 5}
    config = TrainConfig.from_dict(sent.chosen())
    assert (config.image_size, config.randaugment_n, config.mixup_alpha) == (224, 2, 0.2)
