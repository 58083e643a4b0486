"""Export a trained keras_trpo agent to ONNX and SavedModel, verified against the agent.

    import keras_trpo, export
    agent = keras_trpo.load("runs/hopper/agent.keras")
    export.to_onnx(agent, "hopper.onnx")
    export.to_ort(agent, "hopper.ort")                 # + hopper.required_operators.config
    export.to_saved_model(agent, "hopper_savedmodel/")
    export.to_tflite(agent, "hopper.tflite")           # LiteRT (ai-edge-litert) and TensorFlow Lite Micro
    export.to_c(agent, "hopper_c/")                    # C99: policy.h, policy.c, policy_weights.h
    export.to_onnx(agent, "hopper.onnx", stochastic=True)  # + input noise, output sampled_action (also ORT, .tflite)
"""
from __future__ import annotations

from keras_trpo.lazy import lazy_attributes

# Lazy (PEP 562): `python -m export` imports this package before its __main__ can quieten
# TensorFlow's start-up lines, so nothing here may import TensorFlow at import time.
_LAZY = {
    "ExportError": "export.errors", "ExportVerificationError": "export.errors",
    "DEFAULT_OPSET": "export.onnx_export", "ExportReport": "export.onnx_export", "to_onnx": "export.onnx_export",
    "verify_onnx": "export.onnx_export",
    "OrtExportReport": "export.ort", "to_ort": "export.ort", "verify_ort": "export.ort",
    "QUANTIZATIONS": "export.quantize", "quantize_onnx": "export.quantize",
    "to_saved_model": "export.saved_model",
    "TfliteReport": "export.tflite", "to_tflite": "export.tflite", "verify_tflite": "export.tflite",
    "CExportReport": "export.c_export", "to_c": "export.c_export", "verify_c": "export.c_export",
}
__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
