"""Pure PaddlePaddle: configuration, backbones, data, trainer, metrics, the model bundle and its serving rule.

Used by the worker (training) and the web app (serving, validation); it imports no web or queue framework.
"""
