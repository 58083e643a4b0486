"""conjugate_gradient against numpy.linalg.solve."""
import numpy as np
import pytest
import tensorflow as tf

from keras_trpo.cg import conjugate_gradient


def spd(n, seed, cond=10.0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    return q @ np.diag(np.linspace(1.0, cond, n)) @ q.T, rng.normal(size=n)


@pytest.mark.parametrize("n, seed", [(1, 0), (3, 1), (10, 2), (40, 3)])
def test_matches_numpy_solve_in_float64(n, seed):
    a, b = spd(n, seed)
    x, iters = conjugate_gradient(lambda v: tf.linalg.matvec(tf.constant(a), v), tf.constant(b), max_iters=n,
                                  residual_tol=0.0)
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(a, b), rtol=1e-6, atol=1e-8)
    assert int(iters) == n


def test_float32_and_inside_tf_function():
    a, b = spd(8, 5)
    a32, b32 = tf.constant(a, tf.float32), tf.constant(b, tf.float32)
    solve = tf.function(lambda: conjugate_gradient(lambda v: tf.linalg.matvec(a32, v), b32, max_iters=8)[0])
    np.testing.assert_allclose(solve().numpy(), np.linalg.solve(a, b), rtol=1e-3, atol=1e-4)


def test_stops_early_once_the_residual_is_small():
    b = tf.constant([1.0, -2.0, 3.0], tf.float64)
    x, iters = conjugate_gradient(lambda v: 2.0 * v, b, max_iters=10, residual_tol=1e-20)
    assert int(iters) == 1  # one step solves a multiple of the identity exactly
    np.testing.assert_allclose(x.numpy(), b.numpy() / 2)


def test_fewer_iterations_give_a_partial_solution_that_still_reduces_the_residual():
    a, b = spd(20, 7, cond=1000.0)
    x, _ = conjugate_gradient(lambda v: tf.linalg.matvec(tf.constant(a), v), tf.constant(b), max_iters=3, residual_tol=0.0)
    assert np.linalg.norm(a @ x.numpy() - b) < np.linalg.norm(b)
