"""Export a trained keras_trpo agent to ONNX and SavedModel, verified against the agent.

    import keras_trpo
    from keras_trpo import export
    agent = keras_trpo.load("runs/hopper/agent.keras")
    export.to_onnx(agent, "hopper.onnx")
    export.to_ort(agent, "hopper.ort")                 # + hopper.required_operators.config
    export.to_saved_model(agent, "hopper_savedmodel/")
    export.to_tflite(agent, "hopper.tflite")           # LiteRT (ai-edge-litert) and TensorFlow Lite Micro
    export.to_c(agent, "hopper_c/")                    # C99: policy.h, policy.c, policy_weights.h
    export.to_onnx(agent, "hopper.onnx", stochastic=True)  # + input noise, output sampled_action (also ORT, .tflite)

Each exporter reads the agent once (``export.describe``: keras_trpo/export/description.py) and checks
the written file against it in keras_trpo/export/verify.py, the one harness every format plugs into.
"""
from __future__ import annotations

from keras_trpo_serving.lazy import lazy_attributes

# Lazy (PEP 562): `python -m keras_trpo.export` imports this package before its __main__ can quieten
# TensorFlow's start-up lines, so nothing here may import TensorFlow at import time.
_LAZY = {
    "ExportError": "keras_trpo.export.errors", "ExportVerificationError": "keras_trpo.export.errors",
    "PolicyDescription": "keras_trpo.export.description", "describe": "keras_trpo.export.description",
    "DEFAULT_OPSET": "keras_trpo.export.opsets", "ExportReport": "keras_trpo.export.report", "to_onnx": "keras_trpo.export.onnx_export",
    "verify_onnx": "keras_trpo.export.onnx_export",
    "OrtExportReport": "keras_trpo.export.ort", "to_ort": "keras_trpo.export.ort", "verify_ort": "keras_trpo.export.ort",
    "QUANTIZATIONS": "keras_trpo.export.quantize", "quantize_onnx": "keras_trpo.export.quantize",
    "to_saved_model": "keras_trpo.export.saved_model",
    "TfliteReport": "keras_trpo.export.tflite", "to_tflite": "keras_trpo.export.tflite", "verify_tflite": "keras_trpo.export.tflite",
    "CExportReport": "keras_trpo.export.c_export", "to_c": "keras_trpo.export.c_export", "verify_c": "keras_trpo.export.c_export",
}
__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
