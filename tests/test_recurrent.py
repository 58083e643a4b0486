"""Recurrent (LSTM / GRU) policies: the cell against Keras's, state carried and reset, the update's
sequences, the Fisher-vector product against the explicit Fisher, save / load / resume, errors,
the velocity-masked tasks, and a memory task that only a recurrent policy can solve."""
import json

import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_trpo
from keras_trpo import sequences
from keras_trpo.config import ConfigError, TRPOConfig, default_config
from keras_trpo.distributions import family_for
from keras_trpo.layers import RecurrentCore
from keras_trpo.optim.learner import Learner
from keras_trpo.plan.keras_reader import read_plan
from keras_trpo.plan.numpy_policy import NumpyPolicy
from keras_trpo.policies.networks import build_recurrent_policy_model, build_recurrent_value_model
from keras_trpo.rollouts import buffer
from keras_trpo.rollouts.worker import RolloutWorker
from tests.recurrent_envs import EpisodeCounterEnv, RepeatBitEnv
from tests.test_fisher import explicit_fisher_of

FAST = dict(value_epochs=2, recurrent_units=8, hidden_sizes=(16,))


def perturbed(layer_or_model, seed=0, scale=0.3):
    """Move every weight off its initial value (zero biases, orthogonal kernels are special cases)."""
    rng = np.random.default_rng(seed)
    for v in layer_or_model.trainable_variables:
        v.assign(v + rng.normal(scale=scale, size=v.shape).astype(np.float32))
    return layer_or_model


def core_run(core, x, starts, state):
    out, states, final = core([tf.constant(x, tf.float32), tf.constant(starts, tf.float32), tf.constant(state, tf.float32)])
    return out.numpy(), states.numpy(), final.numpy()


# ----------------------------------------------------------------------------- the cell
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_recurrent_core_is_keras_s_own_cell_and_the_numpy_step_is_the_same(cell):
    rng = np.random.default_rng(0)
    core = RecurrentCore(cell, 5, seed=1)
    x = rng.normal(size=(3, 7, 4)).astype(np.float32)
    core([tf.constant(x), tf.zeros((3, 7)), tf.zeros((3, core.state_size))])
    perturbed(core)
    keras_layer = (keras.layers.LSTM if cell == "lstm" else keras.layers.GRU)(5, return_sequences=True)
    keras_layer(x)
    keras_layer.set_weights([core.kernel.numpy(), core.recurrent_kernel.numpy(), core.bias.numpy()])
    out, states, final = core_run(core, x, np.zeros((3, 7)), np.zeros((3, core.state_size)))
    np.testing.assert_allclose(out, keras_layer(x).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(final, states[:, -1])
    # NumPy, step by step, from the same weights
    step = sequences.STEPS[cell]
    s = np.zeros((3, core.state_size), np.float32)
    for t in range(7):
        s = step(x[:, t], s, core.kernel.numpy(), core.recurrent_kernel.numpy(), core.bias.numpy())
        np.testing.assert_allclose(s, states[:, t], rtol=1e-5, atol=1e-6)
    # each env's row is computed as it would be alone: bit for bit, whatever the batch
    alone = step(x[1:2, 0], states[1:2, 2], core.kernel.numpy(), core.recurrent_kernel.numpy(), core.bias.numpy())
    together = step(x[:, 0], states[:, 2], core.kernel.numpy(), core.recurrent_kernel.numpy(), core.bias.numpy())
    np.testing.assert_array_equal(alone[0], together[1])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_state_is_carried_across_calls_and_zeroed_at_an_episode_start(cell):
    rng = np.random.default_rng(1)
    core = RecurrentCore(cell, 4, seed=2)
    S = core.state_size
    x = rng.normal(size=(2, 6, 3)).astype(np.float32)
    h0 = rng.normal(size=(2, S)).astype(np.float32)
    core([tf.constant(x), tf.zeros((2, 6)), tf.constant(h0)])
    perturbed(core, 3)
    no_starts = np.zeros((2, 6))
    whole = core_run(core, x, no_starts, h0)
    # carried: the first 3 steps, then the last 3 from the state they ended in, is the whole sequence
    first = core_run(core, x[:, :3], no_starts[:, :3], h0)
    second = core_run(core, x[:, 3:], no_starts[:, 3:], first[2])
    np.testing.assert_allclose(np.concatenate([first[1], second[1]], 1), whole[1], rtol=1e-6, atol=1e-6)
    # an episode starts at step 3 of env 0: from there env 0 runs as from the zero state, env 1 is unaffected
    starts = no_starts.copy()
    starts[0, 3] = 1
    reset = core_run(core, x, starts, h0)
    fresh = core_run(core, x[:, 3:], np.zeros((2, 3)), np.zeros((2, S), np.float32))
    np.testing.assert_allclose(reset[1][0, 3:], fresh[1][0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(reset[1][0, :3], whole[1][0, :3], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(reset[1][1], whole[1][1])
    assert np.abs(reset[1][0, 3:] - whole[1][0, 3:]).max() > 1e-3  # the reset did change something
    # a start at step 0 ignores the state passed in
    starts0 = no_starts.copy()
    starts0[:, 0] = 1
    np.testing.assert_allclose(core_run(core, x, starts0, h0)[1], core_run(core, x, no_starts, 0 * h0)[1], atol=1e-7)


def test_sequence_helpers_closed_forms():
    end = np.array([[0, 0], [1, 0], [0, 0], [0, 1], [1, 0], [0, 0]], bool)  # [T=6, E=2]
    starts = sequences.episode_starts(np.array([True, False]), end)
    np.testing.assert_array_equal(starts, [[1, 0], [0, 0], [1, 0], [0, 0], [0, 1], [1, 0]])
    x = np.arange(6 * 2 * 3).reshape(6, 2, 3)  # x[t, e] = [6t + 3e, ...]
    chunks = buffer.to_chunks(x, 2)
    assert chunks.shape == (6, 2, 3)  # env 0's chunks (steps 0-1, 2-3, 4-5), then env 1's
    np.testing.assert_array_equal(chunks[1], x[2:4, 0])
    np.testing.assert_array_equal(chunks[3], x[0:2, 1])
    np.testing.assert_array_equal(buffer.from_chunks(chunks, 6, 2), x)
    np.testing.assert_array_equal(buffer.chunk_initial_states(x, 3), [x[0, 0], x[3, 0], x[0, 1], x[3, 1]])
    assert buffer.check_length(32, 128) == 32 and buffer.check_length(1024, 128) == 128
    assert buffer.check_length(40, 0) == 40
    with pytest.raises(ValueError, match="must divide"):
        buffer.check_length(40, 16)
    s = np.ones((3, 2), np.float32)
    np.testing.assert_array_equal(sequences.reset(s, np.array([0, 1, 0], bool)), [[1, 1], [0, 0], [1, 1]])


# ----------------------------------------------------------------------------- the rollout
def tiny_recurrent_policy(cell="lstm", action_space=gym.spaces.Discrete(2), obs_dim=2, units=3, hidden=(4,),
                          normalize=False, seed=4):
    family = family_for(action_space)
    model = build_recurrent_policy_model(gym.spaces.Box(-np.inf, np.inf, (obs_dim,)), family, cell=cell, units=units,
                                         hidden=hidden, seed=seed, log_std_init=-0.3, normalize_obs=normalize)
    return perturbed(model, seed), family


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_worker_carries_the_state_resets_it_at_episode_starts_and_the_update_reproduces_the_acting_policy(cell):
    model, family = tiny_recurrent_policy(cell, units=4)
    plan = read_plan(model, family)
    policy = NumpyPolicy(plan)
    assert policy.recurrent and policy.state_size == sequences.state_size(cell, 4)
    worker = RolloutWorker(EpisodeCounterEnv, first_env=0, n_envs=2, observation_space=EpisodeCounterEnv.observation_space,
                           action_space=EpisodeCounterEnv.action_space, seed=0, reset_seed=0)
    first = worker.collect(plan, 12)
    carried = worker.state.copy()
    second = worker.collect(plan, 12)
    # episodes of 5 steps: they start at global steps 0, 5, 10, 15, 20
    np.testing.assert_array_equal(first.starts[:, 0], [t % 5 == 0 for t in range(12)])
    np.testing.assert_array_equal(second.starts[:, 0], [t % 5 == 0 for t in range(12, 24)])
    for f in (first, second):
        assert f.states.shape == (12, 2, policy.state_size)
        assert not f.states[f.starts].any()  # zero state at every episode start
        assert np.abs(f.states[~f.starts]).min(axis=-1).max() > 0  # and not elsewhere
    np.testing.assert_array_equal(second.states[0], carried)  # global step 12 continues the episode of step 10
    # The update's view: the Keras model over sequences from the stored states gives, at every step, the
    # parameters the NumPy actor acted with: chunks of 4, 6 and the whole fragment alike.
    acting = np.stack([policy.step(second.obs[t], second.states[t], second.starts[t])[0]["logits"] for t in range(12)])
    for length in (4, 6, 12):
        out = model({"obs": buffer.to_chunks(second.obs, length),
                     "starts": buffer.to_chunks(second.starts, length).astype(np.float32),
                     "state": buffer.chunk_initial_states(second.states, length)})
        np.testing.assert_allclose(buffer.from_chunks(out["logits"].numpy(), 12, 2), acting, rtol=1e-5, atol=1e-6)
    worker.close()


def test_numpy_plan_of_a_normalised_gaussian_policy_matches_the_keras_model():
    model, family = tiny_recurrent_policy("gru", gym.spaces.Box(-1, 1, (2,)), obs_dim=3, normalize=True)
    model.get_layer("policy_obs_normalizer").set_statistics(np.array([1.0, -2.0, 0.5]), np.array([4.0, 0.25, 1.0]))
    policy = NumpyPolicy(read_plan(model, family))
    rng = np.random.default_rng(2)
    obs = rng.normal(size=(5, 3, 3)).astype(np.float32) * 2  # [T, B, obs]
    starts = np.zeros((5, 3), bool)
    starts[2, 1] = True
    state = rng.normal(size=(3, policy.state_size)).astype(np.float32)
    out = model({"obs": np.swapaxes(obs, 0, 1), "starts": np.swapaxes(starts, 0, 1).astype(np.float32), "state": state})
    s = state
    for t in range(5):
        params, s = policy.step(obs[t], s, starts[t])
        np.testing.assert_allclose(params["mean"], out["mean"].numpy()[:, t], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.broadcast_to(params["log_std"], (3, 2)), out["log_std"].numpy()[:, t])
    np.testing.assert_allclose(s, out["state"].numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="recurrent"):
        policy(obs[0])


# ----------------------------------------------------------------------------- the Fisher


@pytest.mark.parametrize("cell,name", [("lstm", "categorical"), ("gru", "diag_gaussian")])
def test_learner_fvp_equals_the_explicit_fisher_of_the_recurrent_policy(cell, name):
    space = gym.spaces.Discrete(3) if name == "categorical" else gym.spaces.Box(-1, 1, (2,))
    model, family = tiny_recurrent_policy(cell, space)
    value = build_recurrent_value_model(gym.spaces.Box(-np.inf, np.inf, (2,)), cell=cell, units=3, hidden=(4,))
    config = TRPOConfig(recurrent=cell, recurrent_units=3, hidden_sizes=(4,))
    learner = Learner(model, value, family, config, keras.optimizers.Adam())
    rng = np.random.default_rng(0)
    N, L = 3, 5
    starts = np.zeros((N, L), np.float32)
    starts[0, 0] = starts[1, 2] = 1.0  # an episode boundary inside a sequence
    S = model.get_layer("policy_recurrent").state_size
    inputs = (tf.constant(rng.normal(size=(N, L, 2)), tf.float32), tf.constant(starts),
              tf.constant(rng.normal(scale=0.5, size=(N, S)), tf.float32))
    old = {k: tf.stop_gradient(v) for k, v in learner._params(inputs).items()}
    assert old[family.param_names[0]].shape[0] == N * L
    F = explicit_fisher_of(lambda: learner._params(inputs), learner.policy_vars, name, family)
    n = F.shape[0]
    assert n == sum(int(np.prod(v.shape)) for v in learner.policy_vars)
    np.testing.assert_allclose(F, F.T, atol=1e-10)
    assert np.linalg.eigvalsh(F).min() > -1e-8 and np.linalg.matrix_rank(F, tol=1e-6) > 5
    # the recurrent kernel has curvature: the Fisher sees the recurrence, not just the last input
    rk = [i for i, v in enumerate(learner.policy_vars) if "recurrent_kernel" in v.path]
    offset = sum(int(np.prod(v.shape)) for v in learner.policy_vars[:rk[0]])
    assert np.abs(np.diag(F)[offset:offset + 9]).max() > 1e-4
    fvp = learner.fisher_product(inputs, old)
    for seed in range(3):
        v = np.random.default_rng(seed).normal(size=n)
        expected = F @ v + config.cg_damping * v
        np.testing.assert_allclose(fvp(tf.constant(v, tf.float32)).numpy(), expected, rtol=2e-3,
                                   atol=2e-4 * np.abs(expected).max())


# ----------------------------------------------------------------------------- the agent
def test_recurrent_agent_trains_saves_loads_and_resumes(tmp_path):
    agent = keras_trpo.TRPO("PendulumNoVel-v1", seed=3, recurrent="gru", n_envs=2, n_steps=128,
                            recurrent_sequence_length=32, normalize_obs=True, fisher_subsample=2, **FAST)
    assert agent.is_recurrent and agent.state_size == 8
    history = agent.fit(2 * 256, verbose=0).history
    assert len(history["kl"]) == 2 and all(np.isfinite(history["value_loss"]))
    assert history["step_accepted"] == [1.0, 1.0] and max(history["kl"]) <= agent.config.max_kl * 1.001
    path = tmp_path / "agent.keras"
    agent.save(str(path))
    loaded = keras_trpo.load(str(path))
    assert loaded.is_recurrent and loaded.config == agent.config and loaded.num_timesteps == 512
    obs = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    state = np.random.default_rng(1).normal(size=(4, 8)).astype(np.float32)
    for a, b in zip(loaded.predict(obs, state, episode_start=[1, 0, 0, 1]),
                    agent.predict(obs, state, episode_start=[1, 0, 0, 1])):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(loaded.get_weights(), agent.get_weights()):
        np.testing.assert_array_equal(a, b)
    # predict carries the state: two steps from the returned state, zeros at a start
    action, s1 = agent.predict(obs[0])
    assert action.shape == (1,) and s1.shape == (8,)
    _, s2 = agent.predict(obs[0], s1)
    _, s_start = agent.predict(obs[0], s1, episode_start=True)
    np.testing.assert_array_equal(s_start, s1)  # from the zero state again, as the first call
    assert np.abs(s2 - s1).max() > 0
    d = agent.distribution(obs, state)
    np.testing.assert_allclose(d.mean().numpy(), agent.actor._params.step(obs, state, np.zeros(4, bool))[0]["mean"],
                               rtol=1e-5, atol=1e-6)
    loaded.fit(256, verbose=0)  # resumes: new envs, same weights and optimizer state
    assert loaded.num_timesteps == 768 and loaded.iterations == 3
    mean, _ = loaded.evaluate(episodes=1)
    assert np.isfinite(mean)
    # get_config / from_config rebuilds the same recurrent architecture from the seed
    clone = keras_trpo.TRPO.from_config(json.loads(json.dumps(agent.get_config())))
    assert clone.is_recurrent and [w.shape for w in clone.get_weights()] == [w.shape for w in agent.get_weights()]


def test_bad_recurrent_settings_are_named():
    with pytest.raises(ConfigError, match="recurrent must be None.*'lstm' or 'gru', got 'rnn'"):
        keras_trpo.TRPO("CartPole-v1", recurrent="rnn")
    with pytest.raises(ConfigError, match="recurrent_units must be a positive integer"):
        TRPOConfig(recurrent="lstm", recurrent_units=0).validate()
    with pytest.raises(ConfigError, match=r"recurrent_sequence_length \(48\) must divide n_steps \(128\)"):
        TRPOConfig(recurrent="lstm", n_steps=128, recurrent_sequence_length=48).validate()
    with pytest.raises(ConfigError, match="gauss_newton.*recurrent"):
        TRPOConfig(recurrent="gru", fisher_product="gauss_newton").validate()
    cnn = keras.Sequential([keras.layers.Conv2D(2, 3), keras.layers.Flatten()])
    with pytest.raises(ValueError, match="CNN torso with a recurrent core is not supported"):
        keras_trpo.TRPO("CartPole-v1", recurrent="lstm", torso=cnn)
    agent = keras_trpo.TRPO("CartPole-v1", recurrent="lstm", **FAST)
    with pytest.raises(ConfigError, match="recurrent.*shape the networks"):
        agent.compile(recurrent="gru")
    with pytest.raises(ValueError, match=r"state must have shape \(16,\)"):
        agent.predict(np.zeros(4, np.float32), np.zeros(3))
    mlp = keras_trpo.TRPO("CartPole-v1", **FAST)
    assert not mlp.is_recurrent and mlp.state_size == 0
    with pytest.raises(ValueError, match="for recurrent agents"):
        mlp.predict(np.zeros(4, np.float32), np.zeros(16))
    # round trip through the config's dict (files, the CLI's --set) keeps the recurrent fields
    cfg = TRPOConfig(recurrent="gru", recurrent_units=32, recurrent_sequence_length=0)
    assert TRPOConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


# ----------------------------------------------------------------------------- the masked tasks
@pytest.mark.parametrize("masked,inner,hidden", [("CartPoleNoVel-v1", "CartPole-v1", [1, 3]),
                                                 ("PendulumNoVel-v1", "Pendulum-v1", [2])])
def test_no_vel_envs_zero_the_velocities_as_the_zoo_does(masked, inner, hidden):
    a, b = gym.make(masked), gym.make(inner)
    assert a.observation_space == b.observation_space and a.spec.id == masked
    obs_a, _ = a.reset(seed=3)
    obs_b, _ = b.reset(seed=3)
    action = a.action_space.sample() * 0
    for _ in range(5):
        kept = [i for i in range(len(obs_b)) if i not in hidden]
        np.testing.assert_array_equal(obs_a[kept], obs_b[kept])
        np.testing.assert_array_equal(obs_a[hidden], 0.0)
        assert np.abs(obs_b[hidden]).max() > 0 or _ == 0
        obs_a, *_ = a.step(action)
        obs_b, *_ = b.step(action)


def test_no_vel_presets_are_recurrent_and_follow_the_zoo_s_recurrent_ppo_rollouts():
    # the zoo-based recurrent preset (keras-trpo's own CartPoleNoVel preset changes gamma on top: test_config.py)
    cp = default_config("CartPoleNoVel-v1", gym.spaces.Discrete(2), presets="zoo")
    assert (cp.recurrent, cp.n_envs, cp.n_steps, cp.gamma, cp.gae_lambda) == ("lstm", 8, 32, 0.98, 0.8)
    pd = default_config("PendulumNoVel-v1", gym.spaces.Box(-2, 2, (1,)))
    assert (pd.recurrent, pd.n_envs, pd.n_steps, pd.gamma, pd.gae_lambda) == ("lstm", 4, 1024, 0.9, 0.95)
    # keras_trpo's own two settings on top (presets._RECURRENT_TRPO: measured on held-out seeds)
    assert (cp.normalize_obs, cp.max_kl, pd.normalize_obs, pd.max_kl) == (True, 0.05, True, 0.05)
    assert default_config("CartPole-v1").recurrent is None  # the unmasked tasks stay feed-forward
    from keras_trpo.presets import preset
    assert "ppo_lstm.yml" in preset("CartPoleNoVel-v1").source
    assert preset("PendulumNoVel-v1").n_timesteps == 100_000


def test_only_a_recurrent_policy_learns_to_repeat_a_bit_seen_three_steps_earlier():
    """RepeatBitEnv: the reward depends on the bit shown at step 0 only; 1 is the maximum, 0.5 chance."""
    common = dict(n_envs=8, n_steps=32, gamma=0.99, gae_lambda=0.95, max_kl=0.05, value_epochs=5,
                  value_batch_size=256, hidden_sizes=(16,))
    scores = {}
    for recurrent in ("gru", None):
        kw = dict(recurrent=recurrent, recurrent_units=8) if recurrent else {}
        agent = keras_trpo.TRPO(RepeatBitEnv, seed=0, **common, **kw)
        agent.fit(40 * 256, verbose=0)
        scores[recurrent], _ = agent.evaluate(episodes=40, env=RepeatBitEnv())
    assert scores["gru"] >= 0.95, scores
    assert scores[None] <= 0.7, scores  # a feed-forward policy cannot do better than chance


def test_discrete_observations_are_one_hot_per_step_in_a_recurrent_policy():
    agent = keras_trpo.TRPO("FrozenLake-v1", seed=0, recurrent="lstm", n_envs=2, n_steps=32, **FAST)
    agent.fit(64, verbose=0)
    out = agent.policy_model({"obs": np.array([[0, 5, 15]], np.float32), "starts": np.array([[1, 0, 0]], np.float32),
                              "state": np.zeros((1, agent.state_size), np.float32)})
    assert out["logits"].shape == (1, 3, 4)
    action, state = agent.predict(np.array([0, 5]), episode_start=[True, True])
    assert action.shape == (2,) and state.shape == (2, agent.state_size)
    state = np.zeros((1, agent.state_size), np.float32)
    for t, (o, start) in enumerate([(0.0, True), (5.0, False), (15.0, False)]):  # the same sequence, step by step
        params, state = agent.actor._params.step(np.array([o], np.float32), state, np.array([start]))
        np.testing.assert_allclose(params["logits"][0], out["logits"].numpy()[0, t], rtol=1e-5, atol=1e-6)
