"""The agent's API: spaces, bad input, save/load, callbacks, reproducibility, CNN torsos (the command line: test_cli)."""
import csv
import json
import os
import zipfile

import gymnasium as gym
import keras
import numpy as np
import pytest

import keras_trpo
from keras_trpo import AgentFileError, ConfigError, InvalidObservationError, UnsupportedSpaceError
from tests.envs import ToyEnv

FAST = dict(n_envs=1, n_steps=64, value_epochs=2, jit_compile=False)
LOG_KEYS = {"mean_return", "mean_length", "kl", "surrogate_improvement", "expected_improvement", "entropy", "value_loss",
            "explained_variance", "line_search_steps", "step_accepted", "cg_iterations", "steps_per_s", "timesteps",
            "rollout_s", "update_s"}


def toy(**kw):
    return lambda: ToyEnv(**kw)


# ----------------------------------------------------------------------------- spaces
@pytest.mark.parametrize("space", [gym.spaces.Dict({"a": gym.spaces.Tuple((gym.spaces.Discrete(2),))}),
                                   gym.spaces.Tuple((gym.spaces.Discrete(2),)), gym.spaces.Text(4)])
def test_unsupported_observation_spaces_are_named(space):
    with pytest.raises(UnsupportedSpaceError, match=type(space).__name__):
        keras_trpo.TRPO(toy(observation_space=space), **FAST)


def test_unsupported_action_space_is_named():
    with pytest.raises(UnsupportedSpaceError, match="Text"):
        keras_trpo.TRPO(toy(action_space=gym.spaces.Text(3)), **FAST)


@pytest.mark.parametrize("action_space", [gym.spaces.MultiDiscrete([3, 2]), gym.spaces.MultiBinary(4),
                                          gym.spaces.Box(-1, 1, (2,)), gym.spaces.Discrete(3, start=5)])
def test_action_spaces_train_and_predict_in_the_space(action_space):
    agent = keras_trpo.TRPO(toy(action_space=action_space), seed=1, **FAST)
    history = agent.fit(128, verbose=0)
    assert len(history.history["kl"]) == 2
    action = agent.predict(np.zeros(3, np.float32))
    assert action_space.contains(np.asarray(action, dtype=action_space.dtype))
    batch = agent.predict(np.zeros((5, 3), np.float32), deterministic=False)
    assert len(batch) == 5 and all(action_space.contains(np.asarray(a, dtype=action_space.dtype)) for a in batch)


def test_discrete_observations_are_one_hot_and_learn_on_frozenlake():
    agent = keras_trpo.TRPO("FrozenLake-v1", seed=0, **FAST)
    assert agent.policy_model.get_layer("policy_one_hot").n == 16
    agent.fit(128, verbose=0)
    assert agent.predict(5) in range(4)
    assert agent.evaluate(episodes=2)[0] >= 0.0


def test_env_instance_vector_env_and_factory_are_accepted():
    agent = keras_trpo.TRPO(gym.make("CartPole-v1"), seed=0, n_steps=32, jit_compile=False)
    assert agent.config.n_envs == 1
    agent.fit(32, verbose=0)
    venv = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 3, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    agent = keras_trpo.TRPO(venv, seed=0, n_steps=16, jit_compile=False)
    assert agent.config.n_envs == 3
    assert agent.fit(48, verbose=0).history["timesteps"] == [48.0]
    bad = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")])
    with pytest.raises(ValueError, match="SAME_STEP"):
        keras_trpo.TRPO(bad, n_steps=16, jit_compile=False).fit(16, verbose=0)


def test_async_vector_env_gives_the_same_run_as_sync():
    runs = []
    for vectorization in ("sync", "async"):
        agent = keras_trpo.TRPO("CartPole-v1", seed=3, n_envs=2, n_steps=32, jit_compile=False, vectorization=vectorization)
        runs.append(agent.fit(128, verbose=0).history["kl"])
        agent.close()
    assert runs[0] == runs[1]


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("obs, message", [(np.zeros(2), r"shape \(2,\); expected \(3,\)"),
                                          (np.array(["a", "b", "c"]), "dtype"),
                                          (np.array([0.0, np.nan, 0.0]), "NaN"),
                                          (np.zeros((4, 2)), r"expected \(3,\)")])
def test_predict_rejects_bad_observations(obs, message):
    agent = keras_trpo.TRPO(toy(), **FAST)
    with pytest.raises(InvalidObservationError, match=message):
        agent.predict(obs)


def test_nan_observation_from_the_env_stops_fit_with_a_clear_error():
    agent = keras_trpo.TRPO(toy(nan_at=10), **FAST)
    with pytest.raises(InvalidObservationError, match="NaN"):
        agent.fit(64, verbose=0)


@pytest.mark.parametrize("bad", [{"max_kl": 0}, {"max_kl": -0.01}, {"gamma": 1.5}, {"n_steps": 0}, {"cg_iters": 2.5},
                                 {"line_search_shrink": 1.0}, {"vectorization": "threads"}, {"no_such_thing": 1},
                                 {"line_search_kl": "reverse"}, {"reward_scaling": "episode"},
                                 {"value_adam_epsilon": 0.0}])
def test_bad_hyperparameters_are_named(bad):
    name = next(iter(bad))
    with pytest.raises(ConfigError, match=name):
        keras_trpo.TRPO(toy(), **bad)
    agent = keras_trpo.TRPO(toy(), **FAST)
    with pytest.raises(ConfigError, match=name):
        agent.compile(**bad)


def test_value_adam_epsilon_reaches_the_default_optimizer():
    agent = keras_trpo.TRPO(toy(), **FAST)
    assert agent.optimizer.epsilon == pytest.approx(1e-7)  # Keras's own default
    agent.compile(value_adam_epsilon=1e-5)  # SB3's ActorCriticPolicy sets this for Adam, so sb3-contrib's TRPO has it
    assert agent.optimizer.epsilon == pytest.approx(1e-5)
    assert agent.learner.value_optimizer is agent.optimizer


def test_architecture_cannot_change_in_compile_and_timesteps_must_be_positive():
    agent = keras_trpo.TRPO(toy(), **FAST)
    with pytest.raises(ConfigError, match="hidden_sizes"):
        agent.compile(hidden_sizes=(8,))
    with pytest.raises(ConfigError, match="total_timesteps"):
        agent.fit(0)


def test_loading_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(AgentFileError, match="no agent file"):
        keras_trpo.load(tmp_path / "missing.keras")
    junk = tmp_path / "junk.keras"
    junk.write_bytes(os.urandom(300))
    with pytest.raises(AgentFileError, match="junk.keras"):
        keras_trpo.load(junk)
    foreign = tmp_path / "plain.keras"
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(foreign)
    with pytest.raises(AgentFileError, match="not a keras_trpo agent file"):
        keras_trpo.load(foreign)
    agent = keras_trpo.TRPO(toy(), **FAST)
    good = tmp_path / "good.keras"
    agent.save(str(good))
    (tmp_path / "cut.keras").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(AgentFileError, match="cut.keras"):
        keras_trpo.load(tmp_path / "cut.keras")


# ----------------------------------------------------------------------------- save / load
def test_save_load_round_trip_and_continue(tmp_path):
    agent = keras_trpo.TRPO("Pendulum-v1", seed=2, normalize_obs=True, normalize_reward=True, **FAST)
    agent.fit(128, verbose=0)
    path = tmp_path / "agent.keras"
    agent.save(str(path))
    assert [p.name for p in tmp_path.iterdir()] == ["agent.keras"]  # written atomically, no temp files left
    loaded = keras_trpo.load(str(path))
    obs = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs), agent.predict(obs))
    np.testing.assert_array_equal(loaded.value_model(obs).numpy(), agent.value_model(obs).numpy())
    np.testing.assert_array_equal(loaded.obs_rms.mean, agent.obs_rms.mean)
    assert loaded.obs_rms.count == agent.obs_rms.count and loaded.obs_rms.count > 100
    for a, b in zip(loaded.optimizer.variables, agent.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(loaded.optimizer.iterations) > 0
    assert loaded.config == agent.config and loaded.num_timesteps == 128
    loaded.fit(64, verbose=0)
    assert loaded.num_timesteps == 192 and loaded.iterations == 3
    with zipfile.ZipFile(path) as z:  # no pickle anywhere: JSON, HDF5 and .npz only
        assert all(n.endswith((".json", ".h5", ".keras", ".npz")) for n in z.namelist()), z.namelist()
    policy = keras.saving.load_model(str(path))  # the file is also a Keras model file of the policy
    np.testing.assert_allclose(policy(obs)["mean"].numpy(), agent.policy_model(obs)["mean"].numpy())


def test_save_then_resume_matches_an_uninterrupted_run(tmp_path):
    straight = keras_trpo.TRPO("CartPole-v1", seed=5, **FAST)
    straight.fit(128, verbose=0)
    straight.save(str(tmp_path / "a.keras"))
    resumed = keras_trpo.load(str(tmp_path / "a.keras"))
    for a in (straight, resumed):
        a.fit(64, verbose=0)
    # The env restarts on load, so returns differ, but both continue from identical weights and optimizer state.
    assert resumed.num_timesteps == straight.num_timesteps == 192


def test_get_config_from_config_round_trip():
    agent = keras_trpo.TRPO("CartPole-v1", seed=7, max_kl=0.02, hidden_sizes=(16, 16))
    clone = keras_trpo.TRPO.from_config(json.loads(json.dumps(agent.get_config())))
    assert clone.config == agent.config and clone.seed == 7 and clone.env_id == "CartPole-v1"
    for a, b in zip(agent.get_weights(), clone.get_weights()):
        np.testing.assert_array_equal(a, b)  # same seed, same initial weights


# ----------------------------------------------------------------------------- callbacks
def test_history_csv_logger_and_custom_metrics_callback(tmp_path):
    agent = keras_trpo.TRPO("CartPole-v1", seed=0, **FAST)
    history = agent.fit(192, callbacks=[keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))], verbose=0)
    assert isinstance(history, keras.callbacks.History)
    assert LOG_KEYS <= set(history.history) and all(len(v) == 3 for v in history.history.values())
    assert history.history["timesteps"] == [64.0, 128.0, 192.0]
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert len(rows) == 3 and LOG_KEYS <= set(rows[0])


def test_early_stopping_and_stop_training():
    agent = keras_trpo.TRPO("CartPole-v1", seed=0, **FAST)

    class StopAfterTwo(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    assert len(agent.fit(10_000, callbacks=[StopAfterTwo()], verbose=0).history["kl"]) == 2
    # timesteps only grow, so in "min" mode the first iteration is the best and patience 1 stops at the second;
    # restore_best_weights goes through the agent's get_weights / set_weights.
    agent = keras_trpo.TRPO("CartPole-v1", seed=0, **FAST)
    stopper = keras.callbacks.EarlyStopping(monitor="timesteps", mode="min", patience=1, restore_best_weights=True)
    seen = []

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(agent.get_weights())

    assert len(agent.fit(10_000, callbacks=[Snapshot(), stopper], verbose=0).history["kl"]) == 2
    for a, b in zip(agent.get_weights(), seen[0]):
        np.testing.assert_array_equal(a, b)  # back to the weights after the first iteration
    assert agent.predict(np.zeros(4, np.float32)) in (0, 1)


def test_model_checkpoint_and_tensorboard(tmp_path):
    agent = keras_trpo.TRPO("CartPole-v1", seed=0, **FAST)
    ckpt = str(tmp_path / "ckpt-{epoch}.keras")
    agent.fit(128, verbose=0, callbacks=[keras.callbacks.ModelCheckpoint(ckpt),
                                         keras.callbacks.TensorBoard(str(tmp_path / "tb"))])
    assert keras_trpo.load(str(tmp_path / "ckpt-2.keras")).num_timesteps == 128
    events = [f for _, _, fs in os.walk(tmp_path / "tb") for f in fs if "tfevents" in f]
    assert events


def test_progress_bar_prints_timesteps_and_return(capsys):
    keras_trpo.TRPO("CartPole-v1", seed=0, **FAST).fit(128, verbose=1)
    out = capsys.readouterr().out
    assert "128/128" in out and "mean_return" in out


# ----------------------------------------------------------------------------- reproducibility
def _run(seed):
    agent = keras_trpo.TRPO("CartPole-v1", seed=seed, n_envs=2, n_steps=64, jit_compile=True)
    h = agent.fit(512, verbose=0).history
    return h, agent.get_weights()


def test_same_seed_same_learning_curve_and_weights():
    (h1, w1), (h2, w2) = _run(11), _run(11)
    for key in ("mean_return", "kl", "value_loss", "entropy"):
        assert h1[key] == h2[key]
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)
    h3, _ = _run(12)
    assert h3["kl"] != h1["kl"]


# ----------------------------------------------------------------------------- image observations
def test_cnn_torso_on_image_observations(tmp_path):
    image_space = gym.spaces.Box(0, 255, (12, 12, 1), np.uint8)
    torso = keras.Sequential([keras.layers.Rescaling(1 / 255.0), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(16, activation="tanh")])
    agent = keras_trpo.TRPO(toy(observation_space=image_space, action_space=gym.spaces.Discrete(3)), torso=torso, **FAST)
    assert not agent.actor.uses_numpy  # a CNN falls back to the Keras model for acting
    agent.fit(128, verbose=0)
    obs = image_space.sample()
    assert agent.predict(obs) in range(3)
    agent.save(str(tmp_path / "cnn.keras"))
    loaded = keras_trpo.load(str(tmp_path / "cnn.keras"))
    batch = np.stack([image_space.sample() for _ in range(8)])
    np.testing.assert_array_equal(loaded.predict(batch), agent.predict(batch))


def test_numpy_actor_matches_the_keras_model():
    agent = keras_trpo.TRPO("Pendulum-v1", seed=0, normalize_obs=True, **FAST)
    agent.fit(128, verbose=0)
    assert agent.actor.uses_numpy
    obs = np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32) * 3
    fast = agent.actor.params(obs)
    ref = {k: v.numpy() for k, v in agent.policy_model(obs).items()}
    np.testing.assert_allclose(fast["mean"], ref["mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.broadcast_to(fast["log_std"], ref["log_std"].shape), ref["log_std"])
