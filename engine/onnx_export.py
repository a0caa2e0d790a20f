"""Convert Paddle inference models to ONNX: `python -m engine.onnx_export MODEL PARAMS TARGET [MODEL PARAMS TARGET ...]`.

Run as its own process by engine.runtimes.export_onnx. The first model must convert: if it does not, the process
exits non-zero with the reason on stderr. The others (the bundle's explain head) ride along: one that fails is
reported on stderr and leaves no target, and the process goes on.
"""
from __future__ import annotations

import sys

from engine.runtimes import ONNX_OPSET


def convert(model: str, params: str, target: str) -> None:
    import paddle2onnx

    # onnxoptimizer, not polygraphy: polygraphy's path switches on installing packages at run time.
    paddle2onnx.export(model, params, target, opset_version=ONNX_OPSET, auto_upgrade_opset=True, verbose=False,
                       enable_onnx_checker=True, optimize_tool="onnxoptimizer")


def main(*arguments: str) -> int:
    triples = [arguments[i:i + 3] for i in range(0, len(arguments) - 2, 3)]
    convert(*triples[0])
    for triple in triples[1:]:
        try:
            convert(*triple)
        except Exception as exc:  # paddle2onnx raises assorted errors
            print(f"{triple[2]}: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(*sys.argv[1:]))
    except Exception as exc:  # paddle2onnx raises assorted errors; the parent reports the last line
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
