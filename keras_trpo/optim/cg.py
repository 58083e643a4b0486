"""Conjugate gradient for F x = b using only matrix-vector products."""
from __future__ import annotations

from typing import Callable

import tensorflow as tf


def conjugate_gradient(
    matvec: Callable[[tf.Tensor], tf.Tensor],
    b: tf.Tensor,
    max_iters: int = 10,
    residual_tol: float = 1e-10,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Approximately solve ``A x = b`` for a symmetric positive-definite ``A``.

    Args:
      matvec: ``v [n] -> A v [n]``; ``A`` is never formed.
      b: right-hand side, shape ``[n]``, float.
      max_iters: at most this many ``matvec`` calls.
      residual_tol: stop early once ``||r||^2`` falls below it.

    Returns:
      ``(x [n], iterations [] int32)``. Starts from ``x = 0``, so with exact
      arithmetic ``x`` is exact after ``n`` iterations.
    """
    b = tf.convert_to_tensor(b)
    x = tf.zeros_like(b)
    r = tf.identity(b)  # residual b - A x with x = 0
    p = tf.identity(b)
    rr = tf.tensordot(r, r, 1)
    i = tf.constant(0, tf.int32)

    def cond(i, x, r, p, rr):
        return tf.logical_and(i < max_iters, rr > residual_tol)

    def body(i, x, r, p, rr):
        ap = matvec(p)
        alpha = rr / tf.tensordot(p, ap, 1)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = tf.tensordot(r, r, 1)
        p = r + (rr_new / rr) * p
        return i + 1, x, r, p, rr_new

    i, x, _, _, _ = tf.while_loop(cond, body, (i, x, r, p, rr))
    return x, i
