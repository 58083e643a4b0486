"""Run a keras-trpo policy exported to ONNX with onnxruntime alone, or to .tflite with
ai-edge-litert (no TensorFlow).

    from keras_trpo_serving import OnnxPolicy, LiteRtPolicy, load_policy
    policy = OnnxPolicy("hopper.onnx")             # or LiteRtPolicy("hopper.tflite")
    policy = load_policy("hopper.tflite")          # the class chosen by the file's content
    action = policy.act(obs)
    action, state = policy.step(obs, state)        # a recurrent policy, stateless (state=None: zeros)

The public names are imported on first use (PEP 562): a LiteRT- or C-only install imports this package
without onnxruntime, and ``keras_trpo_serving.files`` (standard library only) without NumPy.
"""
from keras_trpo_serving.lazy import lazy_attributes

_LAZY = {
    "OnnxPolicy": "keras_trpo_serving.onnx_policy",
    "low_latency_options": "keras_trpo_serving.onnx_policy",
    "LiteRtPolicy": "keras_trpo_serving.litert_policy",
    "load_policy": "keras_trpo_serving.load",
    "ExportedPolicy": "keras_trpo_serving.policy",
    **{name: "keras_trpo_serving.errors" for name in ("InvalidObservation", "InvalidNoise", "InvalidState", "InvalidActionMask",
                                                     "NonFiniteObservation", "ModelLoadError", "ServingError")},
}

__all__ = ["OnnxPolicy", "InvalidObservation", "InvalidNoise", "InvalidState", "InvalidActionMask", "NonFiniteObservation", "ModelLoadError",
           "ServingError", "low_latency_options", "LiteRtPolicy", "load_policy", "ExportedPolicy"]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
