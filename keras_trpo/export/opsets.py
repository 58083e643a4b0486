"""The ONNX opsets the exports write (TensorFlow-free, so the command line checks --opset before its import)."""
from __future__ import annotations

from keras_trpo.export.errors import ExportError

# Opset 17: supported by tf2onnx 1.17 and every onnxruntime since 1.14, so files run on older devices too.
DEFAULT_OPSET = 17
OPSETS = range(13, 19)  # tf2onnx 1.17's range


def check_opset(opset: object) -> int:
    """``opset`` if it is an integer in ``OPSETS``, else ``ExportError`` naming the range."""
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in OPSETS:
        raise ExportError(f"opset must be an integer from {OPSETS[0]} to {OPSETS[-1]} (tf2onnx 1.17's range), "
                          f"got {opset!r}")
    return opset
