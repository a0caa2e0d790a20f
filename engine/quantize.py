"""The int8 variant of a bundle: static post-training quantization of its ONNX model with ONNX Runtime
(int8 weights per channel, uint8 activations), calibrated on training images, then judged against the
float model on the validation images.

It is kept (and so offered as the `onnx_int8` runtime) only when it is measurably faster on this device
and its validation accuracy drops by at most the allowed points; otherwise the report says why and the
file is removed. On CPUs without fast int8 instructions, and for small networks, int8 is often slower.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.messages import N_, Message
from engine.runtimes import ModelFiles, median_ms, open_session

log = logging.getLogger(__name__)
INT8_FILE = "model.int8.onnx"
FASTER_BY = 0.95  # "measurably faster": at most 95% of the float model's time per image
CALIBRATION_IMAGES = 64


@dataclass
class Int8Request:
    """What the export needs to build and judge the variant: normalised NCHW float32 batches."""

    calibration: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    max_accuracy_drop: float  # percentage points


def _quantize(source: Path, target: Path, calibration: np.ndarray) -> None:
    """Prepare the graph (constants folded into initializers, BatchNorm fused into convolutions, so the
    weights can be quantized at all), then quantize it statically."""
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    onnxruntime.set_default_logger_severity(3)
    prepared = target.with_name(f"{target.name}.prepared")
    try:
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        name = onnxruntime.InferenceSession(str(prepared), providers=["CPUExecutionProvider"]).get_inputs()[0].name

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.batches = iter([{name: calibration[i:i + 1]} for i in range(len(calibration))])

            def get_next(self):
                return next(self.batches, None)

        quantize_static(str(prepared), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        prepared.unlink(missing_ok=True)


def _accuracy(session, images: np.ndarray, labels: np.ndarray, batch: int = 32) -> float:
    predicted = np.concatenate([session(images[i:i + batch]).argmax(axis=1) for i in range(0, len(images), batch)])
    return float((predicted == labels).mean())


def _ms_per_image(session, image: np.ndarray, repeats: int = 20) -> float:
    return median_ms(session, image, repeats)


def build_int8(onnx_model: Path, request: Int8Request, cpu_threads: int = 1) -> dict:
    """Quantize `onnx_model` into INT8_FILE beside it and judge it; the file stays only when it is used.

    Returns the report: accuracies, drop in points, ms per image of both, `used`, and `reason`."""
    target = onnx_model.with_name(INT8_FILE)
    calibration = request.calibration[:CALIBRATION_IMAGES]
    try:
        _quantize(onnx_model, target, calibration)
        files = ModelFiles(onnx_model, onnx_model, onnx_model, target)
        float_session = open_session(files, "onnx", "cpu", cpu_threads)
        int8_session = open_session(files, "onnx_int8", "cpu", cpu_threads)
        float_acc = _accuracy(float_session, request.val_images, request.val_labels)
        int8_acc = _accuracy(int8_session, request.val_images, request.val_labels)
        one = request.val_images[:1]
        float_ms, int8_ms = _ms_per_image(float_session, one), _ms_per_image(int8_session, one)
    except Exception as exc:  # the quantizer meets an operator it cannot handle, or the result cannot run
        target.unlink(missing_ok=True)
        log.warning("int8 variant failed: %s", exc)
        prefix = "quantization failed: "  # the reason stays within 500 characters
        return {"used": False, **refusal(Message(N_("quantization failed: %(error)s"),
                                                 {"error": f"{type(exc).__name__}: {exc}"[:500 - len(prefix)]}))}
    drop = round((float_acc - int8_acc) * 100, 2)
    report = {"calibration_images": len(calibration), "val_images": int(len(request.val_labels)),
              "float_accuracy": round(float_acc, 5), "int8_accuracy": round(int8_acc, 5), "accuracy_drop_points": drop,
              "float_ms": float_ms, "int8_ms": int8_ms, "max_accuracy_drop_points": request.max_accuracy_drop}
    if int8_ms > float_ms * FASTER_BY:
        reason = Message(N_("not faster on this CPU (%(int8_ms)s ms against %(float_ms)s ms per image)"),
                         {"int8_ms": format(int8_ms, ".2f"), "float_ms": format(float_ms, ".2f")})
    elif drop > request.max_accuracy_drop:
        reason = Message(N_("validation accuracy drops %(drop)s points (at most %(max)s allowed)"),
                         {"drop": format(drop, ".2f"), "max": format(request.max_accuracy_drop, "g")})
    else:
        reason = None
    if reason:
        target.unlink(missing_ok=True)
        return {**report, "used": False, **refusal(reason)}
    return {**report, "used": True, "reason": None}


def refusal(reason: Message) -> dict:
    """Why the int8 variant is not used, as the report keeps it: the English `reason`, and its template and
    parameters for the web app to show it in the reader's language."""
    form = reason.stored()
    return {"reason": str(reason), "reason_template": form["template"], "reason_params": form["params"]}
