"""The backbone registry: every fact about a backbone in one entry, and builders that read it.

Every backbone ends in global average pooling, so its entry also says how to split the model there (`Split`):
`features(model, x)` is the last feature map (N x C x h x w, before pooling), `classify(model, features)` is the
rest of the forward pass (pooling and head: the logits), and `at_each_location(model, features)` applies the head
at every location of the map (N x K x h x w: the class activation maps of explanations). For a linear head the
maps' mean over locations equals the logits (`exact`); for a non-linear head it is the same construction and an
approximation.

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
class Split:
    """Where a backbone's model splits into its last feature map and its head (see the module's docstring)."""

    features: Callable
    classify: Callable
    at_each_location: Callable
    exact: bool


def _channels_last(head: Callable, features):
    """`head` (layers acting on the last axis) applied at each location of NCHW `features`: N x K x h x w."""
    return head(features.transpose([0, 2, 3, 1])).transpose([0, 3, 1, 2])


def _resnet_features(model, x):
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    return model.layer4(model.layer3(model.layer2(model.layer1(x))))


RESNET = Split(_resnet_features, lambda model, f: model.fc(model.avgpool(f).flatten(1)),
               lambda model, f: _channels_last(model.fc, f), exact=True)
MOBILENET_V3 = Split(lambda model, x: model.lastconv(model.blocks(model.conv(x))),
                     lambda model, f: model.classifier(model.avgpool(f).flatten(1)),
                     lambda model, f: _channels_last(model.classifier, f), exact=False)


def _lcnet_features(model, x):
    from engine.lcnet import NET_CONFIG

    x = model.conv1(x)
    for name in NET_CONFIG:
        x = getattr(model, name)(x)
    return x


def _lcnet_expand(model, features):
    """PP-LCNet's 1x1 expansion with its activation (its dropout is the identity at inference)."""
    return model.hardswish(model.last_conv(features))


PP_LCNET = Split(_lcnet_features, lambda model, f: model.fc(_lcnet_expand(model, model.avg_pool(f)).flatten(1)),
                 lambda model, f: _channels_last(model.fc, _lcnet_expand(model, f)), exact=False)


@dataclass(frozen=True)
class Backbone:
    """A classifier family: how to build it, which sublayers form its head, where its weights come from."""

    name: str
    build: Callable[[int], "nn.Layer"]
    head: tuple[str, ...]
    weights_file: str
    weights_md5: str | None  # of Paddle's published file; None when Paddle's zoo does not publish it
    split: Split
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
             "mobilenet_v3_small_x1.0.pdparams", "34fe0e7c1f8b00b2b056ad6788d0590c", MOBILENET_V3),
    Backbone("mobilenet_v3_large", _vision_model("mobilenet_v3_large"), ("classifier",),
             "mobilenet_v3_large_x1.0.pdparams", "118db5792b4e183b925d8e8e334db3df", MOBILENET_V3),
    Backbone("resnet18", _vision_model("resnet18"), ("fc",), "resnet18.pdparams",
             "cf548f46534aa3560945be4b95cd11c4", RESNET),
    Backbone("resnet50", _vision_model("resnet50"), ("fc",), "resnet50.pdparams",
             "ca6f485ee1ab0492d38f323885b0ad80", RESNET),
    Backbone("pp_lcnet_x1_0", _pp_lcnet_x1_0, ("last_conv", "fc"), "PPLCNet_x1_0_pretrained.pdparams", None,
             PP_LCNET),
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
