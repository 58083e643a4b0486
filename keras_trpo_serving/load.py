"""``load_policy``: the right policy class for an exported file, chosen by its content."""
from __future__ import annotations

import os
from typing import Any, Optional

from keras_trpo_serving.c_policy import CPolicy, is_c_export
from keras_trpo_serving.errors import ModelLoadError
from keras_trpo_serving.litert_policy import LiteRtPolicy, is_tflite
from keras_trpo_serving.policy import DEFAULT_WARMUP, ExportedPolicy


def load_policy(path: str | os.PathLike, *, seed: Optional[int] = None, threads: int = 1,
                warmup: int = DEFAULT_WARMUP, **onnx_options: Any) -> ExportedPolicy:
    """A C export directory (``policy.h``, ``policy.c``) -> ``CPolicy`` (needs a C compiler);
    a TFLite flatbuffer (file identifier ``TFL3``) -> ``LiteRtPolicy`` (needs ai-edge-litert);
    anything else -> ``OnnxPolicy`` (ONNX or ORT format), which names the problem if it is
    neither. ``onnx_options`` (``sess_options``, ``providers``, ...) go to ``OnnxPolicy`` only.

    Raises:
      ModelLoadError: as the chosen class does; also for onnxruntime-only options with a
        .tflite file.
    """
    path = os.fspath(path)
    if is_c_export(path):
        if onnx_options:
            raise ModelLoadError(f"{path!r} is a C export; {', '.join(sorted(onnx_options))} apply to onnxruntime only")
        return CPolicy(path, seed=seed, warmup=warmup)
    try:
        tflite = os.path.isfile(path) and is_tflite(path)
    except OSError as e:
        raise ModelLoadError(f"cannot read {path!r}: {e.strerror or e}") from None
    if tflite:
        if onnx_options:
            raise ModelLoadError(f"{path!r} is a TFLite model; {', '.join(sorted(onnx_options))} "
                                 "apply to onnxruntime only")
        return LiteRtPolicy(path, seed=seed, threads=threads, warmup=warmup)
    from keras_trpo_serving.onnx_policy import OnnxPolicy  # here: loading a .tflite or C policy needs no onnxruntime
    return OnnxPolicy(path, seed=seed, threads=threads, warmup=warmup, **onnx_options)
