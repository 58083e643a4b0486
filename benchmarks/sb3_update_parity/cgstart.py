"""``cgstart``: is sb3-contrib's random CG start what separates the two directions late in a run?"""
from __future__ import annotations

import os

import numpy as np

from benchmarks.sb3_update_parity.check import cosine
from benchmarks.sb3_update_parity.weights import (
    agent_with_sb3_weights,
    flat,
    load_dump,
    policy_batch,
)


def _cg_from(matvec, b, x0, iters: int, residual_tol: float = 1e-10):
    """sb3-contrib's conjugate-gradient loop from the start ``x0`` (its own draws ``1e-4 * randn``)."""
    x = x0
    r = b - matvec(x)
    p, rr = r, float(np.dot(r, r))
    for i in range(iters):
        ap = matvec(p)
        alpha = rr / float(np.dot(p, ap))
        x = x + alpha * p
        if i == iters - 1:
            break
        r = r - alpha * ap
        rr_new = float(np.dot(r, r))
        if rr_new < residual_tol:
            break
        p, rr = r + (rr_new / rr) * p, rr_new
    return x


def cg_start(path: str, draws: int = 6, long_iters: int = 200) -> dict:
    """Is sb3-contrib's random CG start (``x = 1e-4 * randn`` where keras_trpo starts from 0) what makes the two
    directions differ late in a run? keras_trpo's Fisher product (damping included) on the dump's batch,
    its CG from 0 and from ``draws`` of sb3-contrib's start, and a ``long_iters`` solve for how far the
    ``cg_iters`` ones are from converged. Cosines are against sb3-contrib's direction (its parameter order);
    ``x0Fx0`` is the start's size in the metric the trust region uses, against the direction's ``sFs``."""
    import tensorflow as tf

    from keras_trpo.optim.cg import conjugate_gradient

    a, meta = load_dump(path)
    agent, gaussian, _, variables = agent_with_sb3_weights(a, meta)
    learner, cfg = agent.learner, agent.config
    x, act, adv = policy_batch(a, gaussian)
    x, adv = tf.constant(x), adv.astype(np.float32)
    old_params = {k: tf.stop_gradient(v) for k, v in agent.policy_model(x).items()}
    old_log_prob = agent.family.make(old_params).log_prob(act)
    policy_vars = learner.policy_vars
    with tf.GradientTape() as tape:
        new = agent.family.make(agent.policy_model(x))
        surrogate = tf.reduce_mean(tf.exp(new.log_prob(act) - old_log_prob) * adv)
    g = tf.concat([tf.reshape(t, [-1]) for t in tape.gradient(surrogate, policy_vars)], 0)
    fvp = learner.fisher_product((x,), old_params)

    def matvec(v: np.ndarray) -> np.ndarray:
        return fvp(tf.constant(v, tf.float32)).numpy()

    def in_sb3_order(vector: np.ndarray) -> np.ndarray:
        by_path, i = {}, 0
        for v in policy_vars:
            n = int(np.prod(v.shape))
            by_path[v.path], i = vector[i:i + n].reshape(v.shape), i + n
        return flat((by_path[v.path], t) for v, t in variables)

    def quad(v: np.ndarray) -> float:
        return float(v @ matvec(v))

    s_sb3 = a["direction"]
    zero = conjugate_gradient(fvp, g, cfg.cg_iters, cfg.cg_residual_tol)[0].numpy()
    long = conjugate_gradient(fvp, g, long_iters, 0.0)[0].numpy()
    rng = np.random.default_rng(0)
    starts = [(1e-4 * rng.standard_normal(zero.shape)).astype(np.float32) for _ in range(draws)]
    random = [_cg_from(matvec, g.numpy(), x0, cfg.cg_iters) for x0 in starts]
    # the same loop from 0: what the loop's own arithmetic (against the graph's while_loop) moves, without the start
    zero_loop = _cg_from(matvec, g.numpy(), np.zeros_like(starts[0]), cfg.cg_iters)
    return dict(
        file=os.path.basename(path), iteration=meta["iteration"], timesteps=meta["timesteps"], parameters=int(zero.size),
        cg_iters=cfg.cg_iters, cos_zero_start_vs_sb3=cosine(in_sb3_order(zero), s_sb3),
        cos_random_start_vs_sb3=[cosine(in_sb3_order(r), s_sb3) for r in random],
        cos_random_start_vs_zero_start=[cosine(r, zero) for r in random],
        cos_zero_start_same_loop_vs_sb3=cosine(in_sb3_order(zero_loop), s_sb3), cos_zero_start_same_loop_vs_zero_start=cosine(zero_loop, zero),
        cos_random_start_vs_zero_start_same_loop=[cosine(r, zero_loop) for r in random],
        sFs_zero_start=quad(zero), x0Fx0=[quad(x0) for x0 in starts],
        cos_long_vs_zero_start=cosine(long, zero), cos_long_vs_sb3=cosine(in_sb3_order(long), s_sb3),
        long_iters=long_iters,
    )
