"""Export a trained keras_trpo agent to ONNX and SavedModel, verified against the agent.

    import keras_trpo, export
    agent = keras_trpo.load("runs/hopper/agent.keras")
    export.to_onnx(agent, "hopper.onnx")
    export.to_ort(agent, "hopper.ort")                 # + hopper.required_operators.config
    export.to_saved_model(agent, "hopper_savedmodel/")
    export.to_tflite(agent, "hopper.tflite")           # LiteRT (ai-edge-litert)
"""
from export.errors import ExportError, ExportVerificationError
from export.onnx_export import DEFAULT_OPSET, ExportReport, to_onnx, verify_onnx
from export.ort import OrtExportReport, to_ort, verify_ort
from export.quantize import QUANTIZATIONS, quantize_onnx
from export.saved_model import to_saved_model
from export.tflite import TfliteReport, to_tflite, verify_tflite

__all__ = ["to_onnx", "to_saved_model", "verify_onnx", "ExportReport", "ExportError", "ExportVerificationError", "DEFAULT_OPSET",
           "to_ort", "verify_ort", "OrtExportReport", "quantize_onnx", "QUANTIZATIONS",
           "to_tflite", "verify_tflite", "TfliteReport"]
