"""Convert a Paddle inference model to ONNX: `python -m engine.onnx_export MODEL PARAMS TARGET`.

Run as its own process by engine.runtimes.export_onnx. Exits non-zero with the reason on stderr.
"""
from __future__ import annotations

import sys

from engine.runtimes import ONNX_OPSET


def main(model: str, params: str, target: str) -> int:
    import paddle2onnx

    # onnxoptimizer, not polygraphy: polygraphy's path switches on installing packages at run time.
    paddle2onnx.export(model, params, target, opset_version=ONNX_OPSET, auto_upgrade_opset=True, verbose=False,
                       enable_onnx_checker=True, optimize_tool="onnxoptimizer")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(*sys.argv[1:4]))
    except Exception as exc:  # paddle2onnx raises assorted errors; the parent reports the last line
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
