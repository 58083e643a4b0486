"""The learning side: one ``tf.function`` for the TRPO policy step, one for the critic."""
from __future__ import annotations

from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from keras_trpo.config import TRPOConfig
from keras_trpo.distributions import Family
from keras_trpo.optim.cg import conjugate_gradient
from keras_trpo.optim.fisher import (fisher_operator, fisher_vector_product, flat_gradient, flatten,
                                    gauss_newton_vector_product, unflatten)
from keras_trpo.optim.line_search import backtracking_line_search


def critic_optimizer(optimizer: Optional[keras.optimizers.Optimizer | str],
                     config: TRPOConfig) -> keras.optimizers.Optimizer:
    """The value network's optimizer: ``optimizer`` (an instance or a Keras name), by default Adam with
    ``config.value_learning_rate`` and ``config.value_adam_epsilon``."""
    if isinstance(optimizer, str):
        optimizer = keras.optimizers.get(optimizer)
    return optimizer or keras.optimizers.Adam(learning_rate=config.value_learning_rate,
                                              epsilon=config.value_adam_epsilon)


class Learner:
    """Updates a policy model by TRPO and a value model by minibatch regression.

    The policy's input is a tuple of tensors: ``(obs [B, *obs_shape],)`` for a feed-forward
    policy, ``(obs [N, L, *obs_shape], starts [N, L], state [N, S])`` for a recurrent one (N
    sequences of L steps, each from its stored initial state, zeroed where an episode starts).
    ``_params`` turns either into distribution parameters ``{name: [B, k]}`` with one row per
    step (B = N L, sequence-major), so the surrogate, the KL, the Fisher-vector product and the
    line search are the same code for both: every evaluation re-runs the recurrent network over
    the whole sequences with the parameters being tried.

    A masked agent's update also takes the mask each action was drawn under (``masks [B, W]`` bool, in
    the actions' order); ``_params`` applies it (``Family.masked_params``), so the function from the
    parameters to the distribution is the masked one everywhere: log-probabilities, entropy, the
    surrogate, the KL, the line search and both Fisher-vector products (its Jacobian is zero on the
    invalid entries, which are constants).
    """

    def __init__(self, policy_model: keras.Model, value_model: keras.Model, family: Family,
                 config: TRPOConfig, value_optimizer: keras.optimizers.Optimizer):
        self.policy_model, self.value_model, self.family, self.config = policy_model, value_model, family, config
        self.recurrent = bool(config.recurrent)
        self.policy_vars = list(policy_model.trainable_variables)
        self.value_vars = list(value_model.trainable_variables)
        self.value_optimizer = value_optimizer
        self.max_kl = tf.Variable(float(config.max_kl), trainable=False, dtype=tf.float32)  # the agent's schedule sets it
        if not value_optimizer.built:
            value_optimizer.build(self.value_vars)
        jit = bool(config.jit_compile)
        # A recurrent policy's step runs as a plain graph: XLA compiles the cell's while loop under the
        # Fisher-vector product's nested tapes into much slower code (15 s against 0.1 s per update on
        # CartPoleNoVel, 8 envs x 32 steps, LSTM 64; re-measured 2026-12-07: 3.7 s against 0.23 s), and
        # unrolling the loop for XLA instead took 130 s to compile for 32 steps. The critic's first-order
        # update keeps XLA (0.09 s against 0.13 s).
        # autograph=False: the loops are explicit tf.while_loops, and AutoGraph's conversion of every function
        # these call (Keras, TFP, the optimizer) was most of an agent's first-iteration tracing time.
        self.policy_jit = jit and not self.recurrent
        self._policy_update = tf.function(self._policy_update_impl, jit_compile=self.policy_jit,
                                          reduce_retracing=True, autograph=False)
        self._value_update = tf.function(self._value_update_impl, jit_compile=jit, reduce_retracing=True,
                                         autograph=False)

    # ---- public, NumPy in and out ----
    def policy_update(self, obs, actions: np.ndarray, advantages: np.ndarray,
                      masks: Optional[np.ndarray] = None) -> dict[str, float]:
        """``obs``: the policy input (an array, or the recurrent ``(obs, starts, state)``); ``actions``,
        ``advantages`` and a masked agent's ``masks [B, W]`` one row per step, in the order ``_params``
        gives them."""
        args = (_tensors(obs if isinstance(obs, tuple) else (obs,)),
                tf.convert_to_tensor(actions, self.family.tf_action_dtype),
                tf.convert_to_tensor(advantages, tf.float32))
        if masks is not None:  # an unmasked agent's graph is the one it always was
            args += (tf.convert_to_tensor(masks, tf.bool),)
        out = self._policy_update(*args)
        return {k: float(v.numpy()) for k, v in out.items()}

    def value_update(self, obs, returns: np.ndarray, batches: np.ndarray) -> float:
        """``batches``: ``[n_batches, batch_size]`` int32 row indices, one minibatch per row. Recurrent:
        ``obs`` is ``(obs [N, L, ...], starts [N, L], state [N, S])``, ``returns [N, L]`` and the rows
        index sequences."""
        return float(self._value_update(_tensors(obs if isinstance(obs, tuple) else (obs,)),
                                        tf.convert_to_tensor(returns, tf.float32),
                                        tf.convert_to_tensor(batches, tf.int32)).numpy())

    def load_optimizer_variables(self, values: list[np.ndarray], where: str) -> None:
        """Restore the value optimizer's state (its ``variables``, as saved) read from ``where``."""
        variables = self.value_optimizer.variables
        if len(values) != len(variables):
            raise ValueError(f"{where!r}: optimizer state has {len(values)} arrays, expected {len(variables)}")
        for var, value in zip(variables, values):
            var.assign(value)

    # ---- graph code ----
    def _assign(self, flat: tf.Tensor) -> None:
        for var, value in zip(self.policy_vars, unflatten(flat, self.policy_vars)):
            var.assign(value)

    def _params(self, inputs: tuple, masks: Optional[tf.Tensor] = None) -> dict[str, tf.Tensor]:
        """Distribution parameters ``{name: [B, k]}``, one row per step, for the policy input ``inputs``;
        with ``masks [B, W]`` the masked distribution's."""
        if not self.recurrent:
            params = self.policy_model(inputs[0], training=False)
        else:
            obs, starts, state = inputs
            out = self.policy_model({"obs": obs, "starts": starts, "state": state}, training=False)
            params = {k: tf.reshape(v, [-1, v.shape[-1]]) for k, v in out.items() if k != "state"}
        return params if masks is None else self.family.masked_params(params, masks)

    def fisher_product(self, obs, old_params: dict[str, tf.Tensor], masks: Optional[tf.Tensor] = None):
        """``v [n] -> (F + cg_damping I) v``, ``F`` the Hessian of the mean KL(old || current) over ``obs``.

        ``obs``: the policy input tuple (``_params``); ``old_params``: the old policy's outputs on
        it, ``{name: [B, k]}``. At the old parameters ``F`` is the Fisher information of the policy
        on those states (for a recurrent policy, of the whole sequences: the Jacobian runs back
        through the cell to each sequence's start). ``masks``: a masked agent's, as ``_params`` takes them
        (``old_params`` are then the masked ones).
        """
        cfg, family, variables = self.config, self.family, self.policy_vars
        old = family.make(old_params)

        def mean_kl_of(outputs):
            return tf.reduce_mean(old.kl_divergence(family.make(outputs)))

        def outputs():
            return self._params(obs, masks)

        if cfg.fisher_product == "gauss_newton":
            return lambda v: gauss_newton_vector_product(outputs, mean_kl_of, variables, v, cfg.cg_damping)

        def kl():
            return mean_kl_of(outputs())

        # Without XLA (a recurrent policy), the forward pass and the KL's gradient are built once for all of CG's
        # products: about a fifth of the update. XLA shares that work already, and there rebuilding them per product
        # keeps the compiled graph, and so the feed-forward histories, bit for bit as they were.
        if self.policy_jit:
            return lambda v: fisher_vector_product(kl, variables, v, cfg.cg_damping)
        return fisher_operator(kl, variables, cfg.cg_damping)

    def schedule_max_kl(self, progress: float) -> None:
        """The trust region of the next update: ``max_kl`` throughout, or with ``max_kl_schedule="linear"``
        ``max_kl * (1 - progress)``, ``progress`` in [0, 1) the share of the current ``fit`` done."""
        if self.config.max_kl_schedule == "linear":
            self.max_kl.assign(self.config.max_kl * (1.0 - float(progress)))

    def _policy_update_impl(self, obs, actions, advantages, masks=None):
        cfg, family, variables = self.config, self.family, self.policy_vars
        max_kl = cfg.max_kl if cfg.max_kl_schedule == "constant" else self.max_kl
        old_params = {k: tf.stop_gradient(v) for k, v in self._params(obs, masks).items()}
        old_dist = family.make(old_params)
        old_log_prob = tf.stop_gradient(old_dist.log_prob(actions))

        def dist():
            return family.make(self._params(obs, masks))

        def surrogate(d):
            gain = tf.reduce_mean(tf.exp(d.log_prob(actions) - old_log_prob) * advantages)
            if cfg.entropy_coef:  # decided when tracing: without a bonus the graph is the one it always was
                gain += cfg.entropy_coef * tf.reduce_mean(d.entropy())
            return gain

        def mean_kl(d):
            return tf.reduce_mean(old_dist.kl_divergence(d))

        def line_search_kl(d):  # the Fisher is the same either way; only the acceptance test differs
            return mean_kl(d) if cfg.line_search_kl == "old_new" else tf.reduce_mean(d.kl_divergence(old_dist))

        with tf.GradientTape() as tape:
            surrogate_before = surrogate(dist())
        g = flat_gradient(tape, surrogate_before, variables)

        # The Fisher from every k-th sample (the TRPO paper's and sb3-contrib's sub-sampling): CG's
        # products and the step's scale cost 1/k; the gradient and the line search keep the whole batch.
        # A recurrent policy's samples are its sequences (a step needs the steps before it): every k-th one.
        k = cfg.fisher_subsample
        if k == 1:
            fvp = self.fisher_product(obs, old_params, masks)
        elif self.recurrent:
            length = tf.shape(obs[0])[1]

            def every_kth_sequence(p):
                return tf.reshape(tf.reshape(p, [-1, length, p.shape[-1]])[::k], [-1, p.shape[-1]])

            sub = {name: every_kth_sequence(p) for name, p in old_params.items()}
            fvp = self.fisher_product(tuple(x[::k] for x in obs), sub,
                                      None if masks is None else every_kth_sequence(masks))
        else:
            fvp = self.fisher_product((obs[0][::k],), {name: p[::k] for name, p in old_params.items()},
                                      None if masks is None else masks[::k])
        direction, cg_iterations = conjugate_gradient(fvp, g, cfg.cg_iters, cfg.cg_residual_tol)
        shs = tf.tensordot(direction, fvp(direction), 1)
        beta = tf.sqrt(2.0 * max_kl / tf.maximum(shs, 1e-12))
        full_step = beta * direction
        theta_old = tf.identity(flatten([tf.convert_to_tensor(v) for v in variables]))

        def evaluate(step):
            self._assign(theta_old + step)
            d = dist()
            return surrogate(d), line_search_kl(d)

        result = backtracking_line_search(evaluate, full_step, surrogate_before, max_kl,
                                          cfg.line_search_steps, cfg.line_search_shrink)
        self._assign(theta_old + result.step)
        return {
            "kl": result.kl,
            "surrogate_improvement": result.surrogate - surrogate_before,
            "expected_improvement": tf.tensordot(g, full_step, 1),
            "line_search_steps": tf.cast(result.tries, tf.float32),
            "step_accepted": tf.cast(result.accepted, tf.float32),
            "entropy": tf.reduce_mean(old_dist.entropy()),
            "cg_iterations": tf.cast(cg_iterations, tf.float32),
        }

    def _value_of(self, x: tuple) -> tf.Tensor:
        if not self.recurrent:
            return self.value_model(x[0], training=True)[:, 0]
        return self.value_model({"obs": x[0], "starts": x[1], "state": x[2]}, training=True)["value"][..., 0]

    def _value_update_impl(self, obs, returns, batches):
        n = tf.shape(batches)[0]

        def minibatch(i, total):
            idx = batches[i]
            x, y = tuple(tf.gather(part, idx) for part in obs), tf.gather(returns, idx)
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(self._value_of(x) - y))
            grads = tape.gradient(loss, self.value_vars)
            self.value_optimizer.apply_gradients(zip(grads, self.value_vars))
            return i + 1, total + loss

        _, total = tf.while_loop(lambda i, total: i < n, minibatch, (tf.constant(0), tf.constant(0.0)))
        return total / tf.cast(n, tf.float32)


def _tensors(arrays: tuple) -> tuple:
    return tuple(tf.convert_to_tensor(a, tf.float32) for a in arrays)
