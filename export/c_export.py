"""Agent -> a C99 library (``NAME.h``, ``NAME.c``, ``NAME_weights.h``) for microcontrollers and
firmware control loops, verified by building it with the host's C compiler and running it
against the agent (export/verify.py's harness) and its sampler against the agent's distribution
(export/sampler_check.py).
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

from export.c_build import CLibrary, build_shared, compiler, compiler_version
from export.c_model import CPolicy, c_policy
from export.c_source import check_name, render
from export.errors import ExportError, ExportVerificationError
from export.metadata import policy_metadata
from export.noise import SAMPLED_ACTION
from export.reference import agent_reference, refuse_stateful, require_agent
from export.report import ExportReport
from export.sampler_check import check_sampler
from export.stochastic import SAMPLER_DRAWS, SAMPLER_OBSERVATIONS, SAMPLER_SEED, verify_stochastic
from export.verify import verification_observations
from keras_trpo.serialization import atomic_write_bytes


@dataclass
class CExportReport(ExportReport):
    files: list = field(default_factory=list)  # the three files written
    weights_bytes: int = 0  # the float and int32 arrays of NAME_weights.h, in bytes
    compiler: Optional[str] = None  # the host compiler that built and verified it
    # NAME_sample (its own PRNG) tested like NAME_sample_noise's draws (sampler_*): tests and the smallest p-value.
    prng_sampler_tests: Optional[int] = None
    prng_sampler_min_p_value: Optional[float] = None


def _weights_bytes(p: CPolicy) -> int:
    floats = sum(d.kernel.size + d.bias.size for d in p.layers + [p.head])
    floats += 2 * p.obs_size if p.normalizer is not None else 0
    floats += 3 * p.head.n_out if p.log_std is not None else 0
    return 4 * (floats + 2 * len(p.nvec))


def c_runner(lib: CLibrary, agent):
    """``obs (, noise) -> {"action", params (, "sampled_action")}`` of the built library, shaped
    like the agent's outputs (``sampled_action`` from ``NAME_sample_noise``)."""
    shape = tuple(agent.action_space.shape)
    names = agent.family.param_names

    def run(obs: np.ndarray, noise: Optional[np.ndarray] = None) -> dict[str, np.ndarray]:
        params = lib.params(obs)
        out = {"action": lib.act(obs).reshape((len(obs),) + shape)}
        if noise is not None:
            out[SAMPLED_ACTION] = lib.sample_noise(obs, noise).reshape((len(obs),) + shape)
        if names == ("logits",):
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


def _verify(agent, policy: CPolicy, build_dir: Path, name: str, report: CExportReport,
            observations: Optional[np.ndarray]) -> None:
    lib_path = build_dir / f"lib{name}.so"
    build_shared(build_dir / f"{name}.c", lib_path)
    lib = CLibrary(lib_path, name, policy.family, policy.obs_size, policy.action_size, policy.params_size)
    if json.loads(lib.metadata()) != report.metadata:
        raise ExportVerificationError(f"C {name}_metadata() does not return the export's metadata")
    what = f"C {report.path}"
    obs = np.asarray(observations if observations is not None else verification_observations(agent), np.float32)
    reference = agent_reference(agent, obs)
    verify_stochastic(agent, c_runner(lib, agent), what, obs, report, reference)  # every output, sample_noise too
    report.verified_observations = len(obs)
    k = min(SAMPLER_OBSERVATIONS, len(obs))
    draws = lib.sample(obs[:k], SAMPLER_DRAWS, SAMPLER_SEED)  # and NAME_sample with its own PRNG
    params = {n: reference[n][:k].reshape(k, -1) for n in agent.family.param_names}
    result = check_sampler(policy.family, params, draws, nvec=policy.nvec, starts=policy.starts, low=policy.low,
                           high=policy.high, what=f"{what} PRNG sampler")
    report.prng_sampler_tests, report.prng_sampler_min_p_value = result.tests, result.min_p_value


def to_c(agent, directory: str | os.PathLike, *, name: str = "policy", verify: bool = True,
         verify_observations: Optional[np.ndarray] = None) -> CExportReport:
    """Write the agent's policy as C99 into ``directory`` (created if missing): ``NAME.h``,
    ``NAME.c`` and ``NAME_weights.h``.

    ``NAME_act(obs, action)``: deterministic action (argmax for Discrete, the mean clipped to the
    bounds for Box, per dimension for MultiDiscrete and MultiBinary), ``NAME_params``: logits or
    mean and log-std, ``NAME_sample(obs, &rng, action)``: a draw from the policy's distribution
    with a PRNG state the caller owns (``NAME_seed``). Observations are raw: normaliser and clip
    are inside. The metadata is in the header as constants and from ``NAME_metadata()`` as JSON.

    With ``verify`` (default) the files are built with the host C compiler (``$CC`` or ``cc``)
    into a shared library, run on observations sampled from the space and visited in rollouts
    and compared with the agent (``ExportVerificationError`` if a discrete action differs or a
    float output is off by more than 1e-5), and the sampler's draws are tested against the
    agent's distribution; only then are the files moved into ``directory``.
    """
    require_agent(agent)
    refuse_stateful(agent, "the C export")
    name = check_name(name)
    directory = Path(directory)
    _check_directory(directory, name)
    start = time.perf_counter()
    policy = c_policy(agent)
    meta = dict(policy_metadata(agent, stochastic=True), format="c")  # NAME_sample_noise: always there
    files = render(policy, name, meta)
    report = CExportReport(str(directory), sum(len(t.encode()) for t in files.values()), 0.0, metadata=meta,
                           stochastic=True, files=[str(directory / f) for f in files], weights_bytes=_weights_bytes(policy))
    if verify:
        report.compiler = compiler_version(compiler())
        with tempfile.TemporaryDirectory(prefix="keras_trpo_c_") as tmp:
            for f, text in files.items():
                (Path(tmp) / f).write_text(text)
            _verify(agent, policy, Path(tmp), name, report, verify_observations)
    directory.mkdir(exist_ok=True)
    for f, text in files.items():
        atomic_write_bytes(directory / f, text.encode())
    report.seconds = time.perf_counter() - start
    return report


def verify_c(agent, directory: str | os.PathLike, *, name: str = "policy",
             observations: Optional[np.ndarray] = None) -> float:
    """Build the C files in ``directory`` with the host compiler and compare them with ``agent``
    (and their sampler with its distribution). Returns the worst float difference; raises
    ``ExportVerificationError`` as ``to_c`` does."""
    require_agent(agent)
    refuse_stateful(agent, "the C export")
    name = check_name(name)
    directory = Path(directory)
    missing = [f for f in (f"{name}.h", f"{name}.c", f"{name}_weights.h") if not (directory / f).is_file()]
    if missing:
        raise ExportError(f"{str(directory)!r} lacks {', '.join(missing)}")
    policy = c_policy(agent)
    meta = json.loads(_metadata_of(directory, name, policy))
    report = CExportReport(str(directory), 0, 0.0, metadata=meta)
    with tempfile.TemporaryDirectory(prefix="keras_trpo_c_") as tmp:
        for f in (f"{name}.h", f"{name}.c", f"{name}_weights.h"):
            (Path(tmp) / f).write_bytes((directory / f).read_bytes())
        _verify(agent, policy, Path(tmp), name, report, observations)
    return float(report.worst_difference)


def _metadata_of(directory: Path, name: str, policy: CPolicy) -> str:
    """The JSON ``NAME_metadata()`` returns, from a throwaway build."""
    with tempfile.TemporaryDirectory(prefix="keras_trpo_c_") as tmp:
        for f in (f"{name}.h", f"{name}.c", f"{name}_weights.h"):
            (Path(tmp) / f).write_bytes((directory / f).read_bytes())
        build_shared(Path(tmp) / f"{name}.c", Path(tmp) / f"lib{name}.so")
        lib = CLibrary(Path(tmp) / f"lib{name}.so", name, policy.family, policy.obs_size, policy.action_size,
                       policy.params_size)
        return lib.metadata()
