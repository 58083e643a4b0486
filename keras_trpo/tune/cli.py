"""``keras-trpo tune``: its arguments (added to the main parser by ``keras_trpo.cli``) and its run."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

DESCRIPTION = (
    "Search TRPO's hyperparameters for an env with Optuna, as rl-baselines3-zoo's train.py -optimize does: a TPE "
    "sampler and a median pruner fed by evaluations during each trial, over the zoo's TRPO search space in "
    "keras_trpo's names. A trial's score is the mean return of deterministic evaluation episodes on env seeds "
    "20000, 20001, ... after training (never the training return). The study is stored in OUT/study.journal "
    "(or --storage): run the same command again to resume it; several machines share one study through "
    "--storage. Writes OUT/best.yaml (for `keras-trpo train --config`), trials.csv, optimization_history.png, "
    "param_importances.png and tune.log. Needs the tune extra: pip install 'keras-trpo[tune]'.")


def add_tune_parser(sub, timesteps_type: Callable[[str], int]) -> argparse.ArgumentParser:
    u = sub.add_parser("tune", help="search hyperparameters with Optuna (TPE + median pruning); --show reports a study",
                       description=DESCRIPTION)
    u.add_argument("--env", default=None, help="gymnasium env id (not needed to resume or --show a study)")
    u.add_argument("--trials", type=int, default=None,
                   help="trials the study should have in all: complete, pruned or failed (an interrupted trial "
                        "does not count); running the command again after a kill tops the study up to it")
    u.add_argument("--timesteps-per-trial", type=timesteps_type, default=None, metavar="T",
                   help="training steps of each trial (default: the env's preset budget, as the zoo's)")
    u.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="start no trial after S seconds (running ones finish)")
    u.add_argument("--jobs", type=int, default=1, metavar="J",
                   help="trials at once on this machine, each in its own worker process (default 1)")
    u.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna storage: an RDB URL (postgresql://..., mysql://..., sqlite:///...) or a journal "
                        "file path, e.g. on a shared disk (default: OUT/study.journal)")
    u.add_argument("--study", default=None, metavar="NAME", help="study name (default trpo-ENV)")
    u.add_argument("--out", default=None, metavar="DIR", help="where the study (by default) and the report go")
    u.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="a TRPOConfig setting fixed for every trial (and not searched), e.g. --set n_envs=4")
    u.add_argument("--space", action="append", metavar="KEY=SPEC|FILE", default=[],
                   help="change the search space: KEY=[a,b,c] (one of), KEY=float:LOW:HIGH[:log], "
                        "KEY=int:LOW:HIGH[:log], KEY=off; or a YAML/JSON file of KEY: SPEC. KEY is a TRPOConfig "
                        "field or max_kl_per_dim (the zoo's target_kl, times the action dimension)")
    u.add_argument("--evaluations", type=int, default=5,
                   help="evaluations per trial reported to the pruner (default 5; the pruner waits for "
                        "evaluations // 3, as the zoo's)")
    u.add_argument("--eval-episodes", type=int, default=10, help="deterministic episodes per evaluation (default 10)")
    u.add_argument("--startup-trials", type=int, default=10,
                   help="random trials before TPE, and complete trials before pruning (the zoo's 10)")
    u.add_argument("--seed", type=int, default=0,
                   help="trial k trains with seed SEED + k (SEED + kK .. SEED + kK + K - 1 with --seeds-per-trial K); "
                        "also seeds the sampler")
    u.add_argument("--seeds-per-trial", type=int, default=1, metavar="K",
                   help="train each trial's settings on K seeds in turn and score the mean of their final "
                        "evaluations (default 1, as the zoo's); for tasks where one seed's last iterate cannot rank "
                        "settings. The pruner then compares the running mean after each seed, from half the seeds on")
    u.add_argument("--show", action="store_true",
                   help="only report the study (table, best.yaml, plots), e.g. while it runs elsewhere")
    u.add_argument("--top", type=int, default=10, help="rows of the table (default 10)")
    u.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2],
                   help="0: the table only; 1: progress (a live line in a terminal, plain lines in a log); "
                        "2: also Optuna's and TensorFlow's messages in the worker logs")
    return u


def parse_space_args(items: list[str]) -> dict[str, Any]:
    """``--space`` arguments: KEY=SPEC pairs and files of KEY: SPEC, later ones winning."""
    from keras_trpo.config import ConfigError

    changes: dict[str, Any] = {}
    for item in items:
        if "=" in item:
            key, spec = item.split("=", 1)
            changes[key.strip()] = spec.strip()
            continue
        path = Path(item)
        if not path.is_file():
            raise ConfigError(f"--space takes KEY=SPEC or a YAML/JSON file, got {item!r} (no such file)")
        if path.suffix.lower() in (".yaml", ".yml"):
            from keras_trpo.config_file import require_yaml

            data = require_yaml().safe_load(path.read_text())
        else:
            data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a space file is a mapping of KEY: SPEC")
        changes.update(data)
    return changes


def run_tune(args, fixed: dict) -> int:
    """Run (or --show) a tune from parsed arguments; prints the table to stdout."""
    from keras_trpo.tune.driver import show, tune
    from keras_trpo.tune.study import TuneError

    if args.show:
        if not (args.out or args.storage):
            raise TuneError("--show needs --out DIR (the study in DIR/study.journal) or --storage URL")
        result = show(study=args.study, out=args.out, storage=args.storage, top=args.top)
    else:
        if args.trials is None:
            raise TuneError("--trials is needed (the number of trials the study should have)")
        if not args.out:
            raise TuneError("--out DIR is needed")
        result = tune(args.env, trials=args.trials, out=args.out, timesteps_per_trial=args.timesteps_per_trial,
                      timeout=args.timeout, jobs=args.jobs, storage=args.storage, study=args.study, fixed=fixed,
                      space=parse_space_args(args.space), evaluations=args.evaluations,
                      eval_episodes=args.eval_episodes, startup_trials=args.startup_trials, seed=args.seed,
                      seeds_per_trial=args.seeds_per_trial, top=args.top, verbose=args.verbose)
    print(result.table)
    if args.verbose:
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
        if result.best_config:
            print(f"best settings: {result.best_config}  (keras-trpo train --config {result.best_config})",
                  file=sys.stderr)
        print(f"dashboard: optuna-dashboard {result.storage}", file=sys.stderr)
    if result.failed_workers:  # the study is kept and resumes, but a script must not read this as success
        print(f"error: worker(s) {', '.join(map(str, result.failed_workers))} exited abnormally: see their logs in "
              f"{Path(args.out) / 'logs'}", file=sys.stderr)
        return 1
    return 0
