"""Bit for bit: training histories, final weights and exported outputs against a stored reference.

A refactoring must not change what the library computes. ``record`` trains a fixed set of runs and
exports one agent per action family, and stores what came out under ``benchmarks/results/bitcheck``;
``check`` does the same again with every setting pinned to the recorded configuration (so that a
preset or default adopted later is not counted as a change) and compares, exactly:

- the history of each run (``metrics.csv``'s columns, less the wall-clock ones) and its final weights:
  CartPole-v1 100k seeds 0-2, Pendulum-v1 100k seed 0, Hopper-v5 200k seed 0, a recurrent (LSTM)
  CartPoleNoVel-v1 20k run (command line, ``keras-trpo train``) and a recurrent Dict PointGoal run
  (Python API, ``tests.goal_envs``);
- the outputs of the ONNX, ``.tflite`` and C exports (deterministic and stochastic) of one stored agent
  per action family (Discrete, Box, MultiDiscrete, MultiBinary) on 2,000 observations and noise rows.

Runs are bit-identical only on the same machine (oneDNN picks kernels per CPU): record and check on
one machine. Each finished piece is stored at once, so an interrupted ``record`` resumes.

    python -m benchmarks.bitcheck record            # before the change
    python -m benchmarks.bitcheck check             # after: prints one line per piece, exit 1 on a difference
    python -m benchmarks.bitcheck check --only exports cartpole-s0
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from keras_trpo.config import TRPOConfig
from keras_trpo.config_file import MACHINE_FIELDS, config_settings
from keras_trpo_serving.files import atomic_target, atomic_write_bytes

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "benchmarks" / "results" / "bitcheck"
WALL_CLOCK = {"rollout_s", "update_s", "steps_per_s"}

# name -> (env, timesteps, seed, settings given on the command line)
CLI_RUNS = {
    "cartpole-s0": ("CartPole-v1", 100_000, 0, {}),
    "cartpole-s1": ("CartPole-v1", 100_000, 1, {}),
    "cartpole-s2": ("CartPole-v1", 100_000, 2, {}),
    "pendulum-s0": ("Pendulum-v1", 100_000, 0, {}),
    "hopper-s0": ("Hopper-v5", 200_000, 0, {}),
    "cartpolenovel-lstm-s0": ("CartPoleNoVel-v1", 20_000, 0, {"recurrent": "lstm"}),
}
POINTGOAL = "pointgoal-dict-lstm-s0"
FAMILIES = ("discrete", "box", "multidiscrete", "multibinary")
N_OBS = 2000


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_target(path, suffix=".npz") as tmp:  # .npz: np.savez would add it to any other name
        np.savez(tmp, **arrays)


def _python(code: str, *args: str) -> None:
    """Run ``code`` in a fresh interpreter from the repository's root (each run in its own process,
    as a user would start it, so one run's compiled functions cannot leak into the next)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-4000:])


def _history(metrics_csv: Path) -> dict[str, list[str]]:
    """``metrics.csv`` as column -> values (the text as written: exact), wall-clock columns left out."""
    with open(metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [r[k] for r in rows] for k in (rows[0] if rows else {}) if k not in WALL_CLOCK}


def _weights_of(agent_file: Path) -> dict[str, np.ndarray]:
    _python("import sys, numpy as np, keras_trpo; a = keras_trpo.load(sys.argv[1]); "
            "np.savez(sys.argv[2], *[np.asarray(w) for w in a.get_weights()])",
            str(agent_file), str(agent_file.with_suffix(".weights.npz")))
    with np.load(agent_file.with_suffix(".weights.npz")) as z:
        return {k: z[k] for k in z.files}


def pinned(recorded: dict) -> dict:
    """The recorded configuration with every TRPOConfig field added since the record at its default: the
    record ran before the field existed, i.e. with the behaviour its default keeps. Without this, a preset
    that later sets such a field (CartPoleNoVel-v1's entropy_coef) would fill it in and count as a change."""
    return {**config_settings(TRPOConfig()), **recorded}


def cli_run(name: str, out: Path, config: dict | None) -> tuple[dict, dict, dict]:
    """Train one command-line run into ``out``; (history, weights, resolved config)."""
    env_id, steps, seed, settings = CLI_RUNS[name]
    cmd = [sys.executable, "-m", "keras_trpo", "train", "--env", env_id, "--timesteps", str(steps),
           "--seed", str(seed), "--out", str(out), "--verbose", "0", "--eval-episodes", "1", "--overwrite"]
    if config is not None:
        cfg = out.parent / f"{name}.config.json"
        cfg.write_text(json.dumps({"config": config}))
        cmd += ["--config", str(cfg)]
    else:
        for k, v in settings.items():
            cmd += ["--set", f"{k}={v}"]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
                          capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)}\n{proc.stderr[-4000:]}")
    resolved = json.loads((out / "summary.json").read_text())["config"]
    resolved = {k: v for k, v in resolved.items() if k not in MACHINE_FIELDS}
    return _history(out / "metrics.csv"), _weights_of(out / "agent.keras"), resolved


POINTGOAL_CODE = """
import json, sys, numpy as np, keras_trpo
from tests.goal_envs import PointGoalEnv
out, config = sys.argv[1], json.loads(sys.argv[2])
settings = config if config is not None else dict(recurrent="lstm", recurrent_units=16, n_steps=256, n_envs=2,
                                                 gamma=0.95, value_epochs=5)
agent = keras_trpo.TRPO(lambda: PointGoalEnv(discrete_goal=True), seed=0, **settings)
history = agent.fit(4096, verbose=0).history
resolved = {k: v for k, v in agent.get_config()["config"].items()} if "config" in agent.get_config() else None
np.savez(out + "/weights.npz", *[np.asarray(w) for w in agent.get_weights()])
json.dump({"history": {k: [repr(float(x)) for x in v] for k, v in history.items()
                       if k not in ("rollout_s", "update_s", "steps_per_s")},
           "config": settings if config is not None else {**settings, **(resolved or {})}}, open(out + "/run.json", "w"))
"""


def pointgoal_run(out: Path, config: dict | None) -> tuple[dict, dict, dict]:
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-c", POINTGOAL_CODE, str(out), json.dumps(config)], cwd=ROOT,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr[-4000:])
    run = json.loads((out / "run.json").read_text())
    with np.load(out / "weights.npz") as z:
        weights = {k: z[k] for k in z.files}
    return run["history"], weights, run["config"]


EXPORT_AGENT_CODE = """
import sys, keras_trpo
from tests.envs import EXPORT_ACTION_SPACES, EXPORT_OBS, ToyEnv
kind, path = sys.argv[1], sys.argv[2]
agent = keras_trpo.TRPO(lambda: ToyEnv(EXPORT_OBS, EXPORT_ACTION_SPACES[kind], episode_length=20), seed=3, n_envs=1,
                        n_steps=64, value_epochs=1, jit_compile=False, normalize_obs=True)
agent.fit(256, verbose=0)
agent.save(path)
"""

EXPORT_OUTPUTS_CODE = """
import sys, numpy as np, keras_trpo
try:
    from keras_trpo import export
except ImportError:
    import export
agent_path, d = sys.argv[1], sys.argv[2]
agent = keras_trpo.load(agent_path)
export.to_onnx(agent, d + "/p.onnx")
export.to_onnx(agent, d + "/s.onnx", stochastic=True)
export.to_tflite(agent, d + "/p.tflite")
export.to_tflite(agent, d + "/s.tflite", stochastic=True)
export.to_c(agent, d + "/c")
"""


def _run_onnx(path: str, feed: dict) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    feed = {i.name: feed[i.name] for i in sess.get_inputs()}
    return dict(zip(names, sess.run(names, feed)))


def _run_tflite(path: str, feed: dict) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=path).get_signature_runner("serving_default")
    wanted = runner.get_input_details()
    out = {}
    for i in range(len(next(iter(feed.values())))):  # one row at a time: the file's batch may be fixed
        row = runner(**{k: feed[k][i:i + 1] for k in wanted})
        for k, v in row.items():
            out.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in out.items()}


def _c_policy(directory: str):
    try:
        from keras_trpo_serving.c_policy import CPolicy
    except ImportError:
        from serving.c_policy import CPolicy
    return CPolicy(directory)


def export_outputs(kind: str, agent_file: Path, work: Path) -> dict[str, np.ndarray]:
    """Every exported file's outputs for the stored agent, on 2,000 fixed observations and noise rows."""
    work.mkdir(parents=True, exist_ok=True)
    _python(EXPORT_OUTPUTS_CODE, str(agent_file), str(work))
    rng = np.random.default_rng(12345)
    obs = (rng.standard_normal((N_OBS, 5)) * 2).astype(np.float32)
    out: dict[str, np.ndarray] = {}
    for fmt, run in (("onnx", _run_onnx), ("tflite", _run_tflite)):
        for k, v in run(str(work / f"p.{fmt}"), {"obs": obs}).items():
            out[f"{fmt}/det/{k}"] = v
    import onnxruntime as ort

    width = [i for i in ort.InferenceSession(str(work / "s.onnx")).get_inputs() if i.name == "noise"][0].shape[-1]
    gaussian = kind == "box"
    noise = (rng.standard_normal((N_OBS, width)) if gaussian else rng.random((N_OBS, width))).astype(np.float32)
    for fmt, run in (("onnx", _run_onnx), ("tflite", _run_tflite)):
        for k, v in run(str(work / f"s.{fmt}"), {"obs": obs, "noise": noise}).items():
            out[f"{fmt}/sto/{k}"] = v
    c = _c_policy(str(work / "c"))
    out["c/det/action"] = np.asarray(c.act(obs))
    out["c/sto/action"] = np.asarray(c.act(obs, deterministic=False, noise=noise))
    for k, v in c.distribution_params(obs).items():
        out[f"c/params/{k}"] = np.asarray(v)
    out["inputs/obs"], out["inputs/noise"] = obs, noise
    return out


def _same(a: dict, b: dict) -> list[str]:
    """What differs between two dicts of arrays or lists, exactly (NaN equal to NaN)."""
    problems = []
    for k in sorted(set(a) | set(b)):
        if k not in a or k not in b:
            problems.append(f"{k}: only in {'reference' if k in a else 'now'}")
            continue
        x, y = np.asarray(a[k]), np.asarray(b[k])
        if x.shape != y.shape or x.dtype != y.dtype:
            problems.append(f"{k}: shape/dtype {x.shape} {x.dtype} vs {y.shape} {y.dtype}")
        elif x.dtype.kind in "fc" and not np.array_equal(x, y, equal_nan=True):
            diff = np.abs(x.astype(np.float64) - y)
            problems.append(f"{k}: {int(np.count_nonzero(diff))} of {x.size} values differ, most {np.nanmax(diff):.3g}")
        elif x.dtype.kind not in "fc" and not np.array_equal(x, y):
            problems.append(f"{k}: {int(np.count_nonzero(x != y))} of {x.size} values differ")
    return problems


def _digest(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode() + np.ascontiguousarray(arrays[k]).tobytes())
    return h.hexdigest()[:16]


def record_or_check(mode: str, only: list[str] | None, reference: Path) -> int:
    reference.mkdir(parents=True, exist_ok=True)
    failures = 0
    work = Path(tempfile.mkdtemp(prefix="bitcheck-"))
    names = list(CLI_RUNS) + [POINTGOAL] + [f"export-{k}" for k in FAMILIES]
    if only:
        names = [n for n in names if any(n == o or (o == "exports" and n.startswith("export-")) for o in only)]
    try:
        for name in names:
            stored = reference / f"{name}.json"
            if mode == "record" and stored.exists():
                print(f"{name}: recorded already", flush=True)
                continue
            if mode == "check" and not stored.exists():
                print(f"{name}: MISSING reference {stored}", flush=True)
                failures += 1
                continue
            ref = json.loads(stored.read_text()) if mode == "check" else None
            if name.startswith("export-"):
                kind = name[len("export-"):]
                agent_file = reference / f"{name}.keras"
                if mode == "record":
                    _python(EXPORT_AGENT_CODE, kind, str(agent_file))
                arrays = export_outputs(kind, agent_file, work / name)
                history, config = {}, {}
            elif name == POINTGOAL:
                history, arrays, config = pointgoal_run(work / name, pinned(ref["config"]) if ref else None)
            else:
                history, arrays, config = cli_run(name, work / name, pinned(ref["config"]) if ref else None)
            if mode == "record":
                _save_npz(reference / f"{name}.npz", arrays)
                atomic_write_bytes(stored, json.dumps({"history": history, "config": config,
                                                  "digest": _digest(arrays)}, indent=1).encode())
                print(f"{name}: recorded ({len(arrays)} arrays, digest {_digest(arrays)})", flush=True)
                continue
            with np.load(reference / f"{name}.npz") as z:
                ref_arrays = {k: z[k] for k in z.files}
            problems = _same(ref_arrays, arrays)
            problems += [f"history {p}" for p in _same({k: np.asarray(v) for k, v in ref["history"].items()},
                                                        {k: np.asarray(v) for k, v in history.items()})]
            if problems:
                failures += 1
                print(f"{name}: DIFFERS\n  " + "\n  ".join(problems[:20]), flush=True)
            else:
                rows = len(next(iter(history.values()))) if history else 0
                print(f"{name}: identical ({len(arrays)} arrays, {rows} history rows x {len(history)} columns, "
                      f"digest {_digest(arrays)})", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if mode == "check":
        print(f"{len(names) - failures} identical, {failures} differ", flush=True)
    return 1 if failures else 0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", choices=["record", "check"])
    p.add_argument("--only", nargs="*", default=None, help="names of runs (or 'exports') to record or check")
    p.add_argument("--reference", type=Path, default=REFERENCE)
    args = p.parse_args()
    sys.exit(record_or_check(args.mode, args.only, args.reference))


if __name__ == "__main__":
    main()
