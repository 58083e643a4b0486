"""Per-family defaults and the translation of sb3-contrib's per-dimension KL convention."""
import gymnasium as gym
import numpy as np
import pytest

from keras_trpo.config import ConfigError, TRPOConfig, default_config, env_family


def test_families():
    assert env_family("CartPole-v1") == "classic_discrete"
    assert env_family("Pendulum-v1") == "pendulum"
    assert env_family("Hopper-v5") == env_family("Walker2d-v5") == env_family("HalfCheetah-v5") == "mujoco"
    assert env_family("FrozenLake-v1") == "generic" and env_family(None) == "generic"


def test_zoo_settings_for_discrete_actions_are_taken_as_they_are():
    cfg = default_config("CartPole-v1", gym.spaces.Discrete(2))
    assert (cfg.n_envs, cfg.n_steps, cfg.value_batch_size, cfg.value_epochs) == (2, 512, 512, 20)
    assert (cfg.max_kl, cfg.cg_damping, cfg.gae_lambda) == (0.01, 1e-3, 0.98)


@pytest.mark.parametrize("env_id, dims, target_kl, damping", [("Hopper-v5", 3, 0.01, 0.1), ("HalfCheetah-v5", 6, 0.04, 0.1),
                                                              ("Pendulum-v1", 1, 0.01, 0.1)])
def test_gaussian_policies_scale_kl_and_damping_by_action_dimension(env_id, dims, target_kl, damping):
    # sb3-contrib averages a diagonal Gaussian's KL over action dimensions: same trust region = target * d.
    cfg = default_config(env_id, gym.spaces.Box(-1, 1, (dims,)))
    assert cfg.max_kl == pytest.approx(target_kl * dims) and cfg.cg_damping == pytest.approx(damping * dims)
    assert default_config(env_id).max_kl == target_kl  # without an action space: the zoo's numbers


def test_mujoco_defaults_normalise():
    cfg = default_config("Hopper-v5", gym.spaces.Box(-1, 1, (3,)))
    assert cfg.normalize_obs and cfg.normalize_reward and cfg.cg_iters == 25 and cfg.value_batch_size == 128


def test_round_trip_and_unknown_fields():
    cfg = TRPOConfig(hidden_sizes=(32, 16), max_kl=0.02)
    assert TRPOConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown hyperparameter"):
        cfg.replace(learning_rate=1e-3)
    with pytest.raises(ConfigError, match="hidden_sizes"):
        cfg.replace(hidden_sizes=(0,))
    assert np.isclose(cfg.replace(gamma=0.0).gamma, 0.0)
