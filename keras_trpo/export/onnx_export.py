"""Agent -> ONNX through tf2onnx, with metadata, a full checker pass and built-in verification."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Mapping, Optional

import numpy as np
import tensorflow as tf

from keras_trpo.export.errors import ExportError, ExportVerificationError
from keras_trpo.export.graph import input_signature, serving_function
from keras_trpo.export.inputs import OBS, is_recurrent
from keras_trpo.export.noise import NOISE
from keras_trpo.export.metadata import policy_metadata
from keras_trpo.export.quantize import STATIC, canonical, quantize_onnx
from keras_trpo.export.reference import agent_reference, refuse_quantize_stateful, require_agent
from keras_trpo.export.report import ExportReport
from keras_trpo.export.targets import check_target
from keras_trpo.export.verify import Feeds, default_calibration, run_in_batches, verification_observations, verify_file
from keras_trpo.serialization import atomic_write_bytes

# Names other modules and benchmarks imported from here before they had modules of their own.
__all__ = ["DEFAULT_OPSET", "ExportReport", "check_target", "default_calibration", "onnx_runner", "to_onnx",
           "verify_onnx"]

# Opset 17: supported by tf2onnx 1.17 and every onnxruntime since 1.14, so files run on older devices too.
DEFAULT_OPSET = 17


def onnx_runner(path: str | os.PathLike):
    """``obs [N, *obs_shape] (, noise [N, width]) -> outputs`` of an ONNX or ORT-format file, run
    by onnxruntime (``noise`` for a stochastic file; ``obs`` the feeds by input name for a Dict or
    recurrent file). The session is made once, on first use: a recurrent file is run step by step."""
    sessions: list = []

    def run(obs, noise=None):
        if not sessions:
            sessions.append(_session(str(path)))
        return _ort_outputs(sessions[0], obs, noise)
    return run


def _session(path: str):
    import onnxruntime as ort

    try:
        return ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime's errors are opaque; say which file
        raise ExportVerificationError(f"onnxruntime cannot load {path}: {e}") from e


def _ort_outputs(session, obs: Feeds, noise: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
    """``session`` (or a path) run on ``obs`` (an array for the input ``obs``, or feeds by name) and ``noise``."""
    if isinstance(session, (str, os.PathLike)):
        session = _session(str(session))
    names = [o.name for o in session.get_outputs()]
    feeds = dict(obs) if isinstance(obs, Mapping) else {OBS: np.asarray(obs, np.float32)}
    if noise is not None:
        feeds[NOISE] = np.asarray(noise, np.float32)
    return run_in_batches(lambda f: dict(zip(names, session.run(names, f))), feeds)


def to_onnx(agent, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET, verify: bool = True,
            verify_observations: Optional[np.ndarray] = None, quantize: Optional[str] = None,
            calibration_observations: Optional[np.ndarray] = None, stochastic: bool = False) -> ExportReport:
    """Write the agent's policy as ONNX: input ``obs`` float32 ``[batch, *obs_shape]``.

    Outputs ``action`` (deterministic, env dtype) and the distribution parameters
    (``logits`` or ``mean`` and ``log_std``). Observation normalisation is in the graph.
    With ``verify`` (default) the written file is run with onnxruntime on
    observations sampled from the space and from rollouts and compared with the
    agent; ``ExportVerificationError`` names the worst difference if it exceeds
    1e-5 (continuous) or any discrete action differs.

    ``quantize="dynamic-int8"`` (or its old name ``"int8"``) or ``"static-int8"`` also
    writes ``<name>.<quantize>.onnx`` and reports its size and worst action difference
    on the verification observations (not checked against a tolerance). Static
    quantisation is calibrated on ``calibration_observations`` (default: 1,000
    observations the agent visits in its env, or sampled from the space if it has no
    env id).

    A Dict-observation policy takes one input per key instead of ``obs`` (float32 ``[batch, d]``
    for a Box entry, ``[batch]`` for a Discrete one); a recurrent policy also takes ``state_in``
    ``[batch, S]`` and returns ``state_out`` (zeros at an episode start; keras_trpo/export/inputs.py) and is
    verified over 10 episodes of its env (``verify_observations``: an ``export.verify.Episodes``).

    ``stochastic=True`` adds the input ``noise`` float32 ``[batch, width]`` and the output
    ``sampled_action`` (keras_trpo/export/noise.py: uniforms for categorical heads, standard normals for a
    Gaussian); verification then also checks that with the same noise the file's sampled
    action equals the agent's, and tests the file's draws against the agent's distribution.
    """
    import onnx
    import tf2onnx

    require_agent(agent)
    path = check_target(path, ".onnx")
    quantize = canonical(quantize)
    if not isinstance(opset, int) or not 13 <= opset <= 18:
        raise ExportError(f"opset must be an integer from 13 to 18 (tf2onnx 1.17's range), got {opset!r}")
    if quantize and stochastic:
        raise ExportError("quantize and stochastic cannot be combined: export the quantised copy without stochastic")
    refuse_quantize_stateful(agent, quantize)
    start = time.perf_counter()
    signature = input_signature(agent, stochastic)
    fn = tf.function(serving_function(agent, stochastic=stochastic), input_signature=signature)
    try:
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature, opset=opset)
    except Exception as e:  # noqa: BLE001 - tf2onnx raises many kinds; name the step
        raise ExportError(f"tf2onnx could not convert the policy: {e}") from e
    meta = policy_metadata(agent, opset, stochastic)
    onnx.helper.set_model_props(proto, meta)
    proto.doc_string = f"keras_trpo {meta['keras_trpo_version']} policy for {meta['env_id'] or 'a custom env'}"
    onnx.checker.check_model(proto, full_check=True)
    atomic_write_bytes(path, proto.SerializeToString())
    report = ExportReport(str(path), path.stat().st_size, 0.0, opset=opset, metadata=meta, stochastic=stochastic)
    obs = reference = None
    if quantize or (verify and not is_recurrent(agent)):
        obs = np.asarray(verify_observations if verify_observations is not None
                         else verification_observations(agent), np.float32)
        reference = agent_reference(agent, obs)
    if verify:
        verify_file(agent, onnx_runner(path), f"ONNX {path}", report,
                    obs if obs is not None else verify_observations, reference)
    if quantize:
        calib = None
        if quantize == STATIC:
            calib = calibration_observations if calibration_observations is not None else default_calibration(agent)
        _quantize(report, path, quantize, obs, reference, calib)
    report.seconds = time.perf_counter() - start
    return report


def verify_onnx(agent, path: str | os.PathLike, observations: Optional[np.ndarray] = None) -> float:
    """Run an ONNX file with onnxruntime and compare it with ``agent``.

    Returns the worst continuous difference; raises ``ExportVerificationError``
    if it exceeds 1e-5 or any discrete action differs. A stochastic file's sampler is checked too;
    a recurrent file is stepped through episodes (``observations``: an ``export.verify.Episodes``).
    """
    require_agent(agent)
    report = ExportReport(str(path), 0, 0.0, stochastic=has_noise_input(path))
    verify_file(agent, onnx_runner(path), f"ONNX {path}", report, observations)
    return float(report.worst_difference)


def has_noise_input(path: str | os.PathLike) -> bool:
    """Whether an ONNX or ORT-format file is a stochastic export (has the ``noise`` input)."""
    session = _session(str(path))
    return NOISE in [i.name for i in session.get_inputs()]


def _quantize(report: ExportReport, path: Path, mode: str, obs: np.ndarray, reference: dict,
              calibration: Optional[np.ndarray]) -> None:
    q = quantize_onnx(path, mode, calibration_observations=calibration)
    got = _ort_outputs(q.path, obs)
    a, b = got["action"].astype(np.float64), reference["action"].astype(np.float64)
    discrete = np.issubdtype(reference["action"].dtype, np.integer)
    report.quantization, report.quantized_path = mode, q.path
    report.quantized_size_bytes = Path(q.path).stat().st_size
    report.quantized_worst_action_difference = float(np.max(np.abs(a - b))) if a.size else 0.0
    if a.size and discrete:
        report.quantized_action_mismatch_fraction = float(np.mean(np.any((a != b).reshape(len(a), -1), axis=1)))
    report.quantized_calibration_observations = q.calibration_observations or None
