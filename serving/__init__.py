"""Run a keras-trpo policy exported to ONNX with onnxruntime alone (no TensorFlow).

    from serving import OnnxPolicy
    policy = OnnxPolicy("hopper.onnx")
    action = policy.act(obs)
"""
from serving.errors import InvalidObservation, ModelLoadError, NonFiniteObservation, ServingError
from serving.policy import OnnxPolicy, low_latency_options

__all__ = ["OnnxPolicy", "InvalidObservation", "NonFiniteObservation", "ModelLoadError", "ServingError",
           "low_latency_options"]
