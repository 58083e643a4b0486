"""Where rollouts run: ``inline`` (this process), ``process`` (local worker processes), ``ray``.

Every backend runs the same ``rollouts.worker.RolloutWorker`` on a slice of the environments and
returns ``Fragment``s; the training process merges them (``rollouts.worker.merge_fragments``). Only the
``ray`` backend imports Ray, and only when it is chosen.
"""
from __future__ import annotations

from keras_trpo.rollouts.workers.base import (
    PoolSpec,
    RolloutPool,
    RolloutTimeoutError,
    RolloutWorkerError,
    WorkerLostError,
)


def make_pool(spec: PoolSpec, backend: str) -> RolloutPool:
    """A started pool of ``spec.n_workers`` workers on ``backend``."""
    if backend == "inline":
        from keras_trpo.rollouts.workers.inline import InlinePool

        return InlinePool(spec)
    if backend == "process":
        from keras_trpo.rollouts.workers.process import ProcessPool

        return ProcessPool(spec)
    if backend == "ray":
        from keras_trpo.rollouts.workers.ray_pool import RayPool

        return RayPool(spec)
    raise ValueError(f"rollout_backend must be 'inline', 'process' or 'ray', got {backend!r}")


__all__ = ["PoolSpec", "RolloutPool", "RolloutTimeoutError", "RolloutWorkerError", "WorkerLostError", "make_pool"]
