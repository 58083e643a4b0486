"""Per-seed result files of ``seeds.py``: where they live, when a seed counts as finished, and the run order.

Layout: ``OUT/IMPL/ENV/seed_N.json`` (IMPL is ``keras_trpo`` or ``sb3-contrib``), one finished
training run per file, written atomically the moment the run ends, so a runner killed at any
point loses at most the runs in progress, and a rerun of the same command skips what is stored.

A stored seed is reused only if it was asked for the same way: the same requested timesteps and
the same keras_trpo ``--set`` overrides (its ``request``). A file asked for differently is a
conflict, never silently mixed in: the runner names it and stops unless told to redo it.

While a run is in progress its file has a sibling ``seed_N.json.lock`` holding the runner's pid,
so two runners started on the same tree (say keras_trpo's seeds while sb3-contrib's still run)
never train the same seed twice; a lock whose process is gone is stale and taken over.

Standard library only: the stats script and the tests import it without TensorFlow or torch.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Iterable

from keras_trpo_serving.files import atomic_write_text

FORMAT = 1  # the record layout below; bump when it changes incompatibly
# The four tasks of the README's results table: (env, requested timesteps), shortest first.
README_TASKS = [("CartPole-v1", 100_000), ("Pendulum-v1", 100_000), ("Hopper-v5", 1_000_000),
                ("HalfCheetah-v5", 1_000_000)]
# Issue 28's widened rule for a change of a default: two MuJoCo tasks no setting was chosen on, zoo settings.
WIDE_TASKS = [("Ant-v5", 1_000_000), ("Swimmer-v5", 1_000_000)]


@dataclasses.dataclass(frozen=True)
class Task:
    """One training run to do: ``impl`` as stored (``keras_trpo`` / ``sb3-contrib``), requested timesteps."""
    impl: str
    env: str
    timesteps: int
    seed: int


# ---------------------------------------------------------------- parsing the command line
def parse_seeds(specs: Iterable[str]) -> list[int]:
    """``["0-9"]`` -> 0..9; ``["0", "3-4", "7,8"]`` -> [0, 3, 4, 7, 8]. Order kept, duplicates dropped.

    Raises ValueError naming the bad item (not an integer, a negative seed, or a range going down).
    """
    seeds: list[int] = []
    for spec in specs:
        for item in filter(None, (x.strip() for x in str(spec).split(","))):
            lo, sep, hi = item.partition("-")
            try:
                first, last = (int(lo), int(hi)) if sep else (int(item), int(item))
            except ValueError:
                raise ValueError(f"seed {item!r} is not an integer or a range like 0-9") from None
            if first < 0 or last < first:
                raise ValueError(f"seed range {item!r} must be non-negative and increasing")
            seeds += range(first, last + 1)
    if not seeds:
        raise ValueError("no seeds given")
    return list(dict.fromkeys(seeds))


def parse_task(spec: str) -> tuple[str, int]:
    """``"Hopper-v5:1e6"`` -> ``("Hopper-v5", 1000000)``. Raises ValueError for a missing or bad step count."""
    env, sep, steps = spec.rpartition(":")
    if not sep or not env:
        raise ValueError(f"a task is ENV:TIMESTEPS, e.g. Hopper-v5:1e6, got {spec!r}")
    try:
        n = float(steps)
    except ValueError:
        raise ValueError(f"timesteps of {spec!r} is not a number") from None
    if not (math.isfinite(n) and n >= 1 and n == int(n)):
        raise ValueError(f"timesteps of {spec!r} must be a positive whole number")
    return env, int(n)


def plan(tasks: list[tuple[str, int]], seeds: list[int], impls: list[str]) -> list[Task]:
    """The run order: shorter tasks first; among tasks of equal length, seed by seed, each seed's envs
    and then implementations interleaved (so a run stopped half way has whole seeds of every env and
    both libraries, not all of one env). ``impls`` are stored names, in the order given."""
    lengths = sorted(dict.fromkeys(steps for _, steps in tasks))
    out = []
    for length in lengths:
        envs = [env for env, steps in tasks if steps == length]
        out += [Task(impl, env, length, seed) for seed in seeds for env in envs for impl in impls]
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------- files
def seed_path(out: str, impl: str, env: str, seed: int) -> str:
    """``OUT/IMPL/ENV/seed_N.json``."""
    return os.path.join(out, impl, env, f"seed_{seed}.json")


# TRPOConfig fields that decide where rollouts run, not what they return (tests/test_workers.py checks that
# inline, process and ray runs are identical), so results that differ only in these compare as one setting.
PLACEMENT_SETTINGS = frozenset({"rollout_backend", "rollout_workers", "ray_address", "rollout_timeout"})


def learning_settings(overrides: dict | None) -> dict:
    """The overrides minus ``PLACEMENT_SETTINGS`` and minus those equal to ``TRPOConfig``'s current default:
    what decides the learning now. A seed run with ``--set X=V`` before V became X's default ran with
    today's default (issue 17's candidate seeds became the reference this way; the seeds of the old
    defaults were moved to their own folder, since their empty overrides meant the defaults of then)."""
    from keras_trpo.config import TRPOConfig  # no TensorFlow

    defaults = TRPOConfig().to_dict()
    return {k: v for k, v in (overrides or {}).items()
            if k not in PLACEMENT_SETTINGS and not (k in defaults and defaults[k] == v)}


def request(task: Task, overrides: dict | None) -> dict:
    """What makes two runs of a seed interchangeable: requested timesteps and keras_trpo's overrides."""
    return {"timesteps": task.timesteps, "overrides": dict(overrides or {}) if task.impl == "keras_trpo" else {}}


def _finite(x: Any) -> Any:
    """NaN and infinities -> None, recursively, so the file is standard JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def write_record(path: str, record: dict) -> None:
    """Write one seed's record atomically (directories created); NaN is stored as null."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_text(path, json.dumps(_finite(record), indent=1, allow_nan=False) + "\n")


def read_record(path: str) -> dict:
    """One stored record. Raises ValueError naming the file if it is not a record of this format."""
    try:
        with open(path) as f:
            r = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); delete it to run that seed again") from None
    if not isinstance(r, dict) or r.get("format") != FORMAT:
        raise ValueError(f"{path} is not a seed record of format {FORMAT}")
    return r


def status(out: str, task: Task, overrides: dict | None) -> tuple[str, str]:
    """``("done" | "todo" | "conflict", detail)`` for one task against what ``out`` holds."""
    path = seed_path(out, task.impl, task.env, task.seed)
    if not os.path.exists(path):
        return "todo", ""
    try:
        stored = read_record(path).get("request")
    except ValueError as e:
        return "conflict", str(e)
    wanted = request(task, overrides)
    if stored != wanted:
        return "conflict", f"{path} was run with {json.dumps(stored)}, this run asks for {json.dumps(wanted)}"
    return "done", path


def load_records(out: str) -> list[dict]:
    """Every record under ``out`` (any impl, env, seed), sorted by (impl, env, seed)."""
    records = []
    for impl in sorted(os.listdir(out)) if os.path.isdir(out) else []:
        for env in sorted(os.listdir(os.path.join(out, impl))) if os.path.isdir(os.path.join(out, impl)) else []:
            folder = os.path.join(out, impl, env)
            for name in os.listdir(folder):
                if name.startswith("seed_") and name.endswith(".json"):
                    records.append(read_record(os.path.join(folder, name)))
    return sorted(records, key=lambda r: (r["impl"], r["env"], r["seed"]))


# ---------------------------------------------------------------- claiming a seed
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def claim(path: str) -> bool:
    """Take ``path``'s lock for this process. False if a live process holds it; a stale lock is taken over."""
    lock = path + ".lock"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                with open(lock) as f:
                    pid = int(f.read().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and _alive(pid):
                return False
            try:
                os.remove(lock)  # stale: its runner is gone
            except FileNotFoundError:
                pass
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def release(path: str) -> None:
    """Drop this process's lock on ``path`` (if it is ours)."""
    lock = path + ".lock"
    try:
        with open(lock) as f:
            mine = f.read().strip() == str(os.getpid())
        if mine:
            os.remove(lock)
    except (OSError, ValueError):
        pass


def locked_by(path: str) -> int | None:
    """The pid of a live process holding ``path``'s lock, else None."""
    try:
        with open(path + ".lock") as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid and _alive(pid) else None
