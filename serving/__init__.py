"""Run a keras-trpo policy exported to ONNX with onnxruntime alone, or to .tflite with
ai-edge-litert (no TensorFlow).

    from serving import OnnxPolicy, LiteRtPolicy, load_policy
    policy = OnnxPolicy("hopper.onnx")             # or LiteRtPolicy("hopper.tflite")
    policy = load_policy("hopper.tflite")          # the class chosen by the file's content
    action = policy.act(obs)
    action, state = policy.step(obs, state)        # a recurrent policy, stateless (state=None: zeros)
"""
from serving.errors import (InvalidNoise, InvalidObservation, InvalidState, ModelLoadError, NonFiniteObservation,
                            ServingError)
from serving.litert_policy import LiteRtPolicy
from serving.load import load_policy
from serving.policy import ExportedPolicy, OnnxPolicy, low_latency_options

__all__ = ["OnnxPolicy", "InvalidObservation", "InvalidNoise", "InvalidState", "NonFiniteObservation", "ModelLoadError", "ServingError",
           "low_latency_options",
           "LiteRtPolicy", "load_policy", "ExportedPolicy"]
