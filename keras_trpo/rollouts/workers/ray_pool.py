"""The ``ray`` backend: one Ray actor per slice of the environments, on one machine or a cluster.

Ray is imported only here, when this backend is chosen. With ``ray_address=None`` and no Ray
running, a local Ray is started (dashboard off); with ``"auto"`` or ``"host:port"`` the run
joins that cluster, where every node needs keras_trpo and the env's packages installed. If the
program called ``ray.init`` itself, that Ray is used as it is. The policy goes to the object
store once per iteration (``ray.put``) and every actor reads it from there.
"""
from __future__ import annotations

import os
import sys
from typing import Any

from keras_trpo.plan.description import PolicyPlan
from keras_trpo.rollouts.worker import PolicySource, RolloutWorker
from keras_trpo.rollouts.workers.base import PoolSpec, RemotePool, RolloutTimeoutError, RolloutWorkerError


def import_ray():
    try:
        import ray
    except ImportError as e:
        raise ImportError(
            "rollout_backend='ray' needs Ray, which is not installed: pip install 'ray>=2.60,<3' "
            "(or pip install 'keras-trpo[ray]')"
        ) from e
    return ray


class _RayRolloutWorker:
    """The actor: a ``RolloutWorker`` and its process id (the tests kill it)."""

    def __init__(self, kwargs: dict):
        self.worker = RolloutWorker(**kwargs)

    def pid(self) -> int:
        return os.getpid()

    def collect(self, policy, n_steps: int):
        return self.worker.collect(policy, n_steps)


def ensure_ray(address: str | None, n_workers: int):
    """Ray, initialised: the program's own if it started one, else local or the given cluster."""
    ray = import_ray()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = dict(include_dashboard=False, ignore_reinit_error=True, logging_level="WARNING")
        if address is None:
            # Local: enough CPUs for every actor, and workers that import what this process can.
            kwargs.update(num_cpus=max(os.cpu_count() or 1, n_workers), runtime_env={"env_vars": {
                "PYTHONPATH": os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))}})
        else:
            kwargs["address"] = address
        ray.init(**kwargs)
    return ray


class RayPool(RemotePool):
    def __init__(self, spec: PoolSpec):
        self.ray = ensure_ray(spec.ray_address, spec.n_workers)
        self._cls = self.ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(_RayRolloutWorker)
        self._actors: list[Any] = [None] * spec.n_workers
        self._ready: list[Any] = [None] * spec.n_workers
        self._refs: dict[int, Any] = {}
        super().__init__(spec)

    def _start(self, k: int, generation: int) -> None:
        self._actors[k] = self._cls.remote(self.spec.worker_kwargs(k, generation))
        self._ready[k] = self._actors[k].pid.remote()

    def _await_ready(self, k: int) -> None:
        ray = self.ray
        done, _ = ray.wait([self._ready[k]], timeout=self.spec.timeout)
        if not done:
            raise RolloutTimeoutError(
                f"{self.spec.describe(k)} did not start within {self.spec.timeout:g} s (the rollout_timeout setting); "
                f"each worker is an actor that needs 1 CPU, the cluster has {ray.cluster_resources().get('CPU', 0):g}")
        try:
            ray.get(done[0])
        except ray.exceptions.RayError as e:
            raise RolloutWorkerError(f"{self.spec.describe(k)} could not start: {e}") from None

    def pids(self) -> list[int]:
        """The actors' process ids (on their nodes)."""
        return self.ray.get([a.pid.remote() for a in self._actors])

    def _broadcast(self, policy: PolicySource, n_steps: int):
        if not isinstance(policy, PolicyPlan):
            raise TypeError("rollout_backend='ray' needs a policy the NumPy actor can run (a Dense torso); "
                            "use rollout_backend='inline' for this model")
        return self.ray.put(policy), n_steps

    def _submit(self, k: int, payload) -> None:
        ref, n_steps = payload
        self._refs[k] = self._actors[k].collect.remote(ref, n_steps)

    def _wait(self, pending: list[int], timeout: float) -> list[tuple[int, str, Any]]:
        ray = self.ray
        by_ref = {self._refs[k]: k for k in pending}
        done, _ = ray.wait(list(by_ref), num_returns=1, timeout=timeout)
        if done:  # take everything else that is already finished too
            done, _ = ray.wait(list(by_ref), num_returns=len(by_ref), timeout=0)
        events = []
        for ref in done:
            k = by_ref[ref]
            try:
                events.append((k, "ok", ray.get(ref)))
            except ray.exceptions.RayActorError as e:
                events.append((k, "died", type(e).__name__))
            except ray.exceptions.RayTaskError as e:  # the environment (or our code) raised in the actor
                events.append((k, "error", str(e)))
        return events

    def _stop(self, k: int) -> None:
        actor = self._actors[k]
        if actor is not None:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # already gone
                pass
        self._actors[k] = None

    def close(self) -> None:
        for k in range(len(self._actors)):
            self._stop(k)
