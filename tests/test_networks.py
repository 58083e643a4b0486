"""Initialisation: SB3's orthogonal init by default, PyTorch's nn.Linear default with ortho_init=False."""
import json

import gymnasium as gym
import numpy as np
import pytest

import keras_trpo
from keras_trpo import ConfigError
from keras_trpo.distributions import family_for
from keras_trpo.policies.networks import build_mlp, build_policy_model, build_value_model

OBS = gym.spaces.Box(-1.0, 1.0, (64,), np.float32)  # 64 inputs: every hidden kernel is square
ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def _dense(model):
    """(name, kernel, bias) of every Dense layer, torso layers included."""
    out = []
    for layer in model.layers:
        for sub in getattr(layer, "layers", [layer]):
            if hasattr(sub, "kernel"):
                out.append((sub.name, np.asarray(sub.kernel), np.asarray(sub.bias)))
    return out


def _gram_error(w, gain):
    """How far W^T W is from gain^2 I, relative (0 for an orthogonal kernel with that gain)."""
    return float(np.abs(w.T @ w - gain**2 * np.eye(w.shape[1])).max() / gain**2)


def _orthogonality_error(w):
    """How far W^T W is from a multiple of I, relative: 0 for an orthogonal kernel of any gain."""
    g = w.T @ w
    return float(np.abs(g / np.mean(np.diag(g)) - np.eye(w.shape[1])).max())


def test_default_init_is_orthogonal_with_sb3s_gains_and_zero_biases():
    policy = build_policy_model(OBS, family_for(ACT), seed=3)
    value = build_value_model(OBS, seed=3)
    gains = {"policy_torso_dense_0": np.sqrt(2), "policy_torso_dense_1": np.sqrt(2), "policy_mean": 0.01,
             "value_torso_dense_0": np.sqrt(2), "value_torso_dense_1": np.sqrt(2), "value_head": 1.0}
    layers = _dense(policy) + _dense(value)
    assert {name for name, _, _ in layers} == set(gains)
    for name, w, b in layers:
        assert _gram_error(w, gains[name]) < 1e-4, name
        assert not b.any(), name


def test_ortho_init_false_draws_pytorchs_linear_default():
    policy = build_policy_model(OBS, family_for(ACT), seed=3, ortho_init=False)
    value = build_value_model(OBS, seed=3, ortho_init=False)
    for name, w, b in _dense(policy) + _dense(value):
        bound = 1.0 / np.sqrt(w.shape[0])  # torch.nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), kernel and bias
        assert np.abs(w).max() <= bound and np.abs(b).max() <= bound and b.any(), name
        if w.shape == (64, 64):  # the hidden kernels: far from orthogonal (a random one: ~0.5), and the
            assert _orthogonality_error(w) > 0.2, name  # uniform's std, bound / sqrt(3), within sampling error
            assert w.std() == pytest.approx(bound / np.sqrt(3), rel=0.05), name
    with pytest.raises(ValueError, match="input_dim"):
        build_mlp((8,), "tanh", 0, "t", ortho_init=False)


def test_ortho_init_round_trips_through_get_config_and_save(tmp_path):
    agent = keras_trpo.TRPO("Pendulum-v1", seed=4, ortho_init=False, n_steps=64, value_epochs=1, jit_compile=False)
    assert _orthogonality_error(_dense(agent.policy_model)[1][1]) > 0.2  # the 64x64 hidden kernel
    clone = keras_trpo.TRPO.from_config(json.loads(json.dumps(agent.get_config())))
    assert clone.config.ortho_init is False
    for a, b in zip(agent.get_weights(), clone.get_weights()):
        np.testing.assert_array_equal(a, b)  # same seed, same draw
    agent.fit(64, verbose=0)
    agent.save(str(tmp_path / "a.keras"))
    loaded = keras_trpo.load(str(tmp_path / "a.keras"))
    assert loaded.config.ortho_init is False
    for a, b in zip(agent.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ConfigError, match="ortho_init"):
        agent.compile(ortho_init=True)  # it shapes the networks, which exist already
    default = keras_trpo.TRPO("Pendulum-v1", seed=4, jit_compile=False)
    assert default.config.ortho_init is True and _orthogonality_error(_dense(default.policy_model)[1][1]) < 1e-4
