"""Agent -> ONNX through tf2onnx, with metadata, a full checker pass and built-in verification."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from keras_trpo.export.description import PolicyDescription, describe
from keras_trpo.export.errors import ExportError, ExportVerificationError
from keras_trpo.export.graph import input_signature, serving_function
from keras_trpo.export.inputs import ACTION_MASK, Feeds, Runner, run_in_batches
from keras_trpo.export.metadata import policy_metadata
from keras_trpo.export.noise import NOISE
from keras_trpo.export.observations import Inputs, default_calibration, verification_observations
from keras_trpo.export.opsets import DEFAULT_OPSET, check_opset
from keras_trpo.export.quantize import STATIC, canonical, quantize_onnx, refuse_stateful
from keras_trpo.export.reference import agent_reference
from keras_trpo.export.report import ExportReport
from keras_trpo.export.targets import check_target
from keras_trpo.export.verify import verify_file
from keras_trpo_serving.files import atomic_write_bytes


def ort_session(path: str | os.PathLike):
    """An onnxruntime session on an ONNX or ORT-format file (CPU), or ``ExportVerificationError``."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime's errors are opaque; say which file
        raise ExportVerificationError(f"onnxruntime cannot load {path}: {e}") from e


def onnx_runner(path: str | os.PathLike) -> Runner:
    """The runner of an ONNX or ORT-format file (keras_trpo/export/inputs.py): inputs by name ->
    outputs by name, run by onnxruntime. The session is made once, on first use: a recurrent file
    is run step by step."""
    sessions: list = []

    def run(feeds: Feeds) -> dict[str, np.ndarray]:
        if not sessions:
            sessions.append(ort_session(path))
        names = [o.name for o in sessions[0].get_outputs()]
        return run_in_batches(lambda f: dict(zip(names, sessions[0].run(names, dict(f)))), feeds)
    return run


def has_noise_input(path: str | os.PathLike) -> bool:
    """Whether an ONNX or ORT-format file is a stochastic export (has the ``noise`` input)."""
    return NOISE in [i.name for i in ort_session(path).get_inputs()]


def has_mask_input(path: str | os.PathLike) -> bool:
    """Whether an ONNX or ORT-format file is a masked export (has the ``action_mask`` input)."""
    return ACTION_MASK in [i.name for i in ort_session(path).get_inputs()]


def write_onnx(desc: PolicyDescription, path: Path, opset: int, stochastic: bool) -> dict[str, str]:
    """Convert the serving function with tf2onnx and write it to ``path``, with the metadata
    (returned), after onnx's full checker pass. No verification."""
    import onnx
    import tf2onnx

    check_opset(opset)
    signature = input_signature(desc, stochastic)
    fn = tf.function(serving_function(desc, stochastic=stochastic), input_signature=signature)
    try:
        proto, _ = tf2onnx.convert.from_function(fn, input_signature=signature, opset=opset)
    except Exception as e:  # noqa: BLE001 - tf2onnx raises many kinds; name the step
        raise ExportError(f"tf2onnx could not convert the policy: {e}") from e
    meta = policy_metadata(desc, opset, stochastic)
    onnx.helper.set_model_props(proto, meta)
    proto.doc_string = f"keras_trpo {meta['keras_trpo_version']} policy for {meta['env_id'] or 'a custom env'}"
    onnx.checker.check_model(proto, full_check=True)
    atomic_write_bytes(path, proto.SerializeToString())
    return meta


def to_onnx(agent, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET, verify: bool = True,
            verify_observations: Optional[np.ndarray] = None, quantize: Optional[str] = None,
            calibration_observations: Optional[np.ndarray] = None, stochastic: bool = False,
            action_mask: Optional[bool] = None) -> ExportReport:
    """Write the agent's policy as ONNX: input ``obs`` float32 ``[batch, *obs_shape]``.

    Outputs ``action`` (deterministic, env dtype) and the distribution parameters
    (``logits`` or ``mean`` and ``log_std``). Observation normalisation is in the graph.
    With ``verify`` (default) the written file is run with onnxruntime on
    observations sampled from the space and from rollouts and compared with the
    agent; ``ExportVerificationError`` names the output and observation that differ
    if any discrete action differs or a float output is beyond
    ``1e-5 + 1e-5 * scale`` (scale: the largest value of that output for that
    observation; keras_trpo/export/compare.py).

    ``quantize="dynamic-int8"`` (or its old name ``"int8"``) or ``"static-int8"`` also
    writes ``<name>.<quantize>.onnx`` and reports its size and worst action difference
    on the verification observations (not checked against a tolerance). Static
    quantisation is calibrated on ``calibration_observations`` (default: 1,000
    observations the agent visits in its env, or sampled from the space if it has no
    env id).

    A Dict-observation policy takes one input per key instead of ``obs`` (float32 ``[batch, d]``
    for a Box entry, ``[batch]`` for a Discrete one); a recurrent policy also takes ``state_in``
    ``[batch, S]`` and returns ``state_out`` (zeros at an episode start; keras_trpo/export/inputs.py) and is
    verified over 10 episodes of its env (``verify_observations``: a ``keras_trpo.export.observations.Episodes``).

    ``stochastic=True`` adds the input ``noise`` float32 ``[batch, width]`` and the output
    ``sampled_action`` (keras_trpo/export/noise.py: uniforms for categorical heads, standard normals for a
    Gaussian); verification then also checks that with the same noise the file's sampled
    action equals the agent's, and tests the file's draws against the agent's distribution.

    A masked agent (``agent.masked``; ``action_mask=True`` / ``False`` to add or leave out the input)
    gets the input ``action_mask`` float32 ``[batch, W]`` after the observations (1 = valid, 0 =
    invalid, keras_trpo_serving/sampling.py's layout; metadata ``action_mask``): ``logits`` are the masked
    distribution's and ``action`` and ``sampled_action`` respect the mask; an all-ones mask gives the
    unmasked file's outputs. Verified over 10 whole episodes of the env under its own masks and on
    sampled observations under random valid masks (``report.invalid_actions``: 0).
    """
    desc = describe(agent, action_mask)
    path = check_target(path, ".onnx")
    quantize = canonical(quantize)
    if quantize and stochastic:
        raise ExportError("quantize and stochastic cannot be combined: export the quantised copy without stochastic")
    refuse_stateful(desc, quantize)
    start = time.perf_counter()
    meta = write_onnx(desc, path, opset, stochastic)
    report = ExportReport(str(path), path.stat().st_size, 0.0, opset=opset, metadata=meta, stochastic=stochastic)
    obs = reference = None
    if quantize or (verify and not desc.is_recurrent and not desc.masked):  # one reference for the file and its quantised copy
        obs = np.asarray(verify_observations if verify_observations is not None
                         else verification_observations(desc), np.float32)
        reference = agent_reference(desc, obs)
    if verify:
        verify_file(desc, onnx_runner(path), f"ONNX {path}", stochastic=stochastic,
                    inputs=obs if obs is not None else verify_observations, reference=reference).fill(report)
    if quantize:
        calib = None
        if quantize == STATIC:
            calib = calibration_observations if calibration_observations is not None else default_calibration(desc)
        _quantize(desc, report, path, quantize, obs, reference, calib)
    report.seconds = time.perf_counter() - start
    return report


def verify_onnx(agent, path: str | os.PathLike, observations: Optional[Inputs] = None) -> float:
    """Run an ONNX file with onnxruntime and compare it with ``agent`` (keras_trpo/export/verify.py).

    Returns the worst float difference; raises ``ExportVerificationError`` if a float output is
    beyond its tolerance (keras_trpo/export/compare.py) or a discrete action differs. A stochastic
    file's sampler is checked too; a recurrent file is stepped through episodes (``observations``:
    ``keras_trpo.export.observations.Episodes``).
    """
    desc = describe(agent, has_mask_input(path))
    return verify_file(desc, onnx_runner(path), f"ONNX {path}", stochastic=has_noise_input(path),
                       inputs=observations).worst_difference


def _quantize(desc: PolicyDescription, report: ExportReport, path: Path, mode: str, obs: np.ndarray, reference: dict,
              calibration: Optional[np.ndarray]) -> None:
    q = quantize_onnx(path, mode, calibration_observations=calibration)
    got = onnx_runner(q.path)(desc.feeds(obs))
    a, b = got["action"].astype(np.float64), reference["action"].astype(np.float64)
    discrete = np.issubdtype(reference["action"].dtype, np.integer)
    report.quantization, report.quantized_path = mode, q.path
    report.quantized_size_bytes = Path(q.path).stat().st_size
    report.quantized_worst_action_difference = float(np.max(np.abs(a - b))) if a.size else 0.0
    if a.size and discrete:
        report.quantized_action_mismatch_fraction = float(np.mean(np.any((a != b).reshape(len(a), -1), axis=1)))
    report.quantized_calibration_observations = q.calibration_observations or None
