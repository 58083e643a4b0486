"""OnnxPolicy on the hand-built linear policies, against the same computation in NumPy:
all four distributions, output order, dtypes, multi-dimensional observations, sampling."""
import numpy as np
import pytest

from keras_trpo_serving import InvalidObservation, OnnxPolicy
from keras_trpo_serving.tests.conftest import fixture_path, linear_weights

RNG = np.random.default_rng(123)


def logits_of(name: str, obs: np.ndarray) -> np.ndarray:
    w = linear_weights(name)
    x = obs.reshape(len(obs), -1).astype(np.float32)
    return x @ w["W"] + w["b"]


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_metadata_is_parsed():
    policy = OnnxPolicy(fixture_path("linear_gaussian"))
    meta = policy.metadata
    assert meta["env_id"] == "Fixture-v0" and meta["keras_trpo_version"] == "0.1.0"
    assert meta["trained_timesteps"] == "1234" and meta["made_by"]  # unknown keys are kept
    assert meta["observation_space"]["low"] == ["-inf", "-inf", -1.0, -1.0, 0.0]
    assert meta["action_space"] == {"type": "Box", "shape": [3], "dtype": "float32",
                                    "low": [-1.0, -0.5, -2.0], "high": [1.0, 2.0, 0.5]}
    assert policy.distribution == "diag_gaussian" and policy.obs_shape == (5,)
    md = OnnxPolicy(fixture_path("linear_multidiscrete")).metadata["action_space"]
    assert md["nvec"] == [3, 2] and md["start"] == [1, -1]
    assert "linear_gaussian.onnx" in repr(policy) and "diag_gaussian" in repr(policy)


def test_categorical_single_and_batch():
    policy = OnnxPolicy(fixture_path("linear_discrete"))
    obs = RNG.uniform(-3, 3, size=(256, 4))  # float64, as gymnasium envs give
    z = logits_of("discrete", obs)
    expected = np.argmax(z, axis=1)
    actions = policy.act(obs)
    assert actions.dtype == np.int64 and actions.shape == (256,)
    np.testing.assert_array_equal(actions, expected)
    np.testing.assert_allclose(policy.distribution_params(obs)["logits"], z, rtol=1e-5, atol=1e-5)
    one = policy.act(obs[0])
    assert isinstance(one, np.int64) and one == expected[0]  # a scalar for one observation
    assert policy.act(obs[:1]).shape == (1,)  # a batch of one stays a batch
    assert policy(obs[3]) == expected[3]


def test_gaussian_outputs_found_by_name_and_clipped():
    policy = OnnxPolicy(fixture_path("linear_gaussian"))  # outputs stored as log_std, mean, action
    w = linear_weights("gaussian")
    obs = RNG.normal(size=(64, 5)) * 2
    mean = logits_of("gaussian", obs)
    actions = policy.act(obs)
    assert actions.dtype == np.float32 and actions.shape == (64, 3)
    np.testing.assert_allclose(actions, np.clip(mean, w["low"], w["high"]), atol=1e-5)
    params = policy.distribution_params(obs)
    np.testing.assert_allclose(params["mean"], mean, atol=1e-5)
    np.testing.assert_allclose(params["log_std"], np.broadcast_to(w["log_std"], (64, 3)))
    single = policy.act(obs[0])
    assert single.shape == (3,) and single.dtype == np.float32


def test_box_action_comes_in_the_spaces_dtype():
    policy = OnnxPolicy(fixture_path("linear_gaussian64"))  # graph gives float32, the space says float64
    obs = RNG.normal(size=(8, 5))
    assert policy.act(obs).dtype == np.float64
    assert policy.act(obs, deterministic=False).dtype == np.float64
    np.testing.assert_allclose(policy.act(obs), OnnxPolicy(fixture_path("linear_gaussian")).act(obs), atol=1e-6)


def test_multi_categorical_per_subspace_with_start():
    policy = OnnxPolicy(fixture_path("linear_multidiscrete"))
    obs = RNG.uniform(-1, 1, size=(128, 3)).astype(np.float32)
    z = logits_of("multidiscrete", obs)
    expected = np.stack([np.argmax(z[:, :3], 1) + 1, np.argmax(z[:, 3:], 1) - 1], axis=1)
    actions = policy.act(obs)
    assert actions.dtype == np.int64
    np.testing.assert_array_equal(actions, expected)
    np.testing.assert_array_equal(policy.act(obs[5]), expected[5])


def test_bernoulli_on_a_two_dimensional_observation():
    policy = OnnxPolicy(fixture_path("linear_multibinary"))
    assert policy.obs_shape == (2, 3)
    obs = RNG.normal(size=(32, 2, 3))
    expected = (logits_of("multibinary", obs) > 0).astype(np.int8)
    actions = policy.act(obs)
    assert actions.dtype == np.int8 and actions.shape == (32, 4)
    np.testing.assert_array_equal(actions, expected)
    np.testing.assert_array_equal(policy.act(obs[0]), expected[0])
    with pytest.raises(InvalidObservation, match=r"expected \(2, 3\) for one observation or \(batch, 2, 3\)"):
        policy.act(obs.reshape(32, 6))


# ---------------------------------------------------------------- stochastic actions
def test_categorical_samples_follow_softmax_and_are_reproducible():
    obs = np.array([0.3, -0.2, 0.1, 0.05])
    probs = softmax(logits_of("discrete", obs[None]).astype(np.float64))[0]
    assert 0.05 < probs.min()  # both actions matter, so the check below means something
    batch = np.repeat(obs[None], 20_000, axis=0)
    draws = OnnxPolicy(fixture_path("linear_discrete"), seed=11).act(batch, deterministic=False)
    assert draws.dtype == np.int64
    freq = np.bincount(draws, minlength=2) / len(draws)
    np.testing.assert_allclose(freq, probs, atol=0.015)  # ~5 standard errors
    again = OnnxPolicy(fixture_path("linear_discrete"), seed=11).act(batch, deterministic=False)
    np.testing.assert_array_equal(draws, again)
    other = OnnxPolicy(fixture_path("linear_discrete"), seed=12).act(batch, deterministic=False)
    assert not np.array_equal(draws, other)


def test_single_observation_sampling_one_at_a_time():
    policy = OnnxPolicy(fixture_path("linear_discrete"), seed=0)
    obs = np.array([0.3, -0.2, 0.1, 0.05], np.float32)
    draws = [policy.act(obs, deterministic=False) for _ in range(2000)]
    assert all(isinstance(d, np.int64) for d in draws) and set(draws) == {0, 1}
    probs = softmax(logits_of("discrete", obs[None]).astype(np.float64))[0]
    assert abs(np.mean(draws) - probs[1]) < 0.05


def test_multi_categorical_samples_follow_each_softmax():
    policy = OnnxPolicy(fixture_path("linear_multidiscrete"), seed=3)
    obs = np.array([0.1, -0.4, 0.2], np.float32)
    z = logits_of("multidiscrete", obs[None]).astype(np.float64)[0]
    draws = policy.act(np.repeat(obs[None], 20_000, axis=0), deterministic=False)
    assert draws.shape == (20_000, 2) and draws.dtype == np.int64
    np.testing.assert_allclose(np.bincount(draws[:, 0] - 1, minlength=3) / 20_000, softmax(z[:3]), atol=0.015)
    np.testing.assert_allclose(np.bincount(draws[:, 1] + 1, minlength=2) / 20_000, softmax(z[3:]), atol=0.015)


def test_bernoulli_samples_follow_sigmoid():
    policy = OnnxPolicy(fixture_path("linear_multibinary"), seed=5)
    obs = np.full((2, 3), 0.1)
    p = 1 / (1 + np.exp(-logits_of("multibinary", obs[None]).astype(np.float64)[0]))
    draws = policy.act(np.repeat(obs[None], 20_000, axis=0), deterministic=False)
    assert draws.dtype == np.int8 and set(np.unique(draws)) <= {0, 1}
    np.testing.assert_allclose(draws.mean(0), p, atol=0.015)


def test_gaussian_samples_have_the_exported_mean_and_std_within_bounds():
    w = linear_weights("gaussian")
    policy = OnnxPolicy(fixture_path("linear_gaussian"), seed=9)
    obs = np.zeros((50_000, 5), np.float32)  # mean = b
    draws = policy.act(obs, deterministic=False)
    assert draws.dtype == np.float32 and draws.shape == (50_000, 3)
    assert np.all(draws >= w["low"]) and np.all(draws <= w["high"])
    std = np.exp(w["log_std"])
    for i in range(3):  # compare where clipping is rare: mean +-3 std inside the bounds
        if w["low"][i] < w["b"][i] - 3 * std[i] and w["b"][i] + 3 * std[i] < w["high"][i]:
            assert abs(draws[:, i].mean() - w["b"][i]) < 0.02
            assert abs(draws[:, i].std() - std[i]) < 0.02
    # Clipping is what happens at the bounds: some draws sit exactly on them.
    assert np.any(draws == w["low"]) or np.any(draws == w["high"])
    np.testing.assert_array_equal(draws, OnnxPolicy(fixture_path("linear_gaussian"), seed=9).act(
        obs, deterministic=False))
