"""``OnnxPolicy``: an exported keras-trpo policy run by onnxruntime, nothing else.

The only serving module that imports onnxruntime at import time: ``keras_trpo_serving.policy`` (the
runtime-independent ``ExportedPolicy``), LiteRT and C policies load without it."""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np
import onnxruntime as ort

from keras_trpo_serving.errors import ModelLoadError, check_count, first_line
from keras_trpo_serving.policy import ACTION_MASK, DEFAULT_WARMUP, NOISE, ExportedPolicy
from keras_trpo_serving.spaces import parse_metadata
from keras_trpo_serving.state import STATE_IN

# Bytes 4-7 of an ORT-format model: the FlatBuffer file identifier onnxruntime writes.
ORT_FORMAT_IDENTIFIER = b"ORTM"
# onnxruntime's type strings for the outputs the export writes.
_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(int64)": np.int64,
               "tensor(int32)": np.int32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
               "tensor(bool)": np.bool_, "tensor(float16)": np.float16}


def low_latency_options(threads: int = 1, allow_spinning: bool = False) -> ort.SessionOptions:
    """Session options for one small policy in a control loop on a small CPU.

    One intra-op thread and sequential execution: a few-layer MLP gains nothing from a thread
    pool, and handing work to pool threads costs more than the matmuls. No spinning: with
    ``threads > 1`` onnxruntime's pool threads otherwise busy-wait after each call, burning the
    cores the rest of the control loop needs between ticks (with one thread there is no pool
    and the setting changes nothing). All graph optimisations: fused nodes mean fewer kernel
    launches per call. Warnings are not logged (tf2onnx graphs trigger harmless "unused
    initializer" ones on every load).
    """
    check_count("threads", threads, 1)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    spin = "1" if allow_spinning else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return opts



def is_ort_format(path: str) -> bool:
    """Whether ``path`` holds an ORT-format model (a FlatBuffer with file identifier ``ORTM``)
    rather than an ONNX protobuf, whatever its name ends in."""
    with open(path, "rb") as f:
        head = f.read(8)
    return head[4:8] == ORT_FORMAT_IDENTIFIER


class OnnxPolicy(ExportedPolicy):
    """Load an exported policy, check inputs against its metadata, return actions.

    Args:
      path: an ``.onnx`` file or an ORT-format ``.ort`` file written by keras-trpo's export
        (an ORT-format file is recognised by its content, whatever its name ends in).
      seed: seeds the NumPy generator used by ``act(obs, deterministic=False)``.
      threads: onnxruntime intra-op threads (default 1; ignored if ``sess_options`` is given).
      allow_spinning: let onnxruntime's pool threads busy-wait for work (default False;
        ignored if ``sess_options`` is given). Only matters with ``threads > 1``.
      warmup: calls of each of ``act``'s two graph runs (deterministic action, distribution
        parameters) at batch 1 when loading, so the first real call runs at steady-state
        speed (default 3; 0 or False turns it off, True is 3). The load-time check below runs
        the graph once more regardless.
      sess_options: your own ``onnxruntime.SessionOptions`` instead of ``low_latency_options``.
      providers: onnxruntime execution providers (default ``["CPUExecutionProvider"]``).

    Raises:
      ModelLoadError: the file is missing, not a loadable ONNX or ORT-format model, or lacks
        the export's metadata, ``obs`` input or outputs.
      ValueError: ``threads`` below 1 or ``warmup`` below 0.

    ``act`` is safe to call from several threads at once (onnxruntime's ``run`` is
    thread-safe; the sampling generator is behind a lock), and so is ``step``; a recurrent
    policy's ``act`` keeps one state, one control loop's: other threads use ``step``.
    """

    def __init__(self, path: str | os.PathLike, *, seed: Optional[int] = None, threads: int = 1,
                 allow_spinning: bool = False, warmup: int = DEFAULT_WARMUP,
                 sess_options: Optional[ort.SessionOptions] = None, providers: Optional[Sequence[str]] = None):
        self.path = os.fspath(path)
        if isinstance(warmup, bool):
            warmup = DEFAULT_WARMUP if warmup else 0
        check_count("warmup", warmup, 0)
        if not os.path.exists(self.path):
            raise ModelLoadError(f"no model file at {self.path!r}")
        if not os.path.isfile(self.path):
            raise ModelLoadError(f"{self.path!r} is not a file")
        try:
            self.format = "ort" if is_ort_format(self.path) else "onnx"
        except OSError as e:
            raise ModelLoadError(f"cannot read {self.path!r}: {e.strerror or e}") from None
        options = sess_options or low_latency_options(threads, allow_spinning)
        if self.format == "ort":
            # onnxruntime picks the ORT parser by the ".ort" suffix alone; say it for any name
            # (this sets the entry on your sess_options too, if you gave some).
            options.add_session_config_entry("session.load_model_format", "ORT")
        try:
            self.session = ort.InferenceSession(self.path, options,
                                                providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as e:  # noqa: BLE001 - onnxruntime raises several opaque kinds
            kind = "ORT-format" if self.format == "ort" else "ONNX"
            raise ModelLoadError(f"{self.path!r} is not a loadable {kind} model: {first_line(e)}") from None
        meta = parse_metadata(self.session.get_modelmeta().custom_metadata_map, self.path)
        self._setup(meta, seed)
        self._check_graph(meta.param_names)
        self._run = self.session.run
        action_out = next(o for o in self.session.get_outputs() if o.name == "action")
        # The export writes the space's dtype; cast only if a graph says otherwise.
        self._cast_action = _ORT_DTYPES.get(action_out.type) != self._action_dtype
        self._probe()
        self._warm_up(int(warmup))

    def _check_graph(self, param_names: Sequence[str]) -> None:
        """The graph must match the contract: float inputs shaped like the metadata says (``obs``,
        or one per Dict key; ``state_in`` for a recurrent policy; ``noise`` and ``action_mask`` if
        the file has them), and ``action`` plus the distribution's parameters among the outputs (any order)."""
        inputs = self.session.get_inputs()
        names = sorted(i.name for i in inputs)
        outputs = {o.name for o in self.session.get_outputs()}
        self._check_input_names(names, outputs)
        for name, shape in self._graph_inputs().items():
            inp = next(i for i in inputs if i.name == name)
            if inp.type != "tensor(float)":
                raise ModelLoadError(f"{self.path!r}: input {name!r} is {inp.type}, expected tensor(float)")
            dims = list(inp.shape or [])
            expected = [None, *shape]
            # Symbolic dims (strings, None) match anything; fixed ones must agree with the metadata.
            if len(dims) != len(expected) or any(isinstance(d, int) and e is not None and d != e
                                                 for d, e in zip(dims, expected)):
                source = "state_size" if name == STATE_IN else "observation space"
                raise ModelLoadError(f"{self.path!r}: input {name!r} has shape {dims} but the metadata's {source} "
                                     f"needs [batch, {', '.join(map(str, shape))}]")
        needed = {"action", *param_names} - outputs
        if needed:
            raise ModelLoadError(f"{self.path!r} lacks outputs {sorted(needed)} for a {self.distribution} policy "
                                 f"(it has {sorted(outputs)})")
        noise = next((i for i in inputs if i.name == NOISE), None)
        dims = list(noise.shape or []) if noise is not None else []
        fixed_width = len(dims) == 2 and isinstance(dims[1], int)  # symbolic dims match anything
        if noise is not None and (noise.type != "tensor(float)" or len(dims) != 2
                                  or (fixed_width and dims[1] != self.noise_shape[0])):
            raise ModelLoadError(f"{self.path!r}: input 'noise' is {noise.type} {noise.shape}, expected float "
                                 f"[batch, {self.noise_shape[0]}]")
        self._check_noise_input(noise is not None, outputs)
        mask = next((i for i in inputs if i.name == ACTION_MASK), None)
        dims = list(mask.shape or []) if mask is not None else []
        if mask is not None and (mask.type != "tensor(float)" or len(dims) != 2):
            raise ModelLoadError(f"{self.path!r}: input {ACTION_MASK!r} is {mask.type} {mask.shape}, expected float "
                                 "[batch, mask width]")
        # A symbolic width (a string or None) is -1: any; _check_mask_input compares a fixed one.
        self._check_mask_input(None if mask is None else (dims[1] if isinstance(dims[1], int) else -1))
