"""The ``inline`` backend: workers in the training process, stepped one after the other.

With one worker this is the plain single-process rollout; with more it steps the same
environments in slices, which gives the same results (the tests use that).
"""
from __future__ import annotations

import time

from keras_trpo.rollouts.worker import Fragment, PolicySource, RolloutWorker
from keras_trpo.rollouts.workers.base import PoolSpec, RolloutPool


class InlinePool(RolloutPool):
    def __init__(self, spec: PoolSpec):
        super().__init__(spec)
        self.workers: list[RolloutWorker] = []
        try:
            for k in range(spec.n_workers):
                self.workers.append(RolloutWorker(**spec.worker_kwargs(k)))
        except BaseException:
            self.close()
            raise

    def collect(self, policy: PolicySource, n_steps: int) -> list[Fragment]:
        t0 = time.perf_counter()
        fragments = [w.collect(policy, n_steps) for w in self.workers]  # env errors propagate as they are
        self.last_stats = {"broadcast_s": 0.0, "wait_s": time.perf_counter() - t0,
                           "step_s": sum(f.step_s for f in fragments), "replaced": 0.0}
        return fragments

    def close(self) -> None:
        for w in self.workers:
            w.close()
        self.workers = []
