"""``tune()``: start or resume a study, run its trials in worker processes, watch them, report.

This process never imports TensorFlow: it creates the study, starts ``jobs`` workers
(``keras_trpo.tune.worker``), shows progress from the storage, and writes the report when they end.
"""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from keras_trpo.tune import report
from keras_trpo.tune.progress import Counts, Progress
from keras_trpo.tune.space import build_space, space_to_dict
from keras_trpo.tune.study import (ERROR_ATTR, TuneError, TuneSettings, create_or_resume, fail_orphaned_trials,
                                   load_study, require_optuna, storage_location, study_names, trials_counted)

POLL_S = 2.0


@dataclasses.dataclass
class TuneResult:
    """What a tune left: the study's name and storage, the best trial, and the files written."""

    study_name: str
    storage: str
    settings: TuneSettings
    counts: Counts
    best_value: Optional[float]
    best_params: dict
    best_config: Optional[str]
    table: str
    files: list
    notes: list
    failed_workers: tuple = ()  # worker processes that exited abnormally (a crash, a kill): the CLI's exit status 1


def default_study_name(env: str) -> str:
    return f"trpo-{env}"


def study_settings(env: str, timesteps_per_trial: Optional[int], fixed: Mapping[str, Any], space: Mapping[str, Any],
                   evaluations: int, eval_episodes: int, startup_trials: int, seed: int,
                   seeds_per_trial: int = 1) -> TuneSettings:
    """What every worker of the study needs: the env, the trials' budget, the fixed settings (checked) and the
    search space (the zoo's, with the recurrent dimensions when the trials' policy is recurrent, then ``space``)."""
    from keras_trpo.config import TRPOConfig
    from keras_trpo.envs import probe_spaces
    from keras_trpo.presets import preset

    probe_spaces(env)  # here, not in every worker's log after a TensorFlow import each
    TRPOConfig().replace(**{k: tuple(v) if k == "hidden_sizes" else v for k, v in fixed.items()})  # names, values
    if timesteps_per_trial is None:
        timesteps_per_trial = preset(env).n_timesteps  # the zoo's budget for the env, as its -optimize uses
    recurrent = fixed["recurrent"] if "recurrent" in fixed else preset(env).settings.get("recurrent")
    dims = build_space(space, fixed=list(fixed), recurrent=bool(recurrent))
    return TuneSettings(env=env, timesteps_per_trial=int(timesteps_per_trial), space=space_to_dict(dims),
                        fixed=dict(fixed), evaluations=evaluations, eval_episodes=eval_episodes,
                        startup_trials=startup_trials, seed=seed, seeds_per_trial=seeds_per_trial).validate()


def _threads_per_worker(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


def _start_workers(location: str, name: str, trials: int, jobs: int, deadline: Optional[float], out: Path,
                   verbose: int) -> list[subprocess.Popen]:
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # J TensorFlow processes each sized for the whole machine would fight over the cores.
    env.setdefault("TF_NUM_INTRAOP_THREADS", str(_threads_per_worker(jobs)))
    env.setdefault("TF_NUM_INTEROP_THREADS", "1")
    root = str(Path(__file__).resolve().parents[2])  # the keras_trpo checkout, when it is not installed
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    procs = []
    for k in range(jobs):
        cmd = [sys.executable, "-m", "keras_trpo", "tune-worker", "--storage", location, "--study", name,
               "--trials", str(trials), "--worker", str(k), "--parent-pid", str(os.getpid()),
               "--verbose", str(max(0, verbose - 1))]
        if deadline is not None:
            cmd += ["--deadline", repr(deadline)]
        with open(logs / f"worker-{k}.log", "ab") as log:
            procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=env))
    return procs


def _watch(study, procs: list[subprocess.Popen], progress: Progress, reported: set[int]) -> bool:
    """Poll the storage until every worker has exited; a SIGINT or SIGTERM here is passed on to the workers.
    Returns whether one was received (the user wants the tune to stop)."""
    from optuna.trial import TrialState

    stopped = []

    def forward(signum, frame):
        stopped.append(signum)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            trials = study.get_trials(deepcopy=False)
            for t in trials:
                if t.state == TrialState.FAIL and t.number not in reported:
                    reported.add(t.number)
                    progress.message(f"trial {t.number} failed: {t.user_attrs.get(ERROR_ATTR, 'no message')}")
            progress.update(Counts.of(trials))
            if all(p.poll() is not None for p in procs):
                break
            time.sleep(POLL_S)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return bool(stopped)


def tune(env: Optional[str] = None, *, trials: int, out: str, timesteps_per_trial: Optional[int] = None,
         timeout: Optional[float] = None, jobs: int = 1, storage: Optional[str] = None, study: Optional[str] = None,
         fixed: Optional[Mapping[str, Any]] = None, space: Optional[Mapping[str, Any]] = None, evaluations: int = 5,
         eval_episodes: int = 10, startup_trials: int = 10, seed: int = 0, seeds_per_trial: int = 1, top: int = 10,
         verbose: int = 1) -> TuneResult:
    """Search TRPO's hyperparameters for ``env`` with Optuna (TPE sampler, median pruner), as the zoo's
    ``train.py -optimize`` does, until the study has ``trials`` trials (complete, pruned or failed; a
    trial interrupted by a kill does not count), or ``timeout`` seconds passed.

    ``jobs`` worker processes run trials at once. The study lives in ``out/study.journal``
    unless ``storage`` names another (an RDB URL or a journal file); running ``tune`` again with the
    same ``study`` name resumes it (``env`` may then be left out: the study has its settings).
    ``fixed`` are TRPOConfig settings not searched (``--set``), ``space`` changes to the zoo's search
    space (``keras_trpo.tune.space``). ``seeds_per_trial`` > 1 trains each trial's settings on that many
    seeds and scores the mean of their final evaluations (``TuneSettings``). Writes ``out/best.yaml``,
    ``trials.csv``, the plots and ``tune.log``, and returns a ``TuneResult``.
    """
    require_optuna()
    if isinstance(trials, bool) or not isinstance(trials, int) or trials <= 0:
        raise TuneError(f"trials must be a positive integer, got {trials!r}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs <= 0:
        raise TuneError(f"jobs must be a positive integer, got {jobs!r}")
    if timeout is not None and not timeout > 0:
        raise TuneError(f"timeout must be a positive number of seconds, got {timeout!r}")
    out_dir = Path(out)
    location = storage_location(storage, out_dir)
    settings = None
    if env is not None:
        settings = study_settings(env, timesteps_per_trial, dict(fixed or {}), dict(space or {}), evaluations,
                                  eval_episodes, startup_trials, seed, seeds_per_trial)
    elif fixed or space or timesteps_per_trial:
        raise TuneError("--set, --space and --timesteps-per-trial define a new study: give --env too")
    out_dir.mkdir(parents=True, exist_ok=True)  # a refused request leaves no folder behind
    name = study or (default_study_name(env) if env else _only_study(location))
    the_study, settings, resumed = create_or_resume(location, name, settings)
    orphaned = fail_orphaned_trials(the_study)
    progress = Progress(trials, out_dir / "tune.log", verbose=verbose)
    if resumed:
        progress.message(f"resuming study {name} in {location}: {len(the_study.trials)} trials so far"
                         + (f" (trials {', '.join(map(str, orphaned))} were interrupted)" if orphaned else ""))
    else:
        per = f" x {settings.seeds_per_trial} seeds" if settings.seeds_per_trial > 1 else ""
        progress.message(f"study {name} in {location}: {settings.env}, {trials} trials of "
                         f"{settings.timesteps_per_trial} steps{per}, {jobs} at a time")
    deadline = time.time() + timeout if timeout else None
    reported: set[int] = set()
    failed_workers: list[int] = []
    while True:  # rounds: a trial counted as running by a worker that was dying (a kill just before) may not finish
        before = len(the_study.trials)
        procs = _start_workers(location, name, trials, jobs, deadline, out_dir, verbose)
        try:
            stopped = _watch(the_study, procs, progress, reported)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                p.wait()
        bad = [k for k, p in enumerate(procs) if p.returncode not in (0, 130)]
        if bad:
            progress.message(f"worker(s) {', '.join(map(str, bad))} exited abnormally: see {out_dir / 'logs'}")
            failed_workers.extend(bad)
        fail_orphaned_trials(the_study)
        if (stopped or bad or (deadline is not None and time.time() >= deadline)
                or trials_counted(the_study) >= trials or len(the_study.trials) == before):
            break
    progress.close()
    result = show(study=name, out=str(out_dir), storage=storage, top=top, _loaded=(the_study, settings, location))
    return dataclasses.replace(result, failed_workers=tuple(failed_workers))


def _only_study(location: str) -> str:
    names = study_names(location)
    if len(names) != 1:
        raise TuneError(f"{location} holds {len(names)} studies ({', '.join(names) or 'none'}): name one with --study"
                        if names else f"no study in {location}: give --env to start one")
    return names[0]


def show(study: Optional[str] = None, out: Optional[str] = None, storage: Optional[str] = None, top: int = 10,
         _loaded=None) -> TuneResult:
    """The report of a study, at any time (``keras-trpo tune --show``): table, best.yaml, trials.csv, plots.

    Files go to ``out`` when it is given (with no ``storage``, the study is read from ``out``).
    """
    if _loaded is None:
        location = storage_location(storage, Path(out) if out else None)
        if "://" not in location and not Path(location).exists():
            raise TuneError(f"no study storage at {location}")
        name = study or _only_study(location)
        the_study, settings = load_study(location, name)
    else:
        the_study, settings, location = _loaded
        name = the_study.study_name
    counts = Counts.of(the_study.get_trials(deepcopy=False))
    files, notes = [], []
    best = report.best_trials(the_study, 1)
    if out:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = report.write_best(the_study, settings, out_dir / report.BEST_FILE)
        if path:
            files.append(str(path))
        files.append(str(report.write_trials_csv(the_study, out_dir / report.TRIALS_FILE)))
        notes = report.write_plots(the_study, out_dir)
        files += [str(out_dir / n) for n in (report.HISTORY_PLOT, report.IMPORTANCE_PLOT) if (out_dir / n).exists()]
    return TuneResult(study_name=name, storage=location, settings=settings, counts=counts,
                      best_value=best[0].value if best else None, best_params=dict(best[0].params) if best else {},
                      best_config=files[0] if files and files[0].endswith(report.BEST_FILE) else None,
                      table=report.table(the_study, settings, top), files=files, notes=notes)


def run_worker_cli(argv: Sequence[str]) -> int:
    """``keras-trpo tune-worker``: started by ``tune``, not by hand."""
    import argparse

    from keras_trpo.tune.worker import run_worker

    p = argparse.ArgumentParser(prog="keras-trpo tune-worker")
    p.add_argument("--storage", required=True)
    p.add_argument("--study", required=True)
    p.add_argument("--trials", type=int, required=True)
    p.add_argument("--worker", type=int, default=0)
    p.add_argument("--deadline", type=float, default=None)
    p.add_argument("--parent-pid", type=int, default=None)
    p.add_argument("--verbose", type=int, default=0)
    a = p.parse_args(list(argv))
    return run_worker(a.storage, a.study, a.trials, a.worker, a.deadline, a.parent_pid, a.verbose)
