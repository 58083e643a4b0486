"""Agent -> LiteRT (``.tflite``): a SavedModel converted by the TFLite converter, the export's
metadata in the flatbuffer's own metadata table, verified with ai-edge-litert's interpreter.

Why not ``TFLiteConverter.from_keras_model``: with Keras 3 it breaks. The SavedModel converted
is the one ``to_saved_model`` writes (``saved_model.write_saved_model``), which tracks the
``tf.Variable`` under each Keras weight so the converter freezes them into constants
(``FULLY_CONNECTED`` ops with constant weights) rather than leaving uninitialised resource
variables (every output NaN).
"""
from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from keras_trpo.export import tflm
from keras_trpo.export.description import PolicyDescription, describe
from keras_trpo.export.errors import ExportError, ExportVerificationError
from keras_trpo.export.graph import serving_function
from keras_trpo.export.inputs import Feeds, Runner, run_in_batches
from keras_trpo.export.metadata import policy_metadata
from keras_trpo.export.observations import (Episodes, Inputs, MaskedObservations, default_calibration,
                                            verification_observations)
from keras_trpo.export.quantize import DYNAMIC, STATIC, canonical, quantized_path, refuse_stateful
from keras_trpo.export.reference import agent_reference
from keras_trpo.export.report import ExportReport
from keras_trpo.export.saved_model import SIGNATURE, write_saved_model
from keras_trpo.export.targets import check_target
from keras_trpo.export.verify import Verification, verify_file
from keras_trpo_serving.files import atomic_write_bytes

# Name of the Model.metadata entry (name -> buffer) holding the export's metadata as UTF-8 JSON,
# string keys to string values as in ONNX metadata_props. The TFLite schema keeps this table
# for user data; the converter adds its own "CONVERSION_METADATA" entry the same way.
# keras_trpo_serving/litert_policy.py reads the same name.
METADATA_NAME = "KERAS_TRPO_METADATA"
NOISE_METADATA = "noise"  # the metadata key a stochastic file has (keras_trpo/export/metadata.py)
MASK_METADATA = "action_mask"  # ... and a masked one
# static-int8 keeps these element-wise ops in float32: the observation normaliser
# ((obs - mean) * rsqrt(var + eps), clipped) and the action clip. One int8 scale for all raw
# observation dimensions (Hopper's range from ~0.05 to ~10) wipes out the small ones: measured
# on a Hopper-v5 policy (10,000 rollout observations), quantising them too made the mean
# action error 0.25 instead of 0.014.
FLOAT_OPS = ("SUB", "MUL", "MINIMUM", "MAXIMUM")
# ... and the first layer with weights, whose input is the normalised observation: one int8
# scale over all its dimensions, set by the rare values near the normaliser's +-10 clip, is
# coarse for the common ones near 0. Measured on the same policy: worst action error 0.34 with
# it quantised, 0.078 in float32 (mean 0.014 and 0.011); it costs ~3 KB of float weights.
WEIGHT_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "BATCH_MATMUL")
VERIFY_SAMPLED = 1000  # verification_observations: this many sampled from the space, then rollouts


@dataclass
class TfliteReport(ExportReport):
    """``ExportReport`` plus the quantised file's worst action difference on rollout observations
    alone (the sampled half of the verification set reaches beyond what calibration saw)."""

    quantized_rollout_worst_action_difference: Optional[float] = None
    # TensorFlow Lite Micro (keras_trpo/export/tflm.py): the float32 file run in tflite-micro's interpreter.
    micro_op_resolver_path: Optional[str] = None  # NAME.micro_op_resolver.h, the operators to register
    micro_operators: Optional[list] = None
    micro_verified_observations: int = 0
    micro_worst_difference: Optional[float] = None
    micro_arena_bytes: Optional[int] = None  # the smallest arena it ran in
    micro_skipped: Optional[str] = None  # why it was not run there
    micro_sampled_worst_difference: Optional[float] = None  # stochastic: as sampled_worst_difference, on TFLM
    micro_sampler_tests: Optional[int] = None
    micro_sampler_min_p_value: Optional[float] = None


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


def _litert():
    """ai-edge-litert's interpreter and flatbuffer tools, imported when first needed."""
    try:
        from ai_edge_litert import interpreter
        from ai_edge_litert.tools import flatbuffer_utils
    except ImportError:
        raise ExportError("exporting to .tflite needs ai-edge-litert (the LiteRT runtime: it writes the "
                          "metadata and verifies the file): pip install ai-edge-litert") from None
    return interpreter, flatbuffer_utils


def first_weight_node(model: bytes) -> list[str]:
    """Output tensor name of the first layer with weights (``WEIGHT_OPS``) of a float flatbuffer,
    as the quantisation debugger's ``denylisted_nodes`` names nodes (empty if there is none)."""
    _, fb = _litert()
    obj = fb.read_model_from_bytearray(bytearray(model))
    graph = obj.subgraphs[0]
    for op in graph.operators:  # stored in execution order
        if fb.opcode_to_name(obj, op.opcodeIndex) in WEIGHT_OPS:
            return [graph.tensors[op.outputs[0]].name.decode("utf-8")]
    return []


def _convert(saved_model_dir: str, mode: Optional[str], calibration: Optional[np.ndarray],
             float_model: Optional[bytes] = None) -> bytes:
    """SavedModel -> flatbuffer bytes, float32 or quantised; input and outputs keep their dtypes.

    ``dynamic-int8``: weights int8, activations quantised per call from their actual range.
    ``static-int8``: weights and activations int8 with ranges calibrated on ``calibration``,
    except ``FLOAT_OPS`` and the first layer with weights of ``float_model`` (see above);
    quantise/dequantise ops at the edges keep float32 obs in and the env's action dtype out.
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=[SIGNATURE])
    if mode is None:
        return converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == DYNAMIC:
        return converter.convert()
    denylisted_nodes = first_weight_node(float_model if float_model is not None else converter.convert())

    def dataset():
        for obs in calibration:
            yield {"obs": obs[None]}

    converter.representative_dataset = dataset
    # The converter's calibrator still runs tf.lite.Interpreter, which warns it is deprecated.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated", category=UserWarning)
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=dataset,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(FLOAT_OPS),
                                                                        denylisted_nodes=denylisted_nodes))
        return bytes(debugger.get_nondebug_quantized_model())


def with_metadata(model: bytes, metadata: Optional[dict[str, str]]) -> bytes:
    """``model`` with ``metadata`` as JSON in the Model.metadata entry ``METADATA_NAME``
    (an entry of that name already there is replaced; ``None`` only removes it)."""
    _, fb = _litert()
    obj = fb.read_model_from_bytearray(bytearray(model))
    obj.metadata = [m for m in (obj.metadata or []) if m.name.decode("utf-8") != METADATA_NAME]
    if metadata is not None:
        payload = fb.BufferT()
        payload.data = np.frombuffer(json.dumps(metadata, sort_keys=True).encode("utf-8"), np.uint8)
        obj.buffers.append(payload)
        entry = fb.schema_fb.MetadataT()
        entry.name = METADATA_NAME.encode("utf-8")
        entry.buffer = len(obj.buffers) - 1
        obj.metadata.append(entry)
    return bytes(fb.convert_object_to_bytearray(obj))


def read_metadata(model: bytes) -> dict[str, str]:
    """The ``METADATA_NAME`` entry of a flatbuffer as a dict (empty if there is none)."""
    _, fb = _litert()
    obj = fb.read_model_from_bytearray(bytearray(model))
    for m in obj.metadata or []:
        if m.name.decode("utf-8") == METADATA_NAME:
            return json.loads(bytes(obj.buffers[m.buffer].data).decode("utf-8"))
    return {}


def litert_outputs(model, feeds: Feeds, what: str) -> dict[str, np.ndarray]:
    """Run ``serving_default`` of a flatbuffer (bytes, or a signature runner already made) with
    ai-edge-litert on the inputs by name (keras_trpo/export/inputs.py)."""
    runner = _signature_runner(model, what) if isinstance(model, (bytes, bytearray)) else model
    return run_in_batches(lambda f: runner(**{k: np.ascontiguousarray(v, np.float32) for k, v in f.items()}), feeds)


def _signature_runner(model: bytes, what: str):
    interpreter, _ = _litert()
    try:
        return interpreter.Interpreter(model_content=model, num_threads=1).get_signature_runner(SIGNATURE)
    except Exception as e:  # noqa: BLE001 - the interpreter raises ValueError/RuntimeError with C++ text
        raise ExportVerificationError(f"ai-edge-litert cannot load {what}: {_first_line(e)}") from None


def action_difference(reference: dict, got: dict) -> tuple[float, Optional[float]]:
    """Worst absolute action difference and, for integer actions, the fraction of rows that differ."""
    a, b = got["action"].astype(np.float64), reference["action"].astype(np.float64)
    if not a.size:
        return 0.0, None
    worst = float(np.max(np.abs(a - b)))
    if np.issubdtype(reference["action"].dtype, np.integer):
        return worst, float(np.mean(np.any((a != b).reshape(len(a), -1), axis=1)))
    return worst, None


def _check_structure(reference: dict, got: dict, what: str) -> None:
    """A quantised file must still have every output, in the same shape and dtype."""
    for name, ref in reference.items():
        if name not in got:
            raise ExportVerificationError(f"{what}: output {name!r} is missing (has {sorted(got)})")
        dtype = np.dtype(np.int32) if ref.dtype == np.int64 else ref.dtype  # int32 actions: see keras_trpo/export/graph.py
        if got[name].shape != ref.shape or got[name].dtype != dtype:
            raise ExportVerificationError(f"{what}: output {name!r} is {got[name].dtype}{list(got[name].shape)}, "
                                          f"expected {dtype}{list(ref.shape)}")


def _calibration(desc: PolicyDescription, given: Optional[np.ndarray]) -> np.ndarray:
    if given is None:
        return default_calibration(desc)
    obs = np.asarray(given, np.float32)
    shape = desc.obs_shape
    if obs.ndim != len(shape) + 1 or obs.shape[1:] != shape or len(obs) == 0:
        raise ExportError(f"calibration_observations must have shape (n, {', '.join(map(str, shape))}) with n >= 1, "
                          f"got {obs.shape}")
    if not np.all(np.isfinite(obs)):
        raise ExportError("calibration_observations contain NaN or inf")
    return obs


def _probe(desc: PolicyDescription, checked_on: Inputs) -> dict[str, np.ndarray]:
    """One row of every input but ``noise`` (``tflm`` makes that), from what verification ran on
    (a masked policy's ``action_mask`` all ones)."""
    if isinstance(checked_on, Episodes):
        return desc.feeds(checked_on.observations[0][:1], np.zeros((1, desc.state_size), np.float32))
    if isinstance(checked_on, MaskedObservations):
        return desc.feeds(checked_on.observations[:1])
    return desc.feeds(np.asarray(checked_on)[:1])


def _micro(desc: PolicyDescription, path: Path, report: TfliteReport, checked: Optional[Verification],
           micro: Optional[bool]) -> None:
    """Write ``NAME.micro_op_resolver.h``; after a verification (``checked``), run the file in
    tflite-micro on the same inputs against the same reference (``micro=None``: if installed;
    ``True``: required; ``False``: not at all)."""
    report.micro_operators = tflm.operators(path.read_bytes())
    if micro is False:
        report.micro_skipped = "micro=False"
    elif checked is None:
        report.micro_skipped = "verification off"
    elif tflm.unsupported(report.micro_operators):
        report.micro_skipped = tflm.unsupported(report.micro_operators) + "; the C export (--c) runs this policy"
    elif tflm.runtime() is None:
        if micro:
            raise ExportError(f"micro=True: checking the .tflite on TensorFlow Lite Micro needs tflite-micro: {tflm.INSTALL}")
        report.micro_skipped = f"tflite-micro is not installed ({tflm.INSTALL})"
    else:
        data = path.read_bytes()
        check = tflm.check_micro(path, _probe(desc, checked.inputs))
        run = tflm.micro_runner(path, check.arena_bytes, tflm.output_names(data), tflm.input_names(data))
        on_micro = verify_file(desc, run, f"TFLite Micro {path}", stochastic=report.stochastic, inputs=checked.inputs,
                               reference=checked.reference)
        report.micro_worst_difference = on_micro.worst_difference
        if on_micro.sampler is not None:
            report.micro_sampled_worst_difference = on_micro.sampled_worst_difference
            report.micro_sampler_tests = on_micro.sampler.tests
            report.micro_sampler_min_p_value = on_micro.sampler.min_p_value
        report.micro_arena_bytes = check.arena_bytes
        report.micro_verified_observations = on_micro.observations
    target = tflm.resolver_path(path)
    atomic_write_bytes(target, tflm.resolver_header(path.name, report.micro_operators, report.micro_arena_bytes,
                                                    tflm.tflite_micro_version()).encode())
    report.micro_op_resolver_path = str(target)


def to_tflite(agent, path: str | os.PathLike, *, verify: bool = True, verify_observations: Optional[Inputs] = None,
              quantize: Optional[str] = None, calibration_observations: Optional[np.ndarray] = None,
              micro: Optional[bool] = None, stochastic: bool = False, action_mask: Optional[bool] = None) -> TfliteReport:
    """Write the agent's policy as a LiteRT flatbuffer for ai-edge-litert's interpreter.

    The same graph as the ONNX export under signature ``serving_default``: input ``obs``
    float32 ``[batch, *obs_shape]``, outputs ``action`` (env dtype) and the distribution
    parameters. The ONNX export's metadata (plus ``format``, ``quantization``) is JSON in the
    ``KERAS_TRPO_METADATA`` entry of the flatbuffer's metadata table.

    With ``verify`` (default) the written file runs in ai-edge-litert on observations sampled
    from the space and visited in rollouts; ``ExportVerificationError`` if a discrete action
    differs or a float output is beyond its tolerance (keras_trpo/export/compare.py).

    ``quantize="dynamic-int8"`` (or ``"int8"``) or ``"static-int8"`` also writes
    ``<name>.<quantize>.tflite`` and reports its size and action differences (not checked:
    quantisation changes outputs by design). ``static-int8`` is calibrated on
    ``calibration_observations`` (default: 1,000 observations the agent visits in its env,
    seed 1, or sampled from the space if it has no env id).

    TensorFlow Lite Micro: ``NAME.micro_op_resolver.h`` beside the file lists the operators a
    ``MicroMutableOpResolver`` must register. With ``verify`` and tflite-micro installed
    (``micro=None``; ``micro=True`` requires it, ``False`` skips it) the float32 file also runs
    in tflite-micro's interpreter on the same observations, to the same tolerance, and the
    smallest arena it runs in is reported (``micro_arena_bytes``).

    ``stochastic=True``: the ``noise`` input and ``sampled_action`` output (keras_trpo/export/noise.py),
    checked as ``to_onnx`` does, on LiteRT and on TensorFlow Lite Micro alike.

    Dict-observation and recurrent policies as ``to_onnx``: one input per key; ``state_in`` /
    ``state_out``, verified over 10 episodes of the env on LiteRT and TensorFlow Lite Micro
    (``verify_observations``: a ``keras_trpo.export.observations.Episodes``).

    ``action_mask``: the ``action_mask`` input after the observations, as ``to_onnx`` (default: a
    masked agent's files have it), on LiteRT and TensorFlow Lite Micro alike.
    """
    desc = describe(agent, action_mask)
    path = check_target(path, ".tflite", "TFLite")
    quantize = canonical(quantize)
    if quantize and stochastic:
        raise ExportError("quantize and stochastic cannot be combined: export the quantised copy without stochastic")
    refuse_stateful(desc, quantize)
    _litert()  # fail before converting if the runtime is missing
    start = time.perf_counter()
    calibration = _calibration(desc, calibration_observations) if quantize == STATIC else None
    meta = dict(policy_metadata(desc, stochastic=stochastic), format="tflite")
    with tempfile.TemporaryDirectory(prefix="keras_trpo_tflite_") as tmp:
        write_saved_model(desc, tmp, serving_function(desc, integer_actions=tf.int32, stochastic=stochastic),
                          stochastic=stochastic)  # int32: TFLite Micro
        try:
            model = _convert(tmp, None, None)
            quantized = _convert(tmp, quantize, calibration, model) if quantize else None
        except Exception as e:  # noqa: BLE001 - the converter raises many kinds; name the step
            raise ExportError(f"the TFLite converter could not convert the policy: {_first_line(e)}") from e
    atomic_write_bytes(path, with_metadata(model, meta))
    report = TfliteReport(str(path), path.stat().st_size, 0.0, metadata=meta, stochastic=stochastic)
    obs = reference = None
    if quantize or (verify and not desc.is_recurrent and not desc.masked):  # one reference for the file and its quantised copy
        obs = np.asarray(verify_observations if verify_observations is not None
                         else verification_observations(desc, n_sampled=VERIFY_SAMPLED), np.float32)
        reference = agent_reference(desc, obs)
    checked = None
    if verify:
        what = f"TFLite {path}"
        checked = verify_file(desc, litert_runner(path.read_bytes(), what), what, stochastic=stochastic,
                              inputs=obs if obs is not None else verify_observations, reference=reference)
        checked.fill(report)
    _micro(desc, path, report, checked, micro)
    if quantize:
        target = quantized_path(path, quantize)
        qmeta = dict(meta, quantization=quantize)
        if calibration is not None:
            qmeta["calibration_observations"] = str(len(calibration))
        atomic_write_bytes(target, with_metadata(quantized, qmeta))
        got = litert_outputs(target.read_bytes(), desc.feeds(obs), f"TFLite {target}")
        _check_structure(reference, got, f"TFLite {target}")
        report.quantization, report.quantized_path = quantize, str(target)
        report.quantized_size_bytes = target.stat().st_size
        (report.quantized_worst_action_difference,
         report.quantized_action_mismatch_fraction) = action_difference(reference, got)
        if calibration is not None:
            report.quantized_calibration_observations = len(calibration)
        if verify_observations is None and len(obs) > VERIFY_SAMPLED:
            rollout = slice(VERIFY_SAMPLED, None)
            report.quantized_rollout_worst_action_difference = action_difference(
                {"action": reference["action"][rollout]}, {"action": got["action"][rollout]})[0]
    report.seconds = time.perf_counter() - start
    return report


def litert_runner(model: bytes, what: str) -> Runner:
    """The runner of a flatbuffer (keras_trpo/export/inputs.py: inputs by name -> outputs by name), run by
    ai-edge-litert. One interpreter, made on first use: a recurrent file is run step by step."""
    runners: list = []

    def run(feeds: Feeds) -> dict[str, np.ndarray]:
        if not runners:
            runners.append(_signature_runner(model, what))
        return litert_outputs(runners[0], feeds, what)
    return run


def verify_tflite(agent, path: str | os.PathLike, observations: Optional[Inputs] = None) -> float:
    """Run a ``.tflite`` file with ai-edge-litert and compare it with ``agent``, like ``verify_onnx``;
    returns the worst float difference or raises ``ExportVerificationError``."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"no file at {str(path)!r}")
    what = f"TFLite {path}"
    data = path.read_bytes()
    meta = read_metadata(data)
    desc = describe(agent, bool(meta.get(MASK_METADATA)))
    return verify_file(desc, litert_runner(data, what), what, stochastic=bool(meta.get(NOISE_METADATA)),
                       inputs=observations).worst_difference
