"""Fisher-vector products as Hessian-vector products of the mean KL."""
from __future__ import annotations

from typing import Callable, Sequence

import tensorflow as tf


def flatten(tensors: Sequence[tf.Tensor]) -> tf.Tensor:
    """Concatenate tensors of any shapes into one vector ``[sum of sizes]``."""
    return tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)


def unflatten(vector: tf.Tensor, like: Sequence[tf.Variable]) -> list[tf.Tensor]:
    """Split a flat ``[n]`` vector into tensors shaped like ``like``."""
    sizes = [int(tf.size(v)) for v in like]
    parts = tf.split(vector, sizes)
    return [tf.reshape(p, v.shape) for p, v in zip(parts, like)]


def flat_gradient(tape: tf.GradientTape, target: tf.Tensor, variables: Sequence[tf.Variable]) -> tf.Tensor:
    """Gradient of a scalar ``target`` w.r.t. ``variables`` as one vector ``[n]``.

    Variables the target does not depend on get zeros, not ``None``.
    """
    grads = tape.gradient(target, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return flatten(grads)


def fisher_vector_product(
    kl_fn: Callable[[], tf.Tensor],
    variables: Sequence[tf.Variable],
    vector: tf.Tensor,
    damping: float = 0.0,
) -> tf.Tensor:
    """``(F + damping I) v`` without forming ``F``.

    ``F`` is the Hessian of ``kl_fn()`` (the mean KL between the frozen old policy
    and the policy with the current ``variables``) at the current variables; at
    the old parameters it equals the Fisher information matrix.  Computed as the
    gradient of ``grad(kl) . v`` through nested ``GradientTape``s.

    Args:
      kl_fn: builds the scalar mean KL from the current variables.
      variables: the policy's trainable variables (``n`` scalars in total).
      vector: ``v``, shape ``[n]``.
      damping: added multiple of ``v``; keeps CG well conditioned.

    Returns:
      ``[n]`` tensor.
    """
    vector = tf.stop_gradient(vector)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            kl = kl_fn()
        grad_kl = flat_gradient(inner, kl, variables)
        grad_dot_v = tf.tensordot(grad_kl, vector, 1)
    hvp = flat_gradient(outer, grad_dot_v, variables)
    return hvp + damping * vector
