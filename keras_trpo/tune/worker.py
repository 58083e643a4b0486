"""A tune worker: one process that runs trials of a study, one after another, until the study has
``--trials`` (counted as ``study.counted`` says) or the deadline passes.

``keras-trpo tune --jobs J`` starts J of these (``python -m keras_trpo tune-worker ...``): TensorFlow
keeps per-process state (graphs, XLA caches, thread pools) that trials in threads of one process would
share and contend for, and a crash in one trial's native code would take the others with it. Each
worker asks the kernel for SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``), so killing the
tune, even with SIGKILL, stops its trials, which are recorded as interrupted.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from typing import Optional


def _die_with_parent(parent_pid: Optional[int]) -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent_pid is not None and os.getppid() != parent_pid:  # the parent died before prctl took effect
        raise KeyboardInterrupt


class _Stop:
    """SIGTERM (and Ctrl-C) as KeyboardInterrupt, held back while ``holding``: from before Optuna asks
    for a trial until the trial carries this worker's tag, so a kill in between cannot leave a RUNNING
    trial no one can tell is orphaned (a CI run saw one). A Python-level flag rather than a signal
    mask: the handler always runs in the main thread, whichever thread (TensorFlow's) took the signal."""

    holding = pending = False

    @classmethod
    def handler(cls, signum, frame):
        if cls.holding:
            cls.pending = True
            return
        raise KeyboardInterrupt

    @classmethod
    def hold(cls) -> None:
        cls.holding = True

    @classmethod
    def deliver(cls) -> None:
        """Stop holding; a stop that arrived meanwhile is raised here."""
        cls.holding = False
        if cls.pending:
            cls.pending = False
            raise KeyboardInterrupt


def run_worker(location: str, study_name: str, trials: int, worker: int = 0, deadline: Optional[float] = None,
               parent_pid: Optional[int] = None, verbose: int = 0) -> int:
    """Run trials until the study has ``trials`` or ``deadline`` (a ``time.time()``) passes; exit status."""
    signal.signal(signal.SIGTERM, _Stop.handler)
    signal.signal(signal.SIGINT, _Stop.handler)
    try:
        _die_with_parent(parent_pid)
        from keras_trpo.quiet import quiet_tensorflow_import

        quiet_tensorflow_import(verbose)
        if verbose < 2:  # a rejected line-search step is routine in a search: the worker log stays readable
            import tensorflow as tf

            tf.get_logger().setLevel("ERROR")
        from keras_trpo.tune.study import load_study, require_optuna, trials_counted
        from keras_trpo.tune.trial import Objective

        optuna = require_optuna()
        optuna.logging.set_verbosity(optuna.logging.WARNING if verbose < 2 else optuna.logging.INFO)
        study, settings = load_study(location, study_name)
        study, _ = load_study(location, study_name, settings, stream=1_000_003 * (worker + 1) + len(study.trials))
        objective = Objective(settings, verbose=0, target=trials, on_start=_Stop.deliver)
        while (deadline is None or time.time() < deadline) and trials_counted(study) < trials:
            _Stop.hold()
            try:
                study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
            finally:
                _Stop.deliver()
        return 0
    except KeyboardInterrupt:
        return 130
