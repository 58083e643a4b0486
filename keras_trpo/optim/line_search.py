"""Backtracking line search inside the trust region."""
from __future__ import annotations

from typing import Callable, NamedTuple

import tensorflow as tf


class LineSearchResult(NamedTuple):
    accepted: tf.Tensor  # [] bool
    step: tf.Tensor  # [n]; zeros when nothing was accepted
    tries: tf.Tensor  # [] int32, candidate steps evaluated
    surrogate: tf.Tensor  # [] surrogate at the returned step
    kl: tf.Tensor  # [] mean KL at the returned step


def backtracking_line_search(
    evaluate: Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]],
    full_step: tf.Tensor,
    surrogate_before: tf.Tensor,
    max_kl: float,
    max_backtracks: int = 10,
    shrink: float = 0.8,
) -> LineSearchResult:
    """Try ``full_step * shrink**i`` for ``i = 0 .. max_backtracks-1``.

    Accepts the first candidate whose mean KL is ``<= max_kl`` and whose surrogate
    is strictly greater than ``surrogate_before``.

    Args:
      evaluate: ``step [n] -> (surrogate [], kl [])`` at ``theta_old + step``.
        It may move the parameters; the caller sets the final ones.
      full_step: the step to the trust-region edge, ``[n]``.
      surrogate_before: surrogate at ``theta_old``, ``[]``.
      max_kl: trust-region radius ``delta``.
      max_backtracks: number of candidates.
      shrink: factor between candidates, in ``(0, 1)``.

    Returns:
      A ``LineSearchResult``; ``step`` is zeros and ``accepted`` False when no
      candidate passed, so ``theta_old + step`` is always the right answer.
    """
    full_step = tf.convert_to_tensor(full_step)
    dtype = full_step.dtype
    zero = tf.zeros_like(full_step)

    def cond(i, accepted, step, surr, kl):
        return tf.logical_and(i < max_backtracks, tf.logical_not(accepted))

    def body(i, accepted, step, surr, kl):
        candidate = full_step * tf.pow(tf.cast(shrink, dtype), tf.cast(i, dtype))
        new_surr, new_kl = evaluate(candidate)
        new_surr = tf.cast(new_surr, dtype)
        new_kl = tf.cast(new_kl, dtype)
        ok = tf.logical_and(new_kl <= max_kl, new_surr > surrogate_before)
        ok = tf.logical_and(ok, tf.math.is_finite(new_surr) & tf.math.is_finite(new_kl))
        return i + 1, ok, candidate, new_surr, new_kl

    init = (tf.constant(0), tf.constant(False), zero, tf.cast(surrogate_before, dtype), tf.zeros([], dtype))
    tries, accepted, step, surr, kl = tf.while_loop(cond, body, init)
    step = tf.where(accepted, step, zero)
    surr = tf.where(accepted, surr, tf.cast(surrogate_before, dtype))
    kl = tf.where(accepted, kl, tf.zeros([], dtype))
    return LineSearchResult(accepted, step, tries, surr, kl)
