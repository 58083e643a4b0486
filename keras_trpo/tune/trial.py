"""One trial: build the agent from the sampled settings, train it with the pruning callback, score it.

This is the part of a tune that imports TensorFlow; it runs in the worker processes only.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Optional

import keras

from keras_trpo.tune.space import action_dim, cap_batch, space_from_dict, suggest
from keras_trpo.tune.study import ERROR_ATTR, INTERRUPTED_ATTR, WORKER_ATTR, TuneSettings, worker_tag


class TrialEvaluation(keras.callbacks.Callback):
    """Evaluate the agent ``evaluations`` times during ``fit`` and report each mean to an Optuna trial.

    Evaluations fall at the first iteration end past ``k * total / evaluations`` steps (k = 1 ..
    evaluations), the last one at the end of training. Each is ``evaluate()`` on the fixed episode
    seeds, reported as ``trial.report(mean, step=k)``; when the trial's pruner says so, training
    stops (``model.stop_training``) and ``pruned`` is set. With ``trial=None`` the evaluations are
    only recorded (a trial of several seeds reports per seed, ``Objective``). ``evaluate`` is the
    agent's deterministic evaluation unless another function of the agent is given.
    """

    def __init__(self, trial, total_timesteps: int, evaluations: int, episodes: int, seed: int,
                 evaluate: Optional[Callable[[Any], float]] = None):
        super().__init__()
        self.trial, self.total, self.evaluations = trial, int(total_timesteps), int(evaluations)
        self.episodes, self.seed = int(episodes), int(seed)
        self._evaluate = evaluate or (lambda agent: agent.evaluate(episodes=self.episodes, seed=self.seed)[0])
        self.history: list[tuple[int, float]] = []  # (timesteps, mean return) of each evaluation
        self.pruned = False

    def on_train_begin(self, logs=None):
        self._start = int(self.model.num_timesteps)
        self._next = 1

    def _due(self) -> int:
        return self._start + math.ceil(self._next * self.total / self.evaluations)

    def on_epoch_end(self, epoch, logs=None):
        if self._next > self.evaluations or self.model.num_timesteps < self._due():
            return
        value = float(self._evaluate(self.model))
        self.history.append((int(self.model.num_timesteps), value))
        if self.trial is not None:
            self.trial.report(value, step=self._next)
        self._next += 1
        if not math.isfinite(value):
            raise FloatingPointError(f"evaluation {len(self.history)} returned {value}")
        if self.trial is not None and self.trial.should_prune():
            self.pruned = True
            self.model.stop_training = True

    @property
    def last_value(self) -> Optional[float]:
        return self.history[-1][1] if self.history else None


class Objective:
    """``objective(trial) -> score`` for ``study.optimize``: one TRPO run on the study's settings (or
    ``seeds_per_trial`` runs, one per training seed, scored by the mean of their scores).

    The score is the mean return of the last evaluation (``TuneSettings``: deterministic episodes on
    env seeds ``eval_seed ..``), never the training return. A trial that raises (an env error, a
    NaN, settings TRPOConfig rejects) is recorded as failed with its message in the user
    attribute ``error``; a Ctrl-C or SIGTERM marks it ``interrupted`` (it does not count, and a
    resumed tune runs another in its place).
    """

    def __init__(self, settings: TuneSettings, verbose: int = 0, target: Optional[int] = None,
                 on_start: Optional[Callable[[], None]] = None):
        import gymnasium as gym

        import keras_trpo.envs  # noqa: F401 - registers keras_trpo's env ids (CartPoleNoVel-v1, ...) in this worker too

        self.settings, self.verbose, self.target = settings, verbose, target
        self.on_start = on_start  # a worker's: lets a kill that arrived since the trial was asked land (worker.py)
        self.space = space_from_dict(settings.space)
        probe = gym.make(settings.env)
        try:
            self.action_space = probe.action_space
        finally:
            probe.close()
        self.action_dim = action_dim(self.action_space)

    def config_for(self, trial):
        """The trial's TRPOConfig: the env's preset, then ``--set``, then the sampled settings."""
        from keras_trpo.config import default_config

        base = default_config(self.settings.env, self.action_space).replace(**_tuples(self.settings.fixed))
        sampled = suggest(trial, self.space, self.action_dim)
        sampled = cap_batch(sampled, sampled.get("n_steps", base.n_steps))
        return base.replace(**sampled)

    def __call__(self, trial) -> float:
        import optuna

        trial.set_user_attr(WORKER_ATTR, worker_tag())
        try:
            if self.on_start is not None:
                self.on_start()
            if self.target is not None and _counted_before(trial) >= self.target:
                # another worker started a trial at the same moment and the study is full: this one is not run
                trial.set_user_attr(INTERRUPTED_ATTR, True)
                trial.set_user_attr(ERROR_ATTR, f"not run: the study already has {self.target} trials")
                raise SurplusTrial(f"the study already has {self.target} trials")
            try:
                return self._run(trial)
            except optuna.TrialPruned:
                raise
            except Exception as e:
                trial.set_user_attr(ERROR_ATTR, f"{type(e).__name__}: {e}"[:2000])
                raise
        except Exception:
            raise
        except BaseException:  # KeyboardInterrupt, SystemExit from SIGTERM: not the settings' fault
            # Outside the inner handlers: a SIGTERM that lands while a crash's error is being written
            # (a CI run saw it) still marks the trial interrupted rather than leaving it failed unexplained.
            trial.set_user_attr(INTERRUPTED_ATTR, True)
            trial.set_user_attr(ERROR_ATTR, "interrupted (Ctrl-C or SIGTERM)")
            raise

    def _run(self, trial) -> float:
        from keras_trpo.config_file import config_settings

        config = self.config_for(trial)
        trial.set_user_attr("config", config_settings(config))
        seeds = self.settings.trial_seeds(trial.number)
        trial.set_user_attr("seeds", seeds)
        if len(seeds) == 1:
            return self._one_seed(trial, config, seeds[0])
        return self._several_seeds(trial, config, seeds)

    def _train(self, config, seed: int, evaluation: TrialEvaluation) -> dict[str, Any]:
        """Train one agent on ``seed`` with ``evaluation`` as its callback; what the trial records of it."""
        import keras_trpo

        s = self.settings
        start = time.perf_counter()
        agent = keras_trpo.TRPO(s.env, seed=seed, config=config)
        try:
            agent.fit(s.timesteps_per_trial, callbacks=[evaluation], verbose=self.verbose)
        finally:
            agent.close()
            record = {"timesteps": int(agent.num_timesteps), "wall_s": round(time.perf_counter() - start, 2)}
            del agent
            keras.backend.clear_session()  # the next agent builds new models: free this one's graphs
        return record

    def _evaluation(self, trial) -> TrialEvaluation:
        s = self.settings
        return TrialEvaluation(trial, s.timesteps_per_trial, s.evaluations, s.eval_episodes, s.eval_seed)

    def _one_seed(self, trial, config, seed: int) -> float:
        """The zoo's trial: one training seed, each evaluation reported to the pruner; the last one scores."""
        import optuna

        evaluation = self._evaluation(trial)
        try:
            record = self._train(config, seed, evaluation)
        finally:
            trial.set_user_attr("evaluations", evaluation.history)
        trial.set_user_attr("timesteps", record["timesteps"])
        trial.set_user_attr("wall_s", record["wall_s"])
        if evaluation.pruned:
            raise optuna.TrialPruned(f"pruned after evaluation {len(evaluation.history)} "
                                     f"(mean return {evaluation.last_value:.4g})")
        return _final(evaluation)

    def _several_seeds(self, trial, config, seeds: list[int]) -> float:
        """``seeds_per_trial`` training seeds one after another; the score is the mean of their final
        evaluations. After seed j the running mean is reported as step j + 1, so the median pruner compares
        like with like (the same number of seeds) and stops a trial only between seeds."""
        import optuna

        scores: list[float] = []
        histories: list[list] = []
        timesteps = wall = 0.0
        for j, seed in enumerate(seeds):
            evaluation = self._evaluation(None)
            try:
                record = self._train(config, seed, evaluation)
            finally:
                histories.append(evaluation.history)
                trial.set_user_attr("evaluations", histories)
            timesteps += record["timesteps"]
            wall += record["wall_s"]
            scores.append(_final(evaluation))
            trial.set_user_attr("scores", scores)
            trial.set_user_attr("timesteps", int(timesteps))
            trial.set_user_attr("wall_s", round(wall, 2))
            mean = sum(scores) / len(scores)
            trial.report(mean, step=j + 1)
            if j + 1 < len(seeds) and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after {j + 1} of {len(seeds)} seeds (mean return {mean:.4g})")
        return sum(scores) / len(scores)


def _final(evaluation: TrialEvaluation) -> float:
    value = evaluation.last_value
    if value is None or not math.isfinite(value):
        raise FloatingPointError(f"the final evaluation returned {value}")
    return value


class SurplusTrial(Exception):
    """A trial started when the study already had its trials (two workers checked at once)."""


def _counted_before(trial) -> int:
    """Trials numbered before ``trial`` that count towards ``--trials``: the storage numbers trials
    atomically, so of two workers that start one each at the same moment only the later is surplus."""
    from keras_trpo.tune.study import counted

    return sum(counted(t) for t in trial.study.get_trials(deepcopy=False) if t.number < trial.number)


def _tuples(settings: dict) -> dict:
    return {k: tuple(v) if k == "hidden_sizes" else v for k, v in settings.items()}
