"""PP-LCNet (arXiv:2109.15099): a CPU-friendly backbone that paddle.vision.models lacks.

Layer names follow PaddleClas so that its `PPLCNet_x1_0_pretrained.pdparams` loads by name.
"""
from __future__ import annotations

from paddle import nn

# kernel, in channels, out channels, stride, squeeze-excite
NET_CONFIG = {
    "blocks2": [(3, 16, 32, 1, False)],
    "blocks3": [(3, 32, 64, 2, False), (3, 64, 64, 1, False)],
    "blocks4": [(3, 64, 128, 2, False), (3, 128, 128, 1, False)],
    "blocks5": [(3, 128, 256, 2, False)] + [(5, 256, 256, 1, False)] * 5,
    "blocks6": [(5, 256, 512, 2, True), (5, 512, 512, 1, True)],
}


def make_divisible(value: float, divisor: int = 8) -> int:
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNLayer(nn.Layer):
    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2D(in_channels, out_channels, kernel, stride=stride, padding=(kernel - 1) // 2,
                              groups=groups, weight_attr=nn.initializer.KaimingNormal(), bias_attr=False)
        self.bn = nn.BatchNorm2D(out_channels)
        self.hardswish = nn.Hardswish()

    def forward(self, x):
        return self.hardswish(self.bn(self.conv(x)))


class SEModule(nn.Layer):
    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        self.conv1 = nn.Conv2D(channels, channels // reduction, 1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2D(channels // reduction, channels, 1)
        self.hardsigmoid = nn.Hardsigmoid()

    def forward(self, x):
        scale = self.hardsigmoid(self.conv2(self.relu(self.conv1(self.avg_pool(x)))))
        return x * scale


class DepthwiseSeparable(nn.Layer):
    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, use_se: bool):
        super().__init__()
        self.use_se = use_se
        self.dw_conv = ConvBNLayer(in_channels, in_channels, kernel, stride, groups=in_channels)
        if use_se:
            self.se = SEModule(in_channels)
        self.pw_conv = ConvBNLayer(in_channels, out_channels, 1, 1)

    def forward(self, x):
        x = self.dw_conv(x)
        if self.use_se:
            x = self.se(x)
        return self.pw_conv(x)


class PPLCNet(nn.Layer):
    """PP-LCNet with a width multiplier `scale`; x1.0 is the default."""

    def __init__(self, num_classes: int = 1000, scale: float = 1.0, dropout: float = 0.2,
                 class_expand: int = 1280):
        super().__init__()
        self.conv1 = ConvBNLayer(3, make_divisible(16 * scale), 3, 2)
        for name, blocks in NET_CONFIG.items():
            layers = [DepthwiseSeparable(make_divisible(cin * scale), make_divisible(cout * scale), k, s, se)
                      for k, cin, cout, s, se in blocks]
            setattr(self, name, nn.Sequential(*layers))
        self.avg_pool = nn.AdaptiveAvgPool2D(1)
        last_channels = make_divisible(NET_CONFIG["blocks6"][-1][2] * scale)
        self.last_conv = nn.Conv2D(last_channels, class_expand, 1, bias_attr=False)
        self.hardswish = nn.Hardswish()
        self.dropout = nn.Dropout(p=dropout, mode="downscale_in_infer")
        self.flatten = nn.Flatten(start_axis=1, stop_axis=-1)
        self.fc = nn.Linear(class_expand, num_classes)

    def forward(self, x):
        x = self.conv1(x)
        for name in NET_CONFIG:
            x = getattr(self, name)(x)
        x = self.hardswish(self.last_conv(self.avg_pool(x)))
        return self.fc(self.flatten(self.dropout(x)))


def pp_lcnet_x1_0(num_classes: int = 1000) -> PPLCNet:
    return PPLCNet(num_classes=num_classes, scale=1.0)


__all__ = ["PPLCNet", "pp_lcnet_x1_0"]
