"""Pure PaddlePaddle: configuration, backbones, data, trainer, metrics, the model bundle and its serving rule.

Used by the worker (training) and the web app (serving, validation); it imports no web or queue framework.
"""
from engine.cpumath import tune_cpu_math

tune_cpu_math()  # before Paddle's math library first runs (see engine.cpumath)
