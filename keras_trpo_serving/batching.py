"""Dynamic batching: concurrent requests gathered into one policy call, on one asyncio loop.

A request's rows wait at most ``wait_s`` after the first of a batch arrived, or until
``max_requests`` requests are waiting; then one ``run`` (onnxruntime call) computes every row and
each request gets its own rows back. ``run`` is called on the event loop itself: a batch costs
microseconds, less than handing it to a thread and back. Standard library and numpy only.

A request's rows are an array ``[k, ...]`` or a dict of them (a Dict observation's keys, or a
recurrent request's observations and states: each row keeps its own state); ``run``'s answer is
an array or a tuple of them (a recurrent policy's actions and new states), split back by rows.
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Optional

import numpy as np


def rows_of(x: Any) -> int:
    """The number of rows of an array, or of a dict (of dicts) of arrays that share them."""
    return len(x) if isinstance(x, np.ndarray) else rows_of(next(iter(x.values())))


def concat(parts: list) -> Any:
    """Arrays (or dicts of them, key by key) stacked along the rows."""
    if isinstance(parts[0], dict):
        return {k: concat([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


def take(out: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of an answer: an array, or each array of a tuple."""
    return tuple(o[start:stop] for o in out) if isinstance(out, tuple) else out[start:stop]


class Batcher:
    """``await submit(x)`` -> ``run(x)`` for a ``[k, *obs_shape]`` array (or a dict of ``[k, ...]``
    arrays), computed together with the other requests waiting at the same time.
    ``on_batch(requests, rows)`` is told each batch's size."""

    def __init__(self, run: Callable[[Any], Any], max_requests: int, wait_s: float,
                 on_batch: Optional[Callable[[int, int], None]] = None):
        if max_requests < 1 or wait_s < 0:
            raise ValueError(f"max_requests must be >= 1 and wait_s >= 0, got {max_requests}, {wait_s}")
        self._run, self.max_requests, self.wait_s = run, max_requests, wait_s
        self._on_batch = on_batch
        self._waiting: list[tuple[Any, asyncio.Future]] = []
        self._timer: Optional[asyncio.TimerHandle] = None

    async def submit(self, x: Any) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append((x, future))
        if len(self._waiting) >= self.max_requests:
            self._flush()
        elif self._timer is None:  # the first of a batch starts the clock
            self._timer = loop.call_later(self.wait_s, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._waiting = self._waiting, []
        batch = [(x, f) for x, f in batch if not f.done()]  # a client that went away needs no answer
        if not batch:
            return
        sizes = [rows_of(x) for x, _ in batch]
        try:
            out = self._run(batch[0][0] if len(batch) == 1 else concat([x for x, _ in batch]))
        except Exception as e:  # noqa: BLE001 - every waiting request gets the failure, the loop goes on
            for _, f in batch:
                f.set_exception(e)
            return
        if self._on_batch is not None:
            self._on_batch(len(batch), sum(sizes))
        start = 0
        for (_, f), n in zip(batch, sizes):
            f.set_result(take(out, start, start + n))
            start += n
