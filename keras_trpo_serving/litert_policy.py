"""``LiteRtPolicy``: a keras-trpo policy exported to ``.tflite``, run by ai-edge-litert's
interpreter (LiteRT, TensorFlow Lite's runtime as its own package: no TensorFlow).

The metadata (spaces, distribution, env id) is JSON in the ``KERAS_TRPO_METADATA`` entry of
the flatbuffer's metadata table; keras_trpo/export/tflite.py writes it. Everything after loading (input
checks, actions, sampling) is ``ExportedPolicy``'s, shared with ``OnnxPolicy``.
"""
from __future__ import annotations

import json
import os
import threading
from typing import Optional

import numpy as np

from keras_trpo_serving.errors import ModelLoadError, check_count, first_line
from keras_trpo_serving.policy import ACTION_MASK, DEFAULT_WARMUP, NOISE, ExportedPolicy
from keras_trpo_serving.spaces import parse_metadata
from keras_trpo_serving.state import STATE_IN

METADATA_NAME = "KERAS_TRPO_METADATA"
SIGNATURE = "serving_default"
# Bytes 4-7 of a TFLite flatbuffer: its file identifier.
TFLITE_IDENTIFIER = b"TFL3"
INSTALL = "pip install -r keras_trpo_serving/requirements-litert.txt (or: pip install ai-edge-litert)"


def is_tflite(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a TFLite flatbuffer (file identifier ``TFL3``), whatever its name."""
    with open(path, "rb") as f:
        return f.read(8)[4:8] == TFLITE_IDENTIFIER


def _litert():
    try:
        from ai_edge_litert import interpreter, schema_py_generated
    except ImportError:
        raise ModelLoadError(f"running a .tflite policy needs ai-edge-litert: {INSTALL}") from None
    return interpreter, schema_py_generated


def read_metadata(data: bytes, path: str) -> dict[str, str]:
    """The export's metadata from a flatbuffer's ``KERAS_TRPO_METADATA`` entry; ``path`` is for errors.

    Read with the TFLite schema's generated accessors: only the metadata table and one buffer
    are touched, not the weights.
    """
    _, schema = _litert()
    try:
        model = schema.Model.GetRootAs(data, 0)
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            if entry.Name() != METADATA_NAME.encode():
                continue
            buf = model.Buffers(entry.Buffer())
            # Buffers of files over 2 GB live after the flatbuffer, at offset/size.
            raw = data[buf.Offset(): buf.Offset() + buf.Size()] if buf.Offset() > 1 else buf.DataAsNumpy().tobytes()
            props = json.loads(raw.decode("utf-8"))
            break
        else:
            raise ModelLoadError(f"{path!r} has no {METADATA_NAME} metadata: it was not exported by keras-trpo's "
                                 "export (python -m keras_trpo.export AGENT --tflite FILE)")
    except ModelLoadError:
        raise
    except Exception as e:  # noqa: BLE001 - a damaged flatbuffer fails in many ways: struct, index, unicode, JSON
        raise ModelLoadError(f"{path!r}: cannot read its {METADATA_NAME} metadata ({first_line(e)}); "
                             "the file is damaged or not a keras-trpo export") from None
    if not isinstance(props, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in props.items()):
        raise ModelLoadError(f"{path!r}: {METADATA_NAME} is not a JSON object of strings")
    return props


class LiteRtPolicy(ExportedPolicy):
    """Load a ``.tflite`` policy, check inputs against its metadata, return actions.

    The same interface as ``OnnxPolicy``: ``act``, ``step``, ``reset``, ``distribution_params``,
    ``metadata``, ``observation_space``, ``action_space``.

    Args:
      path: a ``.tflite`` file written by keras-trpo's export (float32 or int8-quantised).
      seed: seeds the NumPy generator used by ``act(obs, deterministic=False)``.
      threads: the interpreter's CPU threads (default 1: a small MLP gains nothing from more).
      warmup: batch-1 runs at load so the first real call runs at steady-state speed (default 3).

    Raises:
      ModelLoadError: ai-edge-litert is not installed; the file is missing, not a TFLite
        flatbuffer, lacks the export's metadata, ``serving_default`` signature, ``obs`` input
        or outputs, or cannot run.
      ValueError: ``threads`` below 1 or ``warmup`` below 0.

    A LiteRT interpreter runs one call at a time: ``act`` holds a lock around it, so several
    threads (the HTTP server's) may share one policy, their calls taking turns (a recurrent
    policy's ``act`` keeps one control loop's state: other threads use ``step``).
    """

    def __init__(self, path: str | os.PathLike, *, seed: Optional[int] = None, threads: int = 1,
                 warmup: int = DEFAULT_WARMUP):
        self.path = os.fspath(path)
        if isinstance(warmup, bool):  # as OnnxPolicy: True is the default count
            warmup = DEFAULT_WARMUP if warmup else 0
        check_count("threads", threads, 1)
        check_count("warmup", warmup, 0)
        interpreter, _ = _litert()
        if not os.path.exists(self.path):
            raise ModelLoadError(f"no model file at {self.path!r}")
        if not os.path.isfile(self.path):
            raise ModelLoadError(f"{self.path!r} is not a file")
        with open(self.path, "rb") as f:
            data = f.read()  # one read: the interpreter and the metadata see the same bytes
        if data[4:8] != TFLITE_IDENTIFIER:
            raise ModelLoadError(f"{self.path!r} is not a TFLite flatbuffer (no TFL3 identifier)")
        meta = parse_metadata(read_metadata(data, self.path), self.path)
        try:
            self.interpreter = interpreter.Interpreter(model_content=data, num_threads=int(threads))
        except Exception as e:  # noqa: BLE001 - ValueError/RuntimeError carrying the C++ message
            raise ModelLoadError(f"{self.path!r} is not a loadable TFLite model: {first_line(e)}") from None
        self.format = "tflite"
        self._setup(meta, seed)
        self._resolve_signature()
        self._lock = threading.Lock()  # one interpreter call at a time
        self._rows = -1  # batch size the interpreter's tensors are allocated for
        self._run = self._invoke
        self._probe()
        self._warm_up(int(warmup))

    def _resolve_signature(self) -> None:
        """The signature must match the contract (float inputs ``obs`` of shape ``[batch, *obs_shape]``,
        or one per Dict key, ``state_in [batch, S]`` for a recurrent policy, ``noise`` and
        ``action_mask [batch, W]`` if the file has them; ``action`` and the
        distribution's parameters among the outputs); keep the tensor indices ``_invoke`` uses."""
        signatures = self.interpreter.get_signature_list()
        if SIGNATURE not in signatures:
            raise ModelLoadError(f"{self.path!r} has no {SIGNATURE!r} signature (has {sorted(signatures)}): "
                                 "it was not exported by keras-trpo's export")
        runner = self.interpreter.get_signature_runner(SIGNATURE)
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
        del runner  # it holds the interpreter's internals, which resize/allocate refuse to run beside
        self._check_input_names(list(inputs), set(outputs))
        for name, shape in self._graph_inputs().items():
            if np.dtype(inputs[name]["dtype"]) != np.float32:
                raise ModelLoadError(f"{self.path!r}: input {name!r} is {np.dtype(inputs[name]['dtype'])}, "
                                     "expected float32")
            dims = [int(d) for d in inputs[name]["shape_signature"]]
            if dims != [-1, *shape]:
                source = "state_size" if name == STATE_IN else "observation space"
                raise ModelLoadError(f"{self.path!r}: input {name!r} has shape {dims} (-1: any batch) but the "
                                     f"metadata's {source} needs [-1, {', '.join(map(str, shape))}]")
        needed = {"action", *self._param_names} - set(outputs)
        if needed:
            raise ModelLoadError(f"{self.path!r} lacks outputs {sorted(needed)} for a {self.distribution} policy "
                                 f"(it has {sorted(outputs)})")
        noise = inputs.get(NOISE)
        if noise is not None:
            dims = [int(d) for d in noise["shape_signature"]]
            if np.dtype(noise["dtype"]) != np.float32 or dims != [-1, self.noise_shape[0]]:
                raise ModelLoadError(f"{self.path!r}: input 'noise' is {np.dtype(noise['dtype'])}{dims}, expected "
                                     f"float32[-1, {self.noise_shape[0]}]")
        self._check_noise_input(noise is not None, set(outputs))
        mask = inputs.get(ACTION_MASK)
        width = None
        if mask is not None:
            dims = [int(d) for d in mask["shape_signature"]]
            if np.dtype(mask["dtype"]) != np.float32 or len(dims) != 2 or dims[0] != -1:
                raise ModelLoadError(f"{self.path!r}: input {ACTION_MASK!r} is {np.dtype(mask['dtype'])}{dims}, "
                                     "expected float32[-1, mask width]")
            width = dims[1]
        self._check_mask_input(width)
        # _invoke drives the interpreter's main graph directly (a signature runner resizes and
        # re-allocates on every call: 2.4x the latency); the signature must be that graph.
        self._in_index = {name: d["index"] for name, d in inputs.items()}
        self._first_input = next(iter(self._graph_inputs()))
        if sorted(d["index"] for d in self.interpreter.get_input_details()) != sorted(self._in_index.values()):
            raise ModelLoadError(f"{self.path!r}: signature {SIGNATURE!r} is not the model's main graph")
        self._out_index = {name: d["index"] for name, d in outputs.items()}
        self._cast_action = np.dtype(outputs["action"]["dtype"]) != self._action_dtype

    def _invoke(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """``OnnxPolicy``'s ``session.run(names, feed)``, on the interpreter."""
        rows = len(feed[self._first_input])  # every input has the same batch (feed is always complete)
        interp = self.interpreter
        with self._lock:
            if rows != self._rows:
                for name, value in feed.items():
                    interp.resize_tensor_input(self._in_index[name], list(value.shape), strict=True)
                interp.allocate_tensors()
                self._rows = rows
            for name, value in feed.items():
                interp.set_tensor(self._in_index[name], value)
            interp.invoke()
            return [interp.get_tensor(self._out_index[name]) for name in names]  # copies

    def _repr_extra(self) -> str:
        return f", quantization={self.metadata.get('quantization', 'none')}"
