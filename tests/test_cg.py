"""conjugate_gradient against numpy.linalg.solve and CG's closed-form properties."""
import numpy as np
import pytest
import tensorflow as tf

from keras_trpo.optim.cg import conjugate_gradient


def spd(n, seed, cond=10.0, eigenvalues=None):
    """A random symmetric positive-definite matrix with the given spectrum, and a random b."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eig = np.linspace(1.0, cond, n) if eigenvalues is None else np.asarray(eigenvalues, np.float64)
    return q @ np.diag(eig) @ q.T, rng.normal(size=n)


def matvec_of(a, dtype=tf.float64):
    a = tf.constant(a, dtype)
    return lambda v: tf.linalg.matvec(a, v)


@pytest.mark.parametrize("n, seed, cond", [(1, 0, 1.0), (2, 1, 5.0), (3, 2, 10.0), (10, 3, 100.0), (25, 4, 50.0),
                                           (40, 5, 10.0)])
def test_matches_numpy_solve_in_float64_after_n_iterations(n, seed, cond):
    a, b = spd(n, seed, cond)
    x, iters = conjugate_gradient(matvec_of(a), tf.constant(b), max_iters=n, residual_tol=0.0)
    expected = np.linalg.solve(a, b)
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-5, atol=1e-7)
    assert x.dtype == tf.float64
    assert int(iters) == n  # residual_tol=0 never stops early


@pytest.mark.parametrize("n, seed", [(4, 10), (8, 11), (16, 12)])
def test_float32(n, seed):
    a, b = spd(n, seed, cond=5.0)
    x, iters = conjugate_gradient(matvec_of(a, tf.float32), tf.constant(b, tf.float32), max_iters=n, residual_tol=0.0)
    assert x.dtype == tf.float32 and int(iters) == n
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(a, b), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_identity_stops_after_one_iteration(dtype):
    b = tf.constant([1.0, -2.0, 3.0, 0.5], dtype)
    x, iters = conjugate_gradient(lambda v: v, b, max_iters=10, residual_tol=1e-10)
    assert int(iters) == 1 < 10
    np.testing.assert_allclose(x.numpy(), b.numpy(), rtol=1e-6)


def test_zero_right_hand_side_needs_no_iteration():
    x, iters = conjugate_gradient(lambda v: 3.0 * v, tf.zeros(5, tf.float64), max_iters=10, residual_tol=1e-10)
    assert int(iters) == 0
    np.testing.assert_array_equal(x.numpy(), np.zeros(5))


def test_converges_in_as_many_iterations_as_distinct_eigenvalues():
    # Exact-arithmetic CG terminates after k steps when A has k distinct eigenvalues.
    a, b = spd(12, 6, eigenvalues=[1.0] * 4 + [3.0] * 4 + [7.0] * 4)
    x, iters = conjugate_gradient(matvec_of(a), tf.constant(b), max_iters=12, residual_tol=1e-18)
    assert int(iters) == 3
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(a, b), rtol=1e-7, atol=1e-9)


def test_error_in_the_a_norm_decreases_monotonically():
    a, b = spd(20, 7, cond=1000.0)
    exact = np.linalg.solve(a, b)
    errors = []
    for k in range(0, 21, 2):
        x, _ = conjugate_gradient(matvec_of(a), tf.constant(b), max_iters=k, residual_tol=0.0)
        e = x.numpy() - exact
        errors.append(float(np.sqrt(e @ a @ e)))
    assert errors[0] > errors[1]
    assert all(later <= earlier * (1 + 1e-9) for earlier, later in zip(errors, errors[1:]))
    assert errors[-1] < 1e-6 * errors[0]


def test_matvec_calls_equal_iterations():
    a, b = spd(6, 8)
    calls = []

    def counting(v):
        calls.append(1)
        return tf.linalg.matvec(tf.constant(a), v)

    _, iters = conjugate_gradient(counting, tf.constant(b), max_iters=4, residual_tol=0.0)
    assert int(iters) == 4 and len(calls) == 4  # eager while_loop runs the body once per iteration


@pytest.mark.parametrize("jit", [False, True])
def test_inside_tf_function(jit):
    a, b = spd(8, 9)
    a32, b32 = tf.constant(a, tf.float32), tf.constant(b, tf.float32)

    @tf.function(jit_compile=jit)
    def solve(rhs):
        return conjugate_gradient(lambda v: tf.linalg.matvec(a32, v), rhs, max_iters=8, residual_tol=1e-10)

    x, iters = solve(b32)
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(a, b), rtol=1e-3, atol=1e-4)
    assert 1 <= int(iters) <= 8
    x2, _ = solve(2 * b32)  # same trace, linear in b
    np.testing.assert_allclose(x2.numpy(), 2 * np.linalg.solve(a, b), rtol=1e-3, atol=1e-4)
