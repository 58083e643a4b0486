"""What one Fisher-vector product costs, in forward passes of the same policy.

The TRPO policy update of a Hopper-v5 iteration is dominated by 26 Fisher-vector products
(25 CG iterations and one for the step size) over the 2,048 samples of a rollout. This script
times, on the real default Hopper policy (64x64 tanh, obs normalisation, Gaussian head) and
2,048 random observations, 25 chained repetitions of:

- a forward pass,
- a forward and backward pass (the gradient of a scalar of the outputs),
- ``keras_trpo.optim.fisher.fisher_vector_product`` (nested tapes: forward, first-order gradient of
  the mean KL, gradient of ``grad . v``, all rebuilt for each product),
- ``keras_trpo.optim.fisher.fisher_operator``, what the learner uses for ``fisher_product="hvp"``: the
  forward pass and the first-order gradient built once and reused, each product being one
  vector-Jacobian product of it (a persistent outer tape, as sb3-contrib does with
  ``create_graph=True``),
- ``keras_trpo.optim.fisher.gauss_newton_vector_product`` (a JVP through the network in forward mode,
  the KL's Hessian in the outputs, then one VJP: ``fisher_product="gauss_newton"``),

each inside a ``tf.while_loop`` whose iterations depend on each other (so nothing is hoisted or
de-duplicated), with and without XLA, and prints milliseconds per repetition and the ratio to
one forward pass. Speed only; ``tests/`` checks that the product is right.

    PYTHONPATH=. python -m benchmarks.fvp_cost [--env Hopper-v5] [--batch 2048] [--repeats 15]
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np
import tensorflow as tf

import keras_trpo
from keras_trpo.optim.fisher import fisher_operator, fisher_vector_product, flat_gradient, gauss_newton_vector_product

CHAIN = 25


def build(env_id: str, batch: int, seed: int = 0):
    agent = keras_trpo.TRPO(env_id, seed=seed)
    model, family = agent.policy_model, agent.family
    variables = list(model.trainable_variables)
    rng = np.random.default_rng(seed)
    shape = agent.observation_space.shape
    obs = tf.constant(rng.normal(size=(batch, *shape)).astype(np.float32))
    n = sum(int(np.prod(v.shape)) for v in variables)
    v0 = tf.constant((rng.normal(size=(n,)) / np.sqrt(n)).astype(np.float32))
    agent.close()
    return model, family, variables, obs, v0


def candidates(model, family, variables, obs) -> dict[str, Callable[[tf.Tensor], tf.Tensor]]:
    def scalar(out):  # depends on every policy variable, so no gradient is unconnected
        return tf.add_n([tf.reduce_sum(t) for t in out.values()])

    def old_dist():
        return family.make({k: tf.stop_gradient(t) for k, t in model(obs, training=False).items()})

    def chain(body):
        return lambda v: tf.while_loop(lambda i, x: i < CHAIN, lambda i, x: (i + 1, body(x)), (0, v))[1]

    def forward(x):
        return x + 1e-6 * scalar(model(obs + x[0], training=False))

    def forward_backward(x):
        with tf.GradientTape() as tape:
            s = scalar(model(obs + x[0], training=False))
        return x + 1e-6 * flat_gradient(tape, s, variables)

    def nested(v):
        old = old_dist()

        def kl():
            return tf.reduce_mean(old.kl_divergence(family.make(model(obs, training=False))))

        return chain(lambda x: 0.01 * fisher_vector_product(kl, variables, x, 0.1))(v)

    def reused(v):
        old = old_dist()
        product = fisher_operator(lambda: tf.reduce_mean(old.kl_divergence(family.make(model(obs, training=False)))),
                                  variables, 0.1)
        return chain(lambda x: 0.01 * product(x))(v)

    def gauss_newton(v):
        old = old_dist()

        def kl_of(out):
            return tf.reduce_mean(old.kl_divergence(family.make(out)))

        return chain(lambda x: 0.01 * gauss_newton_vector_product(lambda: model(obs, training=False), kl_of,
                                                                  variables, x, 0.1))(v)

    return {"forward": chain(forward), "forward + backward": chain(forward_backward),
            "FVP, rebuilt for each product": nested, "FVP, fisher_operator (hvp)": reused,
            "FVP, Gauss-Newton (JVP + VJP)": gauss_newton}


def time_ms(fn, v0, repeats: int) -> float:
    fn(v0).numpy()  # trace and compile
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(v0).numpy()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times) / CHAIN


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=15)
    a = p.parse_args()
    model, family, variables, obs, v0 = build(a.env, a.batch)
    rows = []
    for name, fn in candidates(model, family, variables, obs).items():
        rows.append((name,) + tuple(time_ms(tf.function(fn, jit_compile=jit), v0, a.repeats) for jit in (True, False)))
    fwd_xla, fwd_plain = rows[0][1], rows[0][2]
    print(f"{a.env}, batch {a.batch}, ms per repetition (median of {a.repeats} chains of {CHAIN})")
    print(f"| {'computation':32s} | XLA ms | × forward | no XLA ms | × forward |")
    print("|---|--:|--:|--:|--:|")
    for name, xla, plain in rows:
        print(f"| {name:32s} | {xla:6.3f} | {xla / fwd_xla:9.1f} | {plain:9.3f} | {plain / fwd_plain:9.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
