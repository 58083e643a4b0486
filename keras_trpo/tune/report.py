"""What a user acts on after (or during) a tune: the table of the best trials, the best settings as a
hyperparameter file, every trial as CSV, and Optuna's optimisation-history and importance plots.
No TensorFlow here: ``keras-trpo tune --show`` reads the storage only.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Optional

from keras_trpo.tune.study import ERROR_ATTR, TuneSettings
from keras_trpo_serving.files import atomic_target, atomic_write_text

BEST_FILE, TRIALS_FILE = "best.yaml", "trials.csv"
HISTORY_PLOT, IMPORTANCE_PLOT = "optimization_history.png", "param_importances.png"


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, str) and v.startswith("["):
        return v.replace(" ", "")
    return str(v)


def best_trials(study, top: int = 10) -> list:
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    return sorted(done, key=lambda t: (-t.value, t.number))[:top]


def table(study, settings: TuneSettings, top: int = 10) -> str:
    """The ``top`` complete trials, best first: score, steps, wall time and the sampled settings."""
    from keras_trpo.tune.progress import Counts

    rows = best_trials(study, top)
    counts = Counts.of(study.get_trials(deepcopy=False))
    head = (f"study {study.study_name}: {settings.env}, {settings.timesteps_per_trial} steps per trial; "
            f"{counts.complete} complete, {counts.pruned} pruned, {counts.failed} failed"
            + (f", {counts.interrupted} interrupted" if counts.interrupted else "") + f", {counts.running} running\n"
            f"score: mean return of {settings.eval_episodes} deterministic episodes (env seeds "
            f"{settings.eval_seed}-{settings.eval_seed + settings.eval_episodes - 1}) after training"
            + (f", averaged over {settings.seeds_per_trial} training seeds" if settings.seeds_per_trial > 1 else ""))
    if not rows:
        return head + "\nno complete trial yet"
    names = list(settings.space)
    several = settings.seeds_per_trial > 1
    header = ["rank", "trial", "score"] + (["per seed"] if several else []) + ["wall_s"] + names
    body = [[str(i + 1), str(t.number), f"{t.value:.2f}"]
            + (["/".join(f"{v:.0f}" for v in t.user_attrs.get("scores", []))] if several else [])
            + [f"{t.user_attrs.get('wall_s', float('nan')):.0f}"]
            + [_value(t.params.get(n, "")) for n in names] for i, t in enumerate(rows)]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [header] + body]
    return head + "\n" + "\n".join(lines)


def failures(study) -> list[str]:
    from optuna.trial import TrialState

    return [f"trial {t.number}: {t.user_attrs.get(ERROR_ATTR, t.system_attrs.get('fail_reason', 'failed'))}"
            for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))]


def write_best(study, settings: TuneSettings, path: Path) -> Optional[Path]:
    """The best complete trial's full TRPOConfig as a hyperparameter file (``train --config``)."""
    from keras_trpo.config_file import write_config_file

    rows = best_trials(study, 1)
    if not rows:
        return None
    best = rows[0]
    comment = (f"keras-trpo tune: study {study.study_name}, best of {len(study.trials)} trials: trial {best.number}, "
               f"score {best.value:.4g}\n(mean return of {settings.eval_episodes} deterministic episodes after "
               f"{settings.timesteps_per_trial} steps"
               + (f", averaged over training seeds {best.user_attrs.get('seeds')}: {best.user_attrs.get('scores')}"
                  if settings.seeds_per_trial > 1 else "") + ")\n"
               f"searched: {', '.join(f'{k}={_value(v)}' for k, v in best.params.items())}\n"
               f"use: keras-trpo train --config {path.name}   or   "
               f"TRPO(env, config=keras_trpo.load_config({path.name!r}))")
    write_config_file(path, best.user_attrs["config"], env=settings.env, timesteps=settings.timesteps_per_trial,
                      comment=comment)
    return path


def write_trials_csv(study, path: Path) -> Path:
    """Every trial: number, state, score, wall time, evaluations, training seeds and their scores (a trial
    of several seeds), error and parameters."""

    trials = study.get_trials(deepcopy=False)
    params = sorted({k for t in trials for k in t.params})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["number", "state", "value", "wall_s", "timesteps", "evaluations", "seeds", "scores", "error"] + params)
    for t in trials:
        w.writerow([t.number, t.state.name, "" if t.value is None else t.value, t.user_attrs.get("wall_s", ""),
                    t.user_attrs.get("timesteps", ""), json.dumps(t.user_attrs.get("evaluations", [])),
                    json.dumps(t.user_attrs.get("seeds", [])), json.dumps(t.user_attrs.get("scores", [])),
                    t.user_attrs.get(ERROR_ATTR, "")] + [t.params.get(k, "") for k in params])
    atomic_write_text(path, buf.getvalue())
    return path


def _save_figure(ax, path: Path) -> None:
    fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    fig.set_size_inches(8, 5)
    fig.tight_layout()
    with atomic_target(path, ".png") as tmp:
        fig.savefig(tmp, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)


def write_plots(study, out: Path) -> list[str]:
    """Optuna's matplotlib optimisation history and parameter importances; notes for those it could not make."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    from optuna.visualization import matplotlib as ovm

    notes = []
    for name, plot, needs in ((HISTORY_PLOT, ovm.plot_optimization_history, 1),
                              (IMPORTANCE_PLOT, ovm.plot_param_importances, 2)):
        if len(best_trials(study, needs)) < needs:
            notes.append(f"{name}: needs {needs} complete trial(s)")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "experimental" warnings of the matplotlib backend
                _save_figure(plot(study), out / name)
        except (ValueError, RuntimeError, ImportError) as e:
            notes.append(f"{name}: {e}")
    return notes
