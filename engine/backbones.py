"""The backbone registry: every fact about a backbone in one entry, and builders that read it.

Importing this module does not load Paddle, so the web app can list and validate backbones cheaply.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from paddle import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backbone:
    """A classifier family: how to build it, which sublayers form its head, where its weights come from."""

    name: str
    build: Callable[[int], "nn.Layer"]
    head: tuple[str, ...]
    weights_file: str
    weights_md5: str | None  # of Paddle's published file; None when Paddle's zoo does not publish it
    input_size: int = 224


def _vision_model(function: str) -> Callable[[int], "nn.Layer"]:
    def build(num_classes: int) -> "nn.Layer":
        from paddle.vision import models

        return getattr(models, function)(num_classes=num_classes)

    return build


def _pp_lcnet_x1_0(num_classes: int) -> "nn.Layer":
    from engine.lcnet import pp_lcnet_x1_0

    return pp_lcnet_x1_0(num_classes)


BACKBONES: dict[str, Backbone] = {spec.name: spec for spec in (
    Backbone("mobilenet_v3_small", _vision_model("mobilenet_v3_small"), ("classifier",),
             "mobilenet_v3_small_x1.0.pdparams", "34fe0e7c1f8b00b2b056ad6788d0590c"),
    Backbone("mobilenet_v3_large", _vision_model("mobilenet_v3_large"), ("classifier",),
             "mobilenet_v3_large_x1.0.pdparams", "118db5792b4e183b925d8e8e334db3df"),
    Backbone("resnet18", _vision_model("resnet18"), ("fc",), "resnet18.pdparams",
             "cf548f46534aa3560945be4b95cd11c4"),
    Backbone("resnet50", _vision_model("resnet50"), ("fc",), "resnet50.pdparams",
             "ca6f485ee1ab0492d38f323885b0ad80"),
    Backbone("pp_lcnet_x1_0", _pp_lcnet_x1_0, ("last_conv", "fc"), "PPLCNet_x1_0_pretrained.pdparams", None),
)}


def build_backbone(name: str, num_classes: int, pretrained: bool) -> "nn.Layer":
    """A classifier for `num_classes`; pretrained weights fill all but the mismatched head."""
    import paddle

    from engine.weights import ensure_weights

    model = BACKBONES[name].build(num_classes)
    if pretrained:
        state = paddle.load(str(ensure_weights(name)))
        own = model.state_dict()
        usable = {k: v for k, v in state.items() if k in own and list(v.shape) == list(own[k].shape)}
        model.set_state_dict(usable)
        log.info("%s: loaded %d of %d pretrained tensors (head left fresh)", name, len(usable), len(own))
    return model


def freeze_backbone(name: str, model: "nn.Layer") -> list["nn.Layer"]:
    """Stop gradients everywhere but the head; return the frozen sublayers (kept in eval mode)."""
    head = {id(getattr(model, attr)) for attr in BACKBONES[name].head}
    frozen = [layer for _, layer in model.named_children() if id(layer) not in head]
    for layer in frozen:
        for parameter in layer.parameters():
            parameter.stop_gradient = True
    return frozen
