"""The Optuna side of a tune: storage, study, sampler and pruner, the settings every worker shares,
and which trials count. No TensorFlow here: the ``tune`` parent process only watches the study.

Storage. Without ``--storage`` a study lives in ``OUT/study.journal``, Optuna's journal file storage
(``JournalStorage(JournalFileBackend(...))``): an append-only log that several processes write under a
file lock, which is what ``--jobs J`` needs. SQLite was the other candidate, but Optuna's own
documentation warns against it for parallel writers (one writer at a time; "database is locked" under
load), while the journal file is designed for exactly several local processes or a shared disk
(NFS). ``--storage URL`` takes any RDB URL Optuna accepts (``postgresql://``, ``mysql://``,
``sqlite:///``), with Optuna's heartbeat so that a trial whose machine died is failed after
``GRACE_PERIOD_S``; a URL without ``://`` is taken as a journal file path (a shared disk).

A trial killed with its process (SIGKILL, a crash of the machine) stays RUNNING in the storage.
``fail_orphaned_trials`` finds such trials of this host (their worker's pid is gone) and records
them as failed and "interrupted"; RDB storages also get Optuna's heartbeat for other hosts'.
"""
from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path
from typing import Any, Mapping, Optional

SETTINGS_ATTR = "keras_trpo.tune"  # the study's user attribute holding TuneSettings
JOURNAL_NAME = "study.journal"
HEARTBEAT_INTERVAL_S, GRACE_PERIOD_S = 60, 180
ERROR_ATTR, INTERRUPTED_ATTR, WORKER_ATTR = "error", "interrupted", "worker"


class TuneError(Exception):
    """A tune that cannot run as asked (printed as ``error: ...``, exit status 2)."""


def require_optuna():
    """Optuna, or a ``TuneError`` that says how to install it (it is the ``tune`` extra)."""
    try:
        import optuna
    except ImportError:
        raise TuneError("keras-trpo tune needs Optuna: pip install 'keras-trpo[tune]' "
                        "(optuna, optuna-dashboard, pyyaml)") from None
    if not os.environ.get("KERAS_TRPO_OPTUNA_LOGS"):
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what it would ("A new study ...")
    return optuna


@dataclasses.dataclass
class TuneSettings:
    """What a trial is: the same for every worker of a study, stored in the study itself.

    ``timesteps_per_trial`` steps of training, evaluated ``evaluations`` times (evenly spaced, the
    last at the end) with ``eval_episodes`` deterministic episodes on env seeds ``eval_seed``,
    ``eval_seed + 1``, ...; a trial's score is the last evaluation's mean. Trial ``k`` trains with seed
    ``seed + k``; with ``seeds_per_trial`` K > 1 it trains K agents in turn, on seeds ``seed + k K`` ..
    ``seed + k K + K - 1``, and scores the mean of their last evaluations (for tasks whose final iterate
    varies so much between seeds that one cannot rank settings). ``fixed`` are ``--set`` settings,
    ``space`` the searched dimensions (``space.space_to_dict``). ``startup_trials``: random trials before TPE, and completed trials
    before the median pruner prunes (the zoo's ``n_startup_trials`` for both).
    """

    env: str
    timesteps_per_trial: int
    space: dict
    fixed: dict = dataclasses.field(default_factory=dict)
    evaluations: int = 5
    eval_episodes: int = 10
    eval_seed: int = 20_000
    startup_trials: int = 10
    seed: int = 0
    seeds_per_trial: int = 1

    def validate(self) -> "TuneSettings":
        for name in ("timesteps_per_trial", "evaluations", "eval_episodes", "seeds_per_trial"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise TuneError(f"{name.replace('_', '-')} must be a positive integer, got {v!r}")
        if self.startup_trials < 0:
            raise TuneError(f"startup-trials must be >= 0, got {self.startup_trials}")
        if not self.space:
            raise TuneError("the search space is empty: every dimension is off or fixed with --set")
        return self

    def trial_seeds(self, number: int) -> list[int]:
        """The training seeds of trial ``number``: disjoint between trials, ``seed + number`` for one per trial."""
        k = self.seeds_per_trial
        return [self.seed + number * k + j for j in range(k)]

    @property
    def warmup_steps(self) -> int:
        """Reports a trial always makes before the pruner may stop it. One seed per trial: the zoo's
        n_evaluations // 3 evaluations. Several: half the seeds (a trial reports its running mean per seed)."""
        if self.seeds_per_trial > 1:
            return (self.seeds_per_trial + 1) // 2
        return self.evaluations // 3

    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, d: Mapping[str, Any]) -> "TuneSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def storage_location(storage: Optional[str], out: Optional[Path]) -> str:
    """The storage as one string a worker can open: an RDB URL, or a journal file path."""
    if storage:
        return storage if "://" in storage else str(Path(storage).resolve())
    if out is None:
        raise TuneError("give --out (the study is stored in OUT/study.journal) or --storage URL")
    return str((Path(out) / JOURNAL_NAME).resolve())


def open_storage(location: str):
    """An Optuna storage for ``storage_location``'s string."""
    optuna = require_optuna()
    if "://" in location:
        try:
            return optuna.storages.RDBStorage(location, heartbeat_interval=HEARTBEAT_INTERVAL_S,
                                              grace_period=GRACE_PERIOD_S)
        except Exception as e:  # noqa: BLE001 - SQLAlchemy's errors: a missing driver, no server, bad URL
            raise TuneError(f"cannot open the storage {location}: {type(e).__name__}: {e}") from None
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    Path(location).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(location))


def make_sampler(settings: TuneSettings, stream: int):
    """The zoo's sampler (TPE, multivariate, ``startup_trials`` random first), with constant liar so that
    parallel workers do not all pick the same point; ``stream`` (worker and trials so far) varies the seed."""
    import warnings

    import numpy as np

    optuna = require_optuna()
    seed = int(np.random.SeedSequence([settings.seed, stream]).generate_state(1)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # multivariate and constant_liar are "experimental" (ExperimentalWarning)
        return optuna.samplers.TPESampler(n_startup_trials=settings.startup_trials, seed=seed, multivariate=True,
                                          constant_liar=True)


def make_pruner(settings: TuneSettings):
    """The zoo's pruner: median of the completed trials at the same report, after ``startup_trials``
    completed trials and ``TuneSettings.warmup_steps`` reports of the trial."""
    optuna = require_optuna()
    return optuna.pruners.MedianPruner(n_startup_trials=settings.startup_trials,
                                       n_warmup_steps=settings.warmup_steps)


def load_study(location: str, name: str, settings: Optional[TuneSettings] = None, stream: int = 0):
    """The study ``name`` in the storage, with the sampler and pruner its stored settings call for."""
    optuna = require_optuna()
    storage = open_storage(location)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise TuneError(f"no study {name!r} in {location}" + (f" (it has: {', '.join(names)})" if names else "")) \
            from None
    if settings is None:
        if SETTINGS_ATTR not in study.user_attrs:
            raise TuneError(f"study {name!r} in {location} was not made by keras-trpo tune")
        settings = TuneSettings.from_config(study.user_attrs[SETTINGS_ATTR])
    study.sampler = make_sampler(settings, stream)
    study.pruner = make_pruner(settings)
    return study, settings


def study_names(location: str) -> list[str]:
    optuna = require_optuna()
    return [s.study_name for s in optuna.get_all_study_summaries(open_storage(location))]


def create_or_resume(location: str, name: str, settings: Optional[TuneSettings]):
    """Create the study with ``settings``, or resume it: then ``settings`` (if given) must match the stored ones."""
    optuna = require_optuna()
    storage = open_storage(location)
    if name in [s.study_name for s in optuna.get_all_study_summaries(storage)]:
        study = optuna.load_study(study_name=name, storage=storage)
        stored = study.user_attrs.get(SETTINGS_ATTR)
        if stored is None:
            raise TuneError(f"study {name!r} in {location} was not made by keras-trpo tune")
        stored_settings = TuneSettings.from_config(stored)
        if settings is not None:
            stored_config = stored_settings.get_config()
            diff = [k for k, v in settings.get_config().items() if stored_config.get(k) != v]
            if diff:
                raise TuneError(f"study {name!r} was made with other settings ({', '.join(diff)} differ); a resumed "
                                "study keeps its own: give only --study (and --trials), or a new --study name")
        return study, stored_settings, True
    if settings is None:
        raise TuneError(f"no study {name!r} in {location} to resume: give --env to start one")
    settings.validate()
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                sampler=make_sampler(settings, 0), pruner=make_pruner(settings))
    study.set_user_attr(SETTINGS_ATTR, settings.get_config())
    return study, settings, False


# --------------------------------------------------------------------------- which trials count
def _this_host() -> str:
    return socket.gethostname()


def worker_tag() -> dict[str, Any]:
    """Who runs a trial (stored on it): host and pid, so an orphaned trial can be recognised."""
    return {"host": _this_host(), "pid": os.getpid()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_orphaned_trials(study) -> list[int]:
    """RUNNING trials of this host whose worker process is gone: recorded as failed and interrupted."""
    from optuna.trial import TrialState

    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        who = t.user_attrs.get(WORKER_ATTR) or {}
        if who.get("host") == _this_host() and who.get("pid") and not _alive(int(who["pid"])):
            storage = study._storage
            storage.set_trial_user_attr(t._trial_id, INTERRUPTED_ATTR, True)
            storage.set_trial_user_attr(t._trial_id, ERROR_ATTR, f"interrupted: its worker (pid {who['pid']}) "
                                                                 "stopped before it finished")
            try:
                storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL)
            except RuntimeError:  # it finished meanwhile
                continue
            failed.append(t.number)
    return failed


def counted(trial) -> bool:
    """Whether a trial counts towards ``--trials``: finished (complete, pruned, or failed by its own error)
    or running. A trial interrupted by a kill or Ctrl-C does not count, so a resumed tune runs it again."""
    from optuna.trial import TrialState

    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
        return True
    return trial.state == TrialState.FAIL and not trial.user_attrs.get(INTERRUPTED_ATTR)


def trials_counted(study) -> int:
    return sum(counted(t) for t in study.get_trials(deepcopy=False))
