"""Run a keras-trpo policy exported to ONNX with onnxruntime alone, or to .tflite with
ai-edge-litert (no TensorFlow).

    from keras_trpo_serving import OnnxPolicy, LiteRtPolicy, load_policy
    policy = OnnxPolicy("hopper.onnx")             # or LiteRtPolicy("hopper.tflite")
    policy = load_policy("hopper.tflite")          # the class chosen by the file's content
    action = policy.act(obs)
    action, state = policy.step(obs, state)        # a recurrent policy, stateless (state=None: zeros)
"""
from keras_trpo_serving.errors import (InvalidNoise, InvalidObservation, InvalidState, ModelLoadError, NonFiniteObservation,
                            ServingError)
from keras_trpo_serving.litert_policy import LiteRtPolicy
from keras_trpo_serving.load import load_policy
from keras_trpo_serving.policy import ExportedPolicy

# onnxruntime is imported on first use of these, so a LiteRT- or C-only install imports serving without it.
_ONNX_NAMES = ("OnnxPolicy", "low_latency_options")


def __getattr__(name: str):
    if name in _ONNX_NAMES:
        from keras_trpo_serving import onnx_policy
        value = globals()[name] = getattr(onnx_policy, name)  # bound here: later lookups skip this
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_ONNX_NAMES))


__all__ = ["OnnxPolicy", "InvalidObservation", "InvalidNoise", "InvalidState", "NonFiniteObservation", "ModelLoadError", "ServingError",
           "low_latency_options",
           "LiteRtPolicy", "load_policy", "ExportedPolicy"]
