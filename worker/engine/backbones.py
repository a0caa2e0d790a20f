"""Backbone registry: build a classifier by name, optionally from pretrained weights."""
from __future__ import annotations

import logging
from typing import Callable

import paddle
from paddle import nn
from paddle.vision import models

from worker.engine.lcnet import pp_lcnet_x1_0
from worker.engine.weights import ensure_weights

log = logging.getLogger(__name__)

# name -> (constructor(num_classes), names of the head's sublayers)
BACKBONES: dict[str, tuple[Callable[[int], nn.Layer], tuple[str, ...]]] = {
    "mobilenet_v3_small": (lambda n: models.mobilenet_v3_small(num_classes=n), ("classifier",)),
    "mobilenet_v3_large": (lambda n: models.mobilenet_v3_large(num_classes=n), ("classifier",)),
    "resnet18": (lambda n: models.resnet18(num_classes=n), ("fc",)),
    "resnet50": (lambda n: models.resnet50(num_classes=n), ("fc",)),
    "pp_lcnet_x1_0": (pp_lcnet_x1_0, ("last_conv", "fc")),
}


def build_backbone(name: str, num_classes: int, pretrained: bool) -> nn.Layer:
    """A classifier for `num_classes`; pretrained weights fill all but the mismatched head."""
    constructor, _ = BACKBONES[name]
    model = constructor(num_classes)
    if pretrained:
        state = paddle.load(str(ensure_weights(name)))
        own = model.state_dict()
        usable = {k: v for k, v in state.items() if k in own and list(v.shape) == list(own[k].shape)}
        model.set_state_dict(usable)
        log.info("%s: loaded %d of %d pretrained tensors (head left fresh)", name, len(usable), len(own))
    return model


def head_layers(name: str, model: nn.Layer) -> list[nn.Layer]:
    return [getattr(model, attr) for attr in BACKBONES[name][1]]


def freeze_backbone(name: str, model: nn.Layer) -> list[nn.Layer]:
    """Stop gradients everywhere but the head; return the frozen sublayers (kept in eval mode)."""
    head = {id(layer) for layer in head_layers(name, model)}
    frozen = [layer for attr, layer in model.named_children() if id(layer) not in head]
    for layer in frozen:
        for parameter in layer.parameters():
            parameter.stop_gradient = True
    return frozen
