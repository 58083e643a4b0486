"""Agent -> a C99 library (``NAME.h``, ``NAME.c``, ``NAME_weights.h``) for microcontrollers and
firmware control loops, verified by building it with the host's C compiler and running it
against the agent (keras_trpo/export/verify.py's harness) and its sampler against the agent's distribution
(keras_trpo/export/sampler_check.py).
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from keras_trpo.export.c_build import CLibrary, build_shared, compiler, compiler_version
from keras_trpo.export.c_source import c_action, check_name, render
from keras_trpo.export.description import PolicyDescription, describe
from keras_trpo.export.errors import ExportError, ExportVerificationError
from keras_trpo.export.inputs import ACTION_MASK, NOISE, STATE_IN, STATE_OUT, Feeds, Runner
from keras_trpo.export.metadata import policy_metadata
from keras_trpo.export.noise import SAMPLED_ACTION
from keras_trpo.export.observations import Episodes, Inputs, MaskedObservations
from keras_trpo.export.report import ExportReport
from keras_trpo.export.sampler_check import check_sampler
from keras_trpo.export.verify import SAMPLER_DRAWS, SAMPLER_OBSERVATIONS, SAMPLER_SEED, verify_file
from keras_trpo.plan.description import PolicyPlan
from keras_trpo_serving.files import atomic_write_bytes


@dataclass
class CExportReport(ExportReport):
    files: list = field(default_factory=list)  # the three files written
    weights_bytes: int = 0  # the float and int32 arrays of NAME_weights.h, in bytes
    compiler: Optional[str] = None  # the host compiler that built and verified it
    # NAME_sample (its own PRNG) tested like NAME_sample_noise's draws (sampler_*): tests and the smallest p-value.
    prng_sampler_tests: Optional[int] = None
    prng_sampler_min_p_value: Optional[float] = None


def _weights_bytes(p: PolicyPlan) -> int:
    """The float and int32 arrays of NAME_weights.h, in bytes (its tables of pointers aside)."""
    floats = sum(a.size for a in p.arrays)
    floats += 2 * p.head.n_out if p.log_std is not None else 0  # the Box bounds
    return 4 * (floats + 2 * len(c_action(p.action).nvec))


def packed_feeds(desc: PolicyDescription, feeds: Feeds) -> tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray],
                                                                  Optional[np.ndarray]]:
    """The inputs by name (keras_trpo/export/inputs.py) -> ``(packed obs [N, obs_size], state_in [N, S]
    or None, noise [N, width] or None, action_mask [N, W] or None)``: a Dict's keys side by side in
    sorted-key order, the layout of the C ``NAME_obs_t``."""
    n = len(feeds[desc.observation_names[0]])
    obs = np.concatenate([np.asarray(feeds[k], np.float32).reshape(n, -1) for k in desc.observation_names], axis=1)
    state, noise, mask = feeds.get(STATE_IN), feeds.get(NOISE), feeds.get(ACTION_MASK)
    return (obs, None if state is None else np.asarray(state, np.float32),
            None if noise is None else np.asarray(noise, np.float32),
            None if mask is None else np.asarray(mask, np.float32))


def c_runner(lib: CLibrary, desc: PolicyDescription) -> Runner:
    """The runner of the built library (keras_trpo/export/inputs.py: inputs by name -> ``{"action",
    params (, "sampled_action") (, "state_out")}``, shaped like the agent's outputs;
    ``sampled_action`` from ``NAME_sample_noise`` when ``noise`` is given)."""
    shape = tuple(desc.action_space.shape)

    def run(feeds: Feeds) -> dict[str, np.ndarray]:
        obs, state, noise, mask = packed_feeds(desc, feeds)
        out = {}
        if lib.state_size:
            params, _ = lib.params(obs, state, mask)
            action, out[STATE_OUT] = lib.act(obs, state, mask)
        else:
            params, action = lib.params(obs, mask=mask), lib.act(obs, mask=mask)
        out["action"] = action.reshape((len(obs),) + shape)
        if noise is not None:
            sampled = lib.sample_noise(obs, noise, state, mask) if lib.state_size else lib.sample_noise(obs, noise, mask=mask)
            if lib.state_size:
                sampled, state_after = sampled
                if not np.array_equal(state_after, out[STATE_OUT]):  # sampling must advance the state alike
                    raise ExportVerificationError(
                        f"C {lib.name}_sample_noise writes another state_out than {lib.name}_act (by up to "
                        f"{np.max(np.abs(state_after.astype(np.float64) - out[STATE_OUT])):.3g}; they must be equal)")
            out[SAMPLED_ACTION] = sampled.reshape((len(obs),) + shape)
        if desc.param_names == ("logits",):
            out["logits"] = params
        else:
            d = params.shape[1] // 2
            out["mean"], out["log_std"] = params[:, :d], params[:, d:]
        return out

    return run


def _check_directory(directory: Path, name: str) -> None:
    if directory.exists() and not directory.is_dir():
        raise ExportError(f"{str(directory)!r} is a file; the C export writes a directory of {name}.h, {name}.c and "
                          f"{name}_weights.h")
    if not directory.resolve().parent.exists():
        raise ExportError(f"directory {str(directory.resolve().parent)!r} does not exist")


def _library(path: Path, name: str, policy: PolicyPlan, masked: bool = False) -> CLibrary:
    action = c_action(policy.action)
    return CLibrary(path, name, action.family, policy.obs_size, action.size, policy.params_size,
                    policy.state_size, policy.action.mask_width if masked else 0)


def _verify(desc: PolicyDescription, policy: PolicyPlan, build_dir: Path, name: str, report: CExportReport,
            observations: Optional[Inputs]) -> None:
    """Build the files and run them through keras_trpo/export/verify.py's harness (observations for a
    feed-forward policy, 10 whole episodes carrying the library's own state for a recurrent one,
    ``NAME_sample_noise`` too), then test ``NAME_sample``'s PRNG draws."""
    lib_path = build_dir / f"lib{name}.so"
    build_shared(build_dir / f"{name}.c", lib_path)
    lib = _library(lib_path, name, policy, desc.masked)
    got = json.loads(lib.metadata())
    if got != report.metadata:
        keys = sorted(k for k in set(got) | set(report.metadata) if got.get(k) != report.metadata.get(k))
        raise ExportVerificationError(f"C {name}_metadata() does not return the export's metadata: {keys} differ")
    what = f"C {report.path}"
    checked = verify_file(desc, c_runner(lib, desc), what, stochastic=True, inputs=observations)
    checked.fill(report)
    # And NAME_sample with its own PRNG, at a few observations (recurrent: steps 0 and 1 of the first
    # lane, from the state the agent had there).
    ref, inputs, mask = checked.reference, checked.inputs, None
    if isinstance(inputs, Episodes):
        obs, state = inputs.observations[:2, 0], ref[STATE_IN][:2, 0]
        params = {n: ref[n][:2, 0] for n in desc.param_names}
        mask = None if inputs.masks is None else inputs.masks[:2, 0]
    else:
        k = min(SAMPLER_OBSERVATIONS, len(inputs))
        if isinstance(inputs, MaskedObservations):
            obs, mask = inputs.observations[:k], inputs.masks[:k]
        else:
            obs = inputs[:k]
        state = None
        params = {n: ref[n][:k] for n in desc.param_names}
    params = {n: v.reshape(len(obs), -1) for n, v in params.items()}
    draws = lib.sample(obs, SAMPLER_DRAWS, SAMPLER_SEED, state, mask)
    action = c_action(policy.action)
    result = check_sampler(action.family, params, draws, nvec=action.nvec, starts=action.starts, low=action.low,
                           high=action.high, what=f"{what} PRNG sampler")
    report.prng_sampler_tests, report.prng_sampler_min_p_value = result.tests, result.min_p_value


def to_c(agent, directory: str | os.PathLike, *, name: str = "policy", verify: bool = True,
         verify_observations: Optional[Inputs] = None, action_mask: Optional[bool] = None) -> CExportReport:
    """Write the agent's policy as C99 into ``directory`` (created if missing): ``NAME.h``,
    ``NAME.c`` and ``NAME_weights.h``.

    ``NAME_act(obs, action)``: deterministic action (argmax for Discrete, the mean clipped to the
    bounds for Box, per dimension for MultiDiscrete and MultiBinary), ``NAME_params``: logits or
    mean and log-std, ``NAME_sample(obs, &rng, action)``: a draw from the policy's distribution
    with a PRNG state the caller owns (``NAME_seed``). Observations are raw: normaliser and clip
    are inside. The metadata is in the header as constants and from ``NAME_metadata()`` as JSON.

    A Dict-observation policy takes a ``NAME_obs_t`` struct, one field per key (sorted-key order,
    a Discrete key's index as a float); a recurrent one takes ``state_in [NAME_STATE_SIZE]`` after
    the observation and writes ``state_out`` last (zeros at an episode start: ``NAME_reset_state``).

    With ``verify`` (default) the files are built with the host C compiler (``$CC`` or ``cc``)
    into a shared library, run on observations sampled from the space and visited in rollouts
    (a recurrent policy: stepped through 10 whole episodes carrying its own state,
    ``verify_observations`` then being ``keras_trpo.export.observations.Episodes``) and compared with the agent
    (``ExportVerificationError`` if a discrete action differs or a float output is beyond its tolerance,
    keras_trpo/export/compare.py), and the sampler's draws are tested against the
    agent's distribution; only then are the files moved into ``directory``.

    A masked agent (``action_mask``: as ``to_onnx``) gets ``const float action_mask[NAME_MASK_SIZE]``
    right after the observation in every function (1 valid, 0 invalid): the argmax, the sampler and
    ``NAME_params`` use the masked logits, as the other formats do; verified like them over whole env
    episodes under the env's masks. An unmasked export's files are unchanged by it.
    """
    desc = describe(agent, action_mask)
    name = check_name(name)
    directory = Path(directory)
    _check_directory(directory, name)
    start = time.perf_counter()
    policy = desc.require_plan()
    meta = dict(policy_metadata(desc, stochastic=True), format="c")  # NAME_sample_noise: always there
    files = render(policy, name, meta, desc.masked)
    report = CExportReport(str(directory), sum(len(t.encode()) for t in files.values()), 0.0, metadata=meta,
                           stochastic=True, files=[str(directory / f) for f in files], weights_bytes=_weights_bytes(policy))
    if verify:
        report.compiler = compiler_version(compiler())
        with tempfile.TemporaryDirectory(prefix="keras_trpo_c_") as tmp:
            for f, text in files.items():
                (Path(tmp) / f).write_text(text)
            _verify(desc, policy, Path(tmp), name, report, verify_observations)
    directory.mkdir(exist_ok=True)
    for f, text in files.items():
        atomic_write_bytes(directory / f, text.encode())
    report.seconds = time.perf_counter() - start
    return report


def verify_c(agent, directory: str | os.PathLike, *, name: str = "policy",
             observations: Optional[Inputs] = None) -> float:
    """Build the C files in ``directory`` with the host compiler and compare them with ``agent``
    (and their sampler with its distribution). Returns the worst float difference; raises
    ``ExportVerificationError`` as ``to_c`` does."""
    name = check_name(name)
    directory = Path(directory)
    missing = [f for f in (f"{name}.h", f"{name}.c", f"{name}_weights.h") if not (directory / f).is_file()]
    if missing:
        raise ExportError(f"{str(directory)!r} lacks {', '.join(missing)}")
    policy = describe(agent).require_plan()
    meta = json.loads(_metadata_of(directory, name, policy))
    desc = describe(agent, "action_mask" in meta)  # the files say whether they take a mask
    report = CExportReport(str(directory), 0, 0.0, metadata=meta)
    with tempfile.TemporaryDirectory(prefix="keras_trpo_c_") as tmp:
        for f in (f"{name}.h", f"{name}.c", f"{name}_weights.h"):
            (Path(tmp) / f).write_bytes((directory / f).read_bytes())
        _verify(desc, policy, Path(tmp), name, report, observations)
    return float(report.worst_difference)


def _metadata_of(directory: Path, name: str, policy: PolicyPlan) -> str:
    """The JSON ``NAME_metadata()`` returns, from a throwaway build."""
    with tempfile.TemporaryDirectory(prefix="keras_trpo_c_") as tmp:
        for f in (f"{name}.h", f"{name}.c", f"{name}_weights.h"):
            (Path(tmp) / f).write_bytes((directory / f).read_bytes())
        build_shared(Path(tmp) / f"{name}.c", Path(tmp) / f"lib{name}.so")
        lib = _library(Path(tmp) / f"lib{name}.so", name, policy)
        return lib.metadata()
