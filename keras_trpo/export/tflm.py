"""The .tflite on TensorFlow Lite Micro: run it in tflite-micro's Python interpreter (the TFLM
C++ kernels and allocator), find the smallest arena it runs in, and write the operator list a
``MicroMutableOpResolver`` needs beside the file.

tflite-micro is a development package (``pip install tflite-micro``), not a requirement:
without it the check is skipped and the report says why. Its interpreter takes batch 1 only
(TFLM plans a static arena) and returns outputs in the flatbuffer's order without names, so the
names come from the file's ``serving_default`` signature.
"""
from __future__ import annotations

import contextlib
import faulthandler
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from keras_trpo.export.errors import ExportError, ExportVerificationError

INSTALL = "pip install tflite-micro"
RESOLVER_SUFFIX = ".micro_op_resolver.h"
MAX_ARENA = 16 << 20
# Operators TFLM has no kernel for, and what used them: today's graph has none (keras_trpo.layers.OneHot
# is SUB/ABS/RELU), but a file converted by another tool or an older keras_trpo may carry ONE_HOT.
UNSUPPORTED = {"ONE_HOT": "the one-hot encoding of Discrete observations"}
# MicroMutableOpResolver's Add* methods whose names are not the op name in CamelCase.
_ADD_METHOD = {"BATCH_MATMUL": "AddBatchMatMul", "L2_NORMALIZATION": "AddL2Normalization",
               "LOG_SOFTMAX": "AddLogSoftmax", "HARD_SWISH": "AddHardSwish", "LEAKY_RELU": "AddLeakyRelu"}


def runtime():
    """tflite-micro's interpreter module, or None when the package is not installed."""
    try:
        from tflite_micro.python.tflite_micro import runtime as micro
    except ImportError:
        return None
    return micro


def tflite_micro_version() -> str:
    try:
        from importlib.metadata import version

        return version("tflite-micro")
    except Exception:  # noqa: BLE001 - only for the report
        return "unknown"


def operators(model: bytes) -> list[str]:
    """The builtin operators of a flatbuffer's graph, sorted (``["ARG_MAX", "FULLY_CONNECTED", ...]``)."""
    from ai_edge_litert.tools import flatbuffer_utils as fb

    obj = fb.read_model_from_bytearray(bytearray(model))
    return sorted({fb.opcode_to_name(obj, op.opcodeIndex) for g in obj.subgraphs for op in g.operators})


def output_names(model: bytes) -> list[str]:
    """Signature output names in the order the graph lists its outputs (TFLM's ``get_output(k)``)."""
    from ai_edge_litert.tools import flatbuffer_utils as fb

    obj = fb.read_model_from_bytearray(bytearray(model))
    by_tensor = {o.tensorIndex: o.name.decode("utf-8") for o in obj.signatureDefs[0].outputs}
    return [by_tensor[t] for t in obj.subgraphs[0].outputs]


@contextlib.contextmanager
def quiet_native_output():
    """TFLM's C++ logs every failed allocation (the arena search makes many) to the process's
    stdout: point file descriptors 1 and 2 at /dev/null meanwhile."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [null]:
            os.close(fd)


def _interpreter(path: Path, arena: int):
    return runtime().Interpreter.from_file(str(path), arena_size=int(arena))


def _runs_here(path: Path, arena: int, probes: list[np.ndarray]) -> bool:
    try:
        it = _interpreter(path, arena)
        for k, x in enumerate(probes):
            it.set_input(x, k)
        it.invoke()
        return True
    except (RuntimeError, ValueError):
        return False


def _runs(path: Path, arena: int, probes: list[np.ndarray]) -> bool:
    """Whether the file loads and runs in an arena of ``arena`` bytes. In a forked child where the OS
    forks: tflite-micro's allocator can crash the process instead of failing when an arena is a little
    too small (measured: arenas a few hundred bytes short for graphs with SELECT_V2, STRIDED_SLICE or
    UNPACK, "Requested: 1, available 4294967281"), and a crash there means too small as well."""
    if not hasattr(os, "fork"):
        return _runs_here(path, arena, probes)
    pid = os.fork()
    if pid == 0:  # the child: TFLM only, then out without Python's or TensorFlow's clean-up
        ok = False
        faulthandler.disable()  # a crash here is an answer (too small), not a traceback for the user
        try:
            ok = _runs_here(path, arena, probes)
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _probes(path: Path, probe: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """One batch-1 input per graph input, in the graph's order: ``probe[name]`` (the observation
    inputs, ``state_in``), uniforms of 0.5 for ``noise`` (its width from the graph)."""
    from ai_edge_litert.tools import flatbuffer_utils as fb

    obj = fb.read_model_from_bytearray(bytearray(path.read_bytes()))
    graph = obj.subgraphs[0]
    names = input_names(path.read_bytes())
    return [np.ascontiguousarray(probe[n][:1], np.float32) if n in probe
            else np.full((1, int(graph.tensors[t].shape[-1])), 0.5, np.float32)
            for n, t in zip(names, graph.inputs)]


def smallest_arena(path: Path, probe: Mapping[str, np.ndarray]) -> int:
    """The smallest ``arena_size`` (to 16 bytes, TFLM's alignment) in which the file loads and runs
    (``probe``: one row of each input by name; ``noise`` may be left out)."""
    probe = _probes(path, probe)
    hi = 1024
    while not _runs(path, hi, probe):
        hi *= 2
        if hi > MAX_ARENA:
            raise ExportVerificationError(f"TFLite Micro cannot run {path} even with a {MAX_ARENA >> 20} MB arena")
    lo = 0  # fails (or untested)
    while hi - lo > 16:
        mid = (lo + hi) // 2 // 16 * 16
        if mid <= lo:
            break
        if _runs(path, mid, probe):
            hi = mid
        else:
            lo = mid
    return hi


def input_names(model: bytes) -> list[str]:
    """Signature input names in the order the graph lists its inputs (TFLM's ``set_input(x, k)``)."""
    from ai_edge_litert.tools import flatbuffer_utils as fb

    obj = fb.read_model_from_bytearray(bytearray(model))
    by_tensor = {i.tensorIndex: i.name.decode("utf-8") for i in obj.signatureDefs[0].inputs}
    return [by_tensor[t] for t in obj.subgraphs[0].inputs]


def micro_runner(path: Path, arena: int, names: list[str], inputs: list[str]):
    """The runner of a .tflite in tflite-micro (keras_trpo/export/inputs.py: inputs by name -> outputs
    ``names``), one row per ``invoke`` (TFLM's batch is 1); ``inputs``: the graph's input names in
    order. One interpreter, made on first use: a recurrent file is run step by step."""
    interpreters: list = []

    def run(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows: dict[str, list] = {n: [] for n in names}
        missing = set(inputs) - set(feeds)
        if missing:
            raise ExportVerificationError(f"TFLite Micro {path}: input(s) {sorted(missing)} not given")
        feeds = {k: np.asarray(feeds[k], np.float32) for k in inputs}
        with quiet_native_output():
            if not interpreters:
                interpreters.append(_interpreter(path, arena))
            it = interpreters[0]
            for i in range(len(feeds[inputs[0]])):
                for k, name in enumerate(inputs):
                    it.set_input(np.ascontiguousarray(feeds[name][i][None]), k)
                it.invoke()
                for k, n in enumerate(names):
                    rows[n].append(np.array(it.get_output(k))[0])
        return {n: np.stack(v) for n, v in rows.items()}

    return run


def resolver_path(path: Path) -> Path:
    """``policy.tflite`` -> ``policy.micro_op_resolver.h``."""
    return path.with_name(path.stem + RESOLVER_SUFFIX)


def _add_method(op: str) -> str:
    return _ADD_METHOD.get(op, "Add" + "".join(w.capitalize() for w in op.split("_")))


def resolver_header(model_name: str, ops: list[str], arena: Optional[int], version: str) -> str:
    """C++ header: the operator count and a function adding each operator to a MicroMutableOpResolver."""
    macro = re.sub(r"[^A-Za-z0-9]", "_", model_name).upper()
    adds = "\n".join(f"  if (resolver.{_add_method(op)}() != kTfLiteOk) return kTfLiteError;  // {op}" for op in ops)
    arena_line = (f"// Smallest tensor arena it ran in: {arena:,} bytes (tflite-micro {version}'s interpreter on the\n"
                  f"// exporting machine, 64-bit: a 32-bit MCU needs a little less). Give it some headroom.\n"
                  f"#define {macro}_ARENA_BYTES {arena}\n") if arena else ""
    return f"""// Operators of {model_name} for TensorFlow Lite Micro; written by keras_trpo's export.
//   #include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
//   #include "{Path(model_name).stem}{RESOLVER_SUFFIX}"
//   static tflite::MicroMutableOpResolver<{macro}_OP_COUNT> resolver;
//   RegisterPolicyOps(resolver);
// Operators: {', '.join(ops)}
#ifndef {macro}_MICRO_OP_RESOLVER_H
#define {macro}_MICRO_OP_RESOLVER_H

#define {macro}_OP_COUNT {len(ops)}
{arena_line}
template <unsigned int kOps>
inline TfLiteStatus RegisterPolicyOps(tflite::MicroMutableOpResolver<kOps>& resolver) {{
{adds}
  return kTfLiteOk;
}}

#endif  // {macro}_MICRO_OP_RESOLVER_H
"""


@dataclass
class MicroCheck:
    arena_bytes: int
    operators: list
    resolver_path: str
    version: str


def unsupported(ops: list[str]) -> Optional[str]:
    """Why TFLM cannot run a graph with ``ops`` (None if it can, as far as known)."""
    bad = [f"{op} ({UNSUPPORTED[op]})" for op in ops if op in UNSUPPORTED]
    return f"TensorFlow Lite Micro has no kernel for {', '.join(bad)}" if bad else None


def check_micro(path: Path, probe: Mapping[str, np.ndarray]) -> MicroCheck:
    """Find the smallest arena for the file at ``path`` and list its operators; ``ExportError``
    if tflite-micro is missing (callers check ``runtime()`` first to skip instead). ``probe``: one
    row of each input by name (``noise`` may be left out)."""
    if runtime() is None:
        raise ExportError(f"checking a .tflite on TensorFlow Lite Micro needs tflite-micro: {INSTALL}")
    data = path.read_bytes()
    with quiet_native_output():
        arena = smallest_arena(path, probe)
    return MicroCheck(arena, operators(data), str(resolver_path(path)), tflite_micro_version())
