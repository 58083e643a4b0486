"""Presets: every env of rl-baselines3-zoo's hyperparams/trpo.yml gets exactly the zoo's values.

EXPECTED below is written from the zoo's file (commit 13a3fe7, see keras_trpo/presets.py), in
keras_trpo's names and in the zoo's per-dimension KL convention (before the Box scaling).
Fields not listed are sb3-contrib's TRPO defaults, which are TRPOConfig's own.
"""
import dataclasses
import pathlib

import gymnasium as gym
import numpy as np
import pytest

from keras_trpo.config import ConfigError, TRPOConfig, default_config, env_family, explain_config
from keras_trpo.presets import KERAS_TRPO_PRESETS, ZOO_COMMIT, ZOO_TRPO, preset, translate

SB3_TRPO_DEFAULTS = dict(n_envs=1, n_steps=2048, value_batch_size=128, gamma=0.99, cg_iters=15, cg_damping=0.1,
                         line_search_shrink=0.8, line_search_steps=10, value_epochs=10, gae_lambda=0.95,
                         normalize_advantage=True, max_kl=0.01, value_learning_rate=1e-3, cg_residual_tol=1e-10,
                         hidden_sizes=(64, 64), activation="tanh", log_std_init=0.0, normalize_obs=False,
                         normalize_reward=False, ortho_init=True)
NORM = dict(normalize_obs=True, normalize_reward=True)
PYBULLET = dict(NORM, n_envs=2, value_batch_size=128, n_steps=1024, gamma=0.99, gae_lambda=0.95, cg_iters=25,
                cg_damping=0.1, value_epochs=20, value_learning_rate=1e-3)
MINITAUR = dict(NORM, n_envs=8, n_steps=2048, value_batch_size=64, gae_lambda=0.95, gamma=0.99, value_learning_rate=2.5e-4)

# env: (values that differ from TRPOConfig(), recommended n_timesteps, zoo keys dropped)
EXPECTED = {
    "CartPole-v1": (dict(n_envs=2, n_steps=512, value_batch_size=512, cg_damping=1e-3, gae_lambda=0.98,
                         value_epochs=20), 100_000, set()),
    "Pendulum-v1": (dict(n_envs=2, n_steps=1024, gamma=0.9, value_epochs=15), 100_000, {"use_sde", "sde_sample_freq"}),
    "LunarLander-v3": (dict(n_envs=2, n_steps=512, cg_damping=0.01, gae_lambda=0.98, value_epochs=15), 200_000, set()),
    "LunarLanderContinuous-v3": (dict(NORM, n_envs=2, n_steps=1024, value_epochs=20), 100_000, set()),
    "Acrobot-v1": (dict(NORM, n_envs=2, n_steps=1024), 100_000, set()),
    "MountainCar-v0": (dict(NORM, n_envs=2, n_steps=1024, value_epochs=20), 100_000, set()),
    "MountainCarContinuous-v0": (dict(NORM, n_envs=2), 50_000, {"use_sde", "sde_sample_freq"}),
    "HalfCheetahBulletEnv-v0": (PYBULLET, 2_000_000, set()),
    "AntBulletEnv-v0": (PYBULLET, 2_000_000, set()),
    "Walker2DBulletEnv-v0": (PYBULLET, 2_000_000, set()),
    "HopperBulletEnv-v0": (PYBULLET, 1_000_000, set()),
    "ReacherBulletEnv-v0": (dict(PYBULLET, log_std_init=-1.0, activation="relu", hidden_sizes=(256, 256),
                                 ortho_init=False), 300_000, set()),
    "Ant-v4": (PYBULLET, 1_000_000, set()),
    "HalfCheetah-v4": (dict(PYBULLET, max_kl=0.04), 1_000_000, set()),
    "Hopper-v4": (PYBULLET, 1_000_000, set()),
    "Walker2d-v4": (PYBULLET, 1_000_000, set()),
    "Humanoid-v4": (PYBULLET, 2_000_000, set()),
    "Swimmer-v4": (dict(PYBULLET, gamma=0.9999), 1_000_000, set()),
    "BipedalWalker-v3": (PYBULLET, 1_000_000, set()),
    "BipedalWalkerHardcore-v3": (PYBULLET, 10_000_000, set()),
    "MinitaurBulletEnv-v0": (MINITAUR, 2_000_000, set()),
    "MinitaurBulletDuckEnv-v0": (MINITAUR, 2_000_000, set()),
    "HumanoidBulletEnv-v0": (MINITAUR, 10_000_000, set()),
    "InvertedDoublePendulumBulletEnv-v0": (MINITAUR, 2_000_000, set()),
    "InvertedPendulumSwingupBulletEnv-v0": (MINITAUR, 2_000_000, set()),
}


def test_trpo_config_defaults_are_sb3_contribs():
    cfg = TRPOConfig()
    assert {k: getattr(cfg, k) for k in SB3_TRPO_DEFAULTS} == SB3_TRPO_DEFAULTS


def test_the_table_lists_exactly_the_zoos_envs():
    assert set(ZOO_TRPO) == set(EXPECTED)
    assert len(ZOO_COMMIT) == 40


@pytest.mark.parametrize("env_id", sorted(EXPECTED))
def test_each_zoo_env_gets_exactly_the_zoos_values(env_id):
    values, n_timesteps, dropped = EXPECTED[env_id]
    cfg = default_config(env_id)  # no action space: the zoo's numbers as they are
    assert cfg == dataclasses.replace(TRPOConfig(), **values)
    p = preset(env_id)
    assert p.zoo_env == env_id and p.n_timesteps == n_timesteps and set(p.dropped) == dropped
    assert ZOO_COMMIT[:7] in p.source


@pytest.mark.parametrize("alias, entry", [("Hopper-v5", "Hopper-v4"), ("HalfCheetah-v5", "HalfCheetah-v4"),
                                          ("Swimmer-v5", "Swimmer-v4"), ("Humanoid-v5", "Humanoid-v4"),
                                          ("LunarLander-v2", "LunarLander-v3"), ("Walker2d-v5", "Walker2d-v4")])
def test_other_versions_of_a_zoo_env_use_its_entry(alias, entry):
    assert preset(alias).zoo_env == entry
    assert default_config(alias, presets="zoo") == default_config(entry)  # keras-trpo's own presets aside
    assert "another version" in preset(alias).source


def test_unlisted_envs_fall_back_to_their_family():
    assert env_family("InvertedPendulum-v5") == env_family("Reacher-v5") == "mujoco"
    assert env_family("FrozenLake-v1") == env_family("CartPole-v1") == "generic" and env_family(None) == "generic"
    assert env_family("NoSuchEnv-v0") == "generic"
    for mujoco_env in ("InvertedPendulum-v5", "Reacher-v5", "Pusher-v5"):
        assert default_config(mujoco_env) == dataclasses.replace(TRPOConfig(), **PYBULLET)  # zoo MuJoCo defaults
        assert preset(mujoco_env).zoo_env is None and "MuJoCo family" in preset(mujoco_env).source
    for other in ("FrozenLake-v1", "Taxi-v3", None):
        assert default_config(other) == TRPOConfig()
        assert "sb3-contrib" in preset(other).source and preset(other).n_timesteps == 1_000_000


@pytest.mark.parametrize("env_id, dims, target_kl, damping", [("Hopper-v5", 3, 0.01, 0.1), ("HalfCheetah-v5", 6, 0.04, 0.1),
                                                              ("Pendulum-v1", 1, 0.01, 0.1),
                                                              ("MountainCarContinuous-v0", 1, 0.01, 0.1),
                                                              ("LunarLanderContinuous-v3", 2, 0.01, 0.1),
                                                              ("FrozenLake-v1", 4, 0.01, 0.1)])
def test_gaussian_policies_scale_kl_and_damping_by_action_dimension(env_id, dims, target_kl, damping):
    # sb3-contrib averages a diagonal Gaussian's KL over action dimensions: same trust region = target * d.
    cfg = default_config(env_id, gym.spaces.Box(-1, 1, (dims,)), presets="zoo")
    assert cfg.max_kl == pytest.approx(target_kl * dims) and cfg.cg_damping == pytest.approx(damping * dims)
    assert default_config(env_id, presets="zoo").max_kl == target_kl  # without an action space: the zoo's numbers


def test_discrete_actions_are_not_scaled():
    cfg = default_config("CartPole-v1", gym.spaces.Discrete(2))
    assert (cfg.max_kl, cfg.cg_damping) == (0.01, 1e-3)
    cfg = default_config("LunarLander-v3", gym.spaces.Discrete(4))
    assert (cfg.max_kl, cfg.cg_damping) == (0.01, 0.01)


def test_explain_config_names_the_source_of_every_field():
    rows = {name: (value, where) for name, value, where in explain_config("Hopper-v5", gym.spaces.Box(-1, 1, (3,)))}
    assert set(rows) == {f.name for f in dataclasses.fields(TRPOConfig)}
    assert rows["cg_iters"] == (25, "zoo Hopper-v4 cg_max_steps: 25")
    assert rows["max_kl"][0] == pytest.approx(0.03) and "x 3 action dimensions" in rows["max_kl"][1]
    assert rows["line_search_shrink"] == (0.8, "sb3-contrib TRPO default")
    assert "keras_trpo" in rows["jit_compile"][1]


def test_unknown_zoo_keys_are_an_error_not_silently_ignored():
    with pytest.raises(ValueError, match="ent_coef"):
        translate({"ent_coef": 0.01})
    settings, _, dropped = translate({"sub_sampling_factor": 4, "policy_kwargs": {"net_arch": {"pi": [64], "vf": [32]}}})
    assert settings == {} and set(dropped) == {"sub_sampling_factor", "net_arch"}


def test_round_trip_and_unknown_fields():
    cfg = TRPOConfig(hidden_sizes=(32, 16), max_kl=0.02)
    assert TRPOConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown hyperparameter"):
        cfg.replace(learning_rate=1e-3)
    with pytest.raises(ConfigError, match="hidden_sizes"):
        cfg.replace(hidden_sizes=(0,))
    assert np.isclose(cfg.replace(gamma=0.0).gamma, 0.0)


def test_the_zoos_ortho_init_false_is_used_and_named():
    rows = {name: (value, where) for name, value, where in explain_config("ReacherBulletEnv-v0")}
    assert rows["ortho_init"] == (False, "zoo ReacherBulletEnv-v0 policy_kwargs.ortho_init: False")
    assert "ortho_init" not in preset("ReacherBulletEnv-v0").dropped
    assert {n: (v, w) for n, v, w in explain_config("CartPole-v1")}["ortho_init"] == (True, "sb3-contrib TRPO default")
    with pytest.raises(ConfigError, match="ortho_init"):
        TRPOConfig().replace(ortho_init="no")


def test_keras_trpo_presets_go_on_top_of_the_zoo_entry_and_name_their_evidence():
    from keras_trpo.presets import own_preset

    space = gym.spaces.Box(-1, 1, (6,))
    own = KERAS_TRPO_PRESETS["HalfCheetah-v5"]
    zoo, ours = default_config("HalfCheetah-v5", space, presets="zoo"), default_config("HalfCheetah-v5", space)
    assert ours == dataclasses.replace(zoo, **{**own.settings, "max_kl": own.settings["max_kl"] * 6})
    assert ours.max_kl == pytest.approx(0.03) and zoo.max_kl == pytest.approx(0.24)  # per dimension, as the zoo's
    assert default_config("HalfCheetah-v5").max_kl == own.settings["max_kl"]  # no action space: unscaled, like the zoo's
    rows = {name: where for name, _, where in explain_config("HalfCheetah-v5", space)}
    assert own.study in rows["fisher_subsample"] and own.adoption in rows["fisher_subsample"]
    assert rows["n_envs"].startswith("zoo HalfCheetah-v4")  # what the preset does not set stays the zoo's
    assert own_preset("HalfCheetah-v4") is None and own_preset("HalfCheetah-v5", "zoo") is None
    with pytest.raises(ValueError, match="presets must be one of"):
        default_config("HalfCheetah-v5", space, presets="mine")


def test_a_linear_trust_region_falls_with_the_fits_progress():
    import keras_trpo

    agent = keras_trpo.TRPO("CartPole-v1", seed=0, n_envs=1, n_steps=32, max_kl=0.04, max_kl_schedule="linear")
    agent.learner.schedule_max_kl(0.25)
    assert float(agent.learner.max_kl.numpy()) == pytest.approx(0.03)
    agent.fit(64, verbose=0)  # two iterations: the second one's radius is max_kl * (1 - 32 / 64)
    assert float(agent.learner.max_kl.numpy()) == pytest.approx(0.02)
    constant = keras_trpo.TRPO("CartPole-v1", seed=0, n_envs=1, n_steps=32, max_kl=0.04)
    constant.learner.schedule_max_kl(0.5)
    assert float(constant.learner.max_kl.numpy()) == pytest.approx(0.04)  # "constant" never moves it
    with pytest.raises(ConfigError, match="max_kl_schedule"):
        TRPOConfig(max_kl_schedule="cosine").validate()


@pytest.mark.parametrize("env_id", sorted(KERAS_TRPO_PRESETS))
def test_a_keras_trpo_preset_trains_exactly_what_its_ten_seeds_trained(env_id):
    """The preset is its evidence, stored with the code: default_config gives the config stored with the
    adoption's seed runs (fields added since those runs are absent from the records and must be at their
    defaults)."""
    import json

    own = KERAS_TRPO_PRESETS[env_id]
    root = pathlib.Path(__file__).resolve().parents[1]
    for path in (own.study, own.seeds, own.adoption):
        assert (root / path).exists(), path
    assert "Rule (per-env preset): holds: adopt." in (root / own.adoption).read_text()
    records = sorted((root / own.seeds / "keras_trpo" / env_id).glob("seed_*.json"))
    assert len(records) == 10
    defaults = dataclasses.asdict(TRPOConfig())
    for record in map(json.loads, (p.read_text() for p in records)):
        d = record["action_dim"]
        space = gym.spaces.Box(-1, 1, (d,)) if d else gym.spaces.Discrete(2)
        ours = dataclasses.asdict(default_config(env_id, space))
        stored = {k: record["config"].get(k, defaults[k]) for k in ours}
        assert {k: list(v) if isinstance(v, tuple) else v for k, v in ours.items()} == stored
