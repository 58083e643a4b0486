"""What every rollout backend shares: the pool's description, its errors, and fault handling."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import gymnasium as gym

from keras_trpo.envs import EnvSpec
from keras_trpo.rollouts.worker import Fragment, PolicySource, split_envs

logger = logging.getLogger("keras_trpo")


class RolloutWorkerError(RuntimeError):
    """A rollout worker failed: its environment raised, or it could not be started."""


class RolloutTimeoutError(RolloutWorkerError, TimeoutError):
    """A rollout worker did not answer within ``rollout_timeout`` seconds."""


class WorkerLostError(RolloutWorkerError):
    """A worker died again and again (more than ``max_restarts`` times in one iteration)."""


@dataclass
class PoolSpec:
    """Everything needed to build the run's ``RolloutWorker``s, whatever the backend.

    ``env`` must be an id or a picklable factory for the process and ray backends.
    """

    env: EnvSpec
    observation_space: gym.Space
    action_space: gym.Space
    n_envs: int
    n_workers: int
    seed: int
    reset_seed: int  # environment e is reset with reset_seed + e
    epoch: int = 0  # the iteration this pool starts at (see worker.env_streams)
    vectorization: str = "sync"
    env_kwargs: dict = field(default_factory=dict)
    timeout: float = 600.0
    ray_address: Optional[str] = None
    max_restarts: int = 3  # replacements of one worker within one iteration before giving up
    masked: bool = False  # sample under the envs' action masks (the agent's ``masked``)

    def slices(self) -> list[tuple[int, int]]:
        return split_envs(self.n_envs, self.n_workers)

    def worker_kwargs(self, k: int, generation: int = 0) -> dict[str, Any]:
        """``RolloutWorker`` arguments for worker ``k``; a replacement has a higher ``generation``."""
        first, count = self.slices()[k]
        return dict(env=self.env, first_env=first, n_envs=count, observation_space=self.observation_space,
                    action_space=self.action_space, seed=self.seed, reset_seed=self.reset_seed, epoch=self.epoch,
                    generation=generation, vectorization=self.vectorization, env_kwargs=self.env_kwargs,
                    masked=self.masked)

    def describe(self, k: int) -> str:
        first, count = self.slices()[k]
        envs = f"env {first}" if count == 1 else f"envs {first}-{first + count - 1}"
        return f"rollout worker {k} ({envs})"


class RolloutPool:
    """A started set of workers. ``collect`` returns one ``Fragment`` per worker, in env order.

    ``last_stats`` holds the last collect's timings in seconds: ``broadcast_s`` (making the
    policy available to workers), ``wait_s`` (from the last submit until every fragment was back,
    stepping included), ``step_s`` (the slowest worker's own stepping time), ``replaced``.
    """

    def __init__(self, spec: PoolSpec):
        self.spec = spec
        self.n_envs, self.n_workers = spec.n_envs, spec.n_workers
        self.last_stats: dict[str, float] = {}

    def collect(self, policy: PolicySource, n_steps: int) -> list[Fragment]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "RolloutPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RemotePool(RolloutPool):
    """Fault handling for workers in other processes (the process and ray backends).

    Subclasses start, feed and watch workers; this class sends one fragment's work to every
    worker, and when a worker dies replaces it and asks the replacement for the fragment again
    (a fragment is all or nothing: nothing of the dead worker's partial fragment is kept). An
    error raised inside a worker, or a worker that does not answer within ``timeout`` seconds,
    closes the pool and raises.
    """

    def __init__(self, spec: PoolSpec):
        super().__init__(spec)
        self._generation = [0] * spec.n_workers
        try:
            for k in range(spec.n_workers):
                self._start(k, 0)
            for k in range(spec.n_workers):
                self._await_ready(k)
        except BaseException:
            self.close()
            raise

    # ---- what a backend provides ----
    def _start(self, k: int, generation: int) -> None:
        """Start worker ``k`` (asynchronously if the backend allows)."""
        raise NotImplementedError

    def _await_ready(self, k: int) -> None:
        """Block until worker ``k`` has built its envs; raise ``RolloutWorkerError`` if it could not."""
        raise NotImplementedError

    def _broadcast(self, policy: PolicySource, n_steps: int) -> Any:
        """This iteration's work in the form ``_submit`` sends: serialised once for all workers."""
        raise NotImplementedError

    def _submit(self, k: int, payload: Any) -> None:
        raise NotImplementedError

    def _wait(self, pending: list[int], timeout: float) -> list[tuple[int, str, Any]]:
        """Finished workers among ``pending`` as ``(k, status, value)``: ``("ok", Fragment)``,
        ``("died", reason)`` or ``("error", message)``; ``[]`` if none finished in ``timeout``."""
        raise NotImplementedError

    def _stop(self, k: int) -> None:
        """Stop worker ``k`` at once (it may already be dead)."""
        raise NotImplementedError

    # ---- shared ----
    def _replace(self, k: int) -> None:
        self._stop(k)
        self._generation[k] += 1
        self._start(k, self._generation[k])
        self._await_ready(k)

    def collect(self, policy: PolicySource, n_steps: int) -> list[Fragment]:
        spec = self.spec
        t0 = time.perf_counter()
        payload = self._broadcast(policy, n_steps)
        t1 = time.perf_counter()
        for k in range(self.n_workers):
            self._submit(k, payload)
        deadline = {k: time.perf_counter() + spec.timeout for k in range(self.n_workers)}
        restarts = [0] * self.n_workers
        results: dict[int, Fragment] = {}
        while len(results) < self.n_workers:
            pending = [k for k in range(self.n_workers) if k not in results]
            left = min(deadline[k] for k in pending) - time.perf_counter()
            events = self._wait(pending, max(left, 0.0)) if left > 0 else []
            if not events:
                late = [k for k in pending if deadline[k] <= time.perf_counter()] or pending
                self.close()
                raise RolloutTimeoutError(
                    f"{spec.describe(late[0])} did not return its {n_steps}-step fragment within {spec.timeout:g} s "
                    "(the rollout_timeout setting); the workers were stopped. A slow environment needs a larger "
                    "rollout_timeout; a worker that hangs needs fixing."
                )
            for k, status, value in events:
                if status == "ok":
                    results[k] = value
                elif status == "error":
                    self.close()
                    raise RolloutWorkerError(f"{spec.describe(k)} failed: {value}")
                else:  # died: replace it and collect its whole fragment again
                    restarts[k] += 1
                    if restarts[k] > spec.max_restarts:
                        self.close()
                        raise WorkerLostError(f"{spec.describe(k)} died {restarts[k]} times in one iteration "
                                              f"(last: {value}); giving up")
                    logger.warning("keras_trpo: %s died (%s); starting a replacement (new episodes on its envs) "
                                   "and collecting its fragment again", spec.describe(k), value)
                    self._replace(k)
                    self._submit(k, payload)
                    deadline[k] = time.perf_counter() + spec.timeout
        t2 = time.perf_counter()
        fragments = [results[k] for k in range(self.n_workers)]
        self.last_stats = {"broadcast_s": t1 - t0, "wait_s": t2 - t1, "step_s": max(f.step_s for f in fragments),
                           "replaced": float(sum(restarts))}
        return fragments
