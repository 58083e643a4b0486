"""Fisher-vector products: Hessian-vector products of the mean KL, or Gauss–Newton products."""
from __future__ import annotations

import math
from typing import Callable, Sequence

import tensorflow as tf


def flatten(tensors: Sequence[tf.Tensor]) -> tf.Tensor:
    """Concatenate tensors of any shapes into one vector ``[sum of sizes]``."""
    return tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0)


def unflatten(vector: tf.Tensor, like: Sequence[tf.Variable]) -> list[tf.Tensor]:
    """Split a flat ``[n]`` vector into tensors shaped like ``like``."""
    sizes = [int(math.prod(v.shape)) for v in like]  # static shapes: works in graphs too
    parts = tf.split(vector, sizes)
    return [tf.reshape(p, v.shape) for p, v in zip(parts, like)]


def flat_gradient(tape: tf.GradientTape, target: tf.Tensor, variables: Sequence[tf.Variable]) -> tf.Tensor:
    """Gradient of a scalar ``target`` w.r.t. ``variables`` as one vector ``[n]``.

    Variables the target does not depend on get zeros, not ``None``.
    """
    grads = tape.gradient(target, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return flatten(grads)


def fisher_operator(
    kl_fn: Callable[[], tf.Tensor],
    variables: Sequence[tf.Variable],
    damping: float = 0.0,
) -> Callable[[tf.Tensor], tf.Tensor]:
    """The map ``v [n] -> (F + damping I) v [n]`` without forming ``F``.

    ``F`` is the Hessian of ``kl_fn()`` (the mean KL between the frozen old policy and the policy
    with the current ``variables``, ``n`` scalars in total) at the current variables; at the old
    parameters it equals the Fisher information matrix. Building the map runs the forward pass
    and the KL's first-order gradient once, under a persistent outer ``GradientTape``; each product
    is then one backward pass through them with ``v`` as the output gradient (``H v`` is the
    gradient of ``grad(kl) . v``), so conjugate gradient's iterations do not repeat them
    (sb3-contrib's ``create_graph=True``). Without XLA that saves about a fifth of every product; XLA
    shares that work by itself.

    Args:
      kl_fn: builds the scalar mean KL from the current variables.
      variables: the policy's trainable variables.
      damping: added multiple of ``v``; keeps CG well conditioned.
    """
    with tf.GradientTape(persistent=True) as outer:
        with tf.GradientTape() as inner:
            kl = kl_fn()
        grads = inner.gradient(kl, variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)

    def product(vector: tf.Tensor) -> tf.Tensor:
        vector = tf.stop_gradient(vector)
        hvp = outer.gradient(grads, variables, output_gradients=unflatten(vector, variables),
                             unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return flatten(hvp) + damping * vector

    return product


def fisher_vector_product(
    kl_fn: Callable[[], tf.Tensor],
    variables: Sequence[tf.Variable],
    vector: tf.Tensor,
    damping: float = 0.0,
) -> tf.Tensor:
    """One product ``(F + damping I) v`` (``fisher_operator``, built for it alone); ``vector`` ``[n]``
    -> ``[n]``."""
    return fisher_operator(kl_fn, variables, damping)(vector)


def gauss_newton_vector_product(
    outputs_fn: Callable[[], dict[str, tf.Tensor]],
    kl_of_outputs: Callable[[dict[str, tf.Tensor]], tf.Tensor],
    variables: Sequence[tf.Variable],
    vector: tf.Tensor,
    damping: float = 0.0,
) -> tf.Tensor:
    """``(J^T M J + damping I) v``: the Fisher-vector product as a Gauss–Newton product.

    ``J`` is the Jacobian of the policy outputs (distribution parameters, ``[B, k]`` each) with
    respect to ``variables`` and ``M`` the Hessian of the mean KL with respect to those outputs.
    At the old parameters, where TRPO evaluates it, the KL's Hessian has no second-derivative-
    of-the-network term, so this equals ``fisher_vector_product`` there, and it costs one
    forward pass carrying a JVP (forward mode) and one backward pass (``J^T``), instead of
    differentiating a gradient. ``M`` is applied by a double backward through the KL alone,
    which acts on ``[B, k]`` tensors and costs next to nothing.

    Args:
      outputs_fn: the policy outputs at the current variables, a dict of ``[B, k]`` tensors.
      kl_of_outputs: the scalar mean KL(old || policy with these outputs).
      variables: the policy's trainable variables (``n`` scalars in total).
      vector: ``v``, shape ``[n]``.
      damping: added multiple of ``v``.

    Returns:
      ``[n]`` tensor.
    """
    vector = tf.stop_gradient(vector)
    primals = [getattr(v, "value", v) for v in variables]  # Keras 3 variables wrap a tf.Variable
    with tf.GradientTape() as backward:
        with tf.autodiff.ForwardAccumulator(primals, unflatten(vector, variables)) as forward:
            outputs = outputs_fn()
    jv = {k: forward.jvp(out, unconnected_gradients=tf.UnconnectedGradients.ZERO) for k, out in outputs.items()}
    at = {k: tf.stop_gradient(out) for k, out in outputs.items()}
    with tf.GradientTape() as outer:
        outer.watch(at)
        with tf.GradientTape() as inner:
            inner.watch(at)
            kl = kl_of_outputs(at)
        grad = inner.gradient(kl, at)
        grad_dot_jv = tf.add_n([tf.reduce_sum(grad[k] * jv[k]) for k in outputs])
    m_jv = outer.gradient(grad_dot_jv, at, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    keys = list(outputs)
    jtmjv = backward.gradient([outputs[k] for k in keys], variables, output_gradients=[m_jv[k] for k in keys],
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return flatten(jtmjv) + damping * vector
