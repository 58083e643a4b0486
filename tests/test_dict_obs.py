"""Dict observations: spaces, per-key normalisation, the NumPy plan, predict, save/load, and a real learning run.

The references are computed independently of the code under test: closed-form running statistics
of a deterministic env, a plain Box model fed the concatenation normalised by hand in NumPy, and
a bound on what any policy that ignores the goal can earn.
"""
import collections
import json
import math
import pickle
import zipfile

import gymnasium as gym
import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import keras_trpo
from keras_trpo import InvalidObservationError, UnsupportedSpaceError
from keras_trpo.dict_obs import check_dict_space
from keras_trpo.distributions import family_for
from keras_trpo.plan import Dense, Normalizer, ObsInput, PolicyPlan
from keras_trpo.plan.numpy_policy import NumpyPolicy, features_function
from keras_trpo.policies.networks import build_policy_model, build_value_model
from keras_trpo.spaces import space_from_json, space_to_json
from keras_trpo_serving.sampling import CategoricalRule
from tests.envs import ToyEnv
from tests.goal_envs import DictCountingEnv, PointGoalEnv

FAST = dict(n_envs=1, n_steps=64, value_epochs=2, jit_compile=False)
BOX = lambda d: gym.spaces.Box(-np.inf, np.inf, (d,), np.float32)  # noqa: E731
# Keys given out of order, in an OrderedDict (which gymnasium keeps as given): the models must still use sorted order.
MIXED = gym.spaces.Dict(collections.OrderedDict([("zeta", BOX(3)), ("alpha", gym.spaces.Discrete(4)), ("mid", BOX(2))]))


def sample_dict(space, n, seed):
    """A batch ``{key: [n, ...]}`` with Box values of scale ~3 and valid Discrete indices."""
    rng = np.random.default_rng(seed)
    return {k: (rng.integers(0, s.n, n).astype(np.int64) if isinstance(s, gym.spaces.Discrete)
                else (rng.normal(size=(n,) + s.shape) * 3 + 1).astype(np.float32)) for k, s in space.spaces.items()}


def set_random_statistics(model, prefix, space, seed):
    """Random per-key mean / var in ``model``'s normalisers; returns ``{key: (mean, var)}``."""
    rng = np.random.default_rng(seed)
    stats = {}
    for key, sub in space.spaces.items():
        if isinstance(sub, gym.spaces.Box):
            mean, var = rng.normal(size=sub.shape).astype(np.float32), rng.uniform(0.1, 4, sub.shape).astype(np.float32)
            model.get_layer(f"{prefix}_obs_normalizer_{key}").set_statistics(mean, var)
            stats[key] = (mean, var)
    return stats


def features_by_hand(batch, space, stats, clip=10.0, eps=1e-8):
    """Per key: ``clip((x - mean) / sqrt(var + eps))`` for a Box, one-hot for a Discrete; sorted keys, concatenated."""
    parts = []
    for key in sorted(space.spaces):
        sub = space.spaces[key]
        if isinstance(sub, gym.spaces.Discrete):
            onehot = np.zeros((len(batch[key]), sub.n), np.float32)
            onehot[np.arange(len(batch[key])), batch[key]] = 1.0
            parts.append(onehot)
        else:
            mean, var = (np.asarray(v, np.float64) for v in stats[key])
            parts.append(np.clip((batch[key] - mean) / np.sqrt(var + eps), -clip, clip))
    return np.concatenate(parts, axis=1).astype(np.float32)


def copy_dense_weights(src, dst):
    """Copy every Dense layer's weights (torso layers included) from ``src`` to ``dst``, by position."""
    def dense(model):
        return [sub for layer in model.layers for sub in getattr(layer, "layers", [layer]) if hasattr(sub, "kernel")]
    a, b = dense(src), dense(dst)
    assert len(a) == len(b) > 0
    for s, d in zip(a, b):
        d.set_weights(s.get_weights())


# ----------------------------------------------------------------------------- spaces
@pytest.mark.parametrize("entry, message", [
    (gym.spaces.Box(0, 1, (4, 4), np.float32), r"'bad' is a Box of shape \(4, 4\); Dict entries must be vectors"),
    (gym.spaces.Box(0, 1, (), np.float32), r"'bad' is a Box of shape \(\); Dict entries must be vectors"),
    (gym.spaces.Dict({"x": BOX(2)}), "'bad' is a nested Dict"),
    (gym.spaces.Tuple((BOX(2), BOX(1))), "'bad' is a Tuple"),
    (gym.spaces.Discrete(3, start=1), r"'bad' is Discrete\(3, start=1\)"),
    (gym.spaces.MultiBinary(3), "'bad' is a MultiBinary"),
])
def test_unsupported_dict_entries_are_named_by_key(entry, message):
    space = gym.spaces.Dict({"good": BOX(2), "bad": entry})
    with pytest.raises(UnsupportedSpaceError, match=message):
        keras_trpo.TRPO(lambda: ToyEnv(observation_space=space), **FAST)


def test_empty_dicts_and_keys_keras_cannot_name_are_rejected():
    with pytest.raises(UnsupportedSpaceError, match="no keys"):
        check_dict_space(gym.spaces.Dict({}))
    with pytest.raises(UnsupportedSpaceError, match="'a/b'.*without '/'"):
        check_dict_space(gym.spaces.Dict({"a/b": BOX(1)}))


def test_layout_is_in_sorted_key_order_and_the_space_round_trips_through_json():
    layout = check_dict_space(MIXED)
    assert layout.keys == ("alpha", "mid", "zeta") and layout.width == 1 + 2 + 3
    assert [(e.start, e.stop) for e in layout.entries] == [(0, 1), (1, 3), (3, 6)]
    back = space_from_json(json.loads(json.dumps(space_to_json(MIXED))))
    assert isinstance(back, gym.spaces.Dict) and list(back.spaces) == ["alpha", "mid", "zeta"]
    assert back["alpha"] == MIXED["alpha"] and back["zeta"] == MIXED["zeta"]


# ----------------------------------------------------------------------------- the models
@pytest.mark.parametrize("normalize", [True, False])
def test_keras_model_on_a_dict_equals_a_plain_model_on_the_concatenation_normalised_by_hand(normalize):
    family = family_for(gym.spaces.Box(-1, 1, (2,), np.float32))
    policy = build_policy_model(MIXED, family, normalize_obs=normalize, seed=3, hidden=(16, 8))
    value = build_value_model(MIXED, normalize_obs=normalize, seed=3, hidden=(16, 8))
    assert set(policy.input) == set(MIXED.spaces) and all(policy.input[k].name == k for k in MIXED.spaces)
    p_stats = set_random_statistics(policy, "policy", MIXED, 1) if normalize else {}
    v_stats = set_random_statistics(value, "value", MIXED, 2) if normalize else {}
    if not normalize:
        p_stats = v_stats = {k: (np.zeros(s.shape), np.ones(s.shape) - 1e-8) for k, s in MIXED.spaces.items()
                             if isinstance(s, gym.spaces.Box)}  # the identity, so features_by_hand only concatenates
        assert not any("normalizer" in layer.name for layer in policy.layers)
    width = 4 + 2 + 3  # one-hot alpha, mid, zeta
    plain_policy = build_policy_model(BOX(width), family, seed=9, hidden=(16, 8))
    plain_value = build_value_model(BOX(width), seed=9, hidden=(16, 8))
    copy_dense_weights(policy, plain_policy)
    copy_dense_weights(value, plain_value)
    plain_policy.get_layer("policy_log_std").set_weights(policy.get_layer("policy_log_std").get_weights())
    batch = sample_dict(MIXED, 32, seed=5)
    got = policy(batch)
    want = plain_policy(features_by_hand(batch, MIXED, p_stats))
    np.testing.assert_allclose(got["mean"].numpy(), want["mean"].numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(got["log_std"].numpy(), want["log_std"].numpy())
    np.testing.assert_allclose(value(batch).numpy(), plain_value(features_by_hand(batch, MIXED, v_stats)).numpy(),
                               rtol=1e-6, atol=1e-7)


def test_numpy_plan_equals_the_keras_model():
    """The plan's Dict step equals the Keras preprocessing bit for bit; the outputs differ only by the
    order of the Dense sums (TF's matmul against einsum), as the Box MLP's copy does."""
    agent = keras_trpo.TRPO(lambda: PointGoalEnv(discrete_goal=True), seed=0, normalize_obs=True, **FAST)
    agent.fit(128, verbose=0)  # statistics and weights away from their initial values
    assert agent.actor.uses_numpy and agent.actor.plan.dict_obs
    env = PointGoalEnv(discrete_goal=True)
    obs = [env.reset(seed=i)[0] for i in range(40)]
    batch = {k: np.stack([o[k] for o in obs]) for k in obs[0]}
    batch["observation"] = batch["observation"] * 40  # some values beyond the normaliser's clip
    packed, single = check_dict_space(agent.observation_space).check(batch)
    assert not single and packed.shape == (40, 2 + 1 + 4)
    concat = agent.policy_model.get_layer("policy_obs_concat").output
    keras_features = keras.Model(agent.policy_model.input, concat)(batch).numpy()
    plan_features = features_function(agent.actor.plan)(packed)
    assert plan_features.dtype == np.float32 and np.abs(plan_features).max() == 10.0
    np.testing.assert_array_equal(plan_features, keras_features)
    fast = NumpyPolicy(pickle.loads(pickle.dumps(agent.actor.plan)))(packed)  # it travels to workers pickled
    ref = {k: v.numpy() for k, v in agent.policy_model(batch).items()}
    np.testing.assert_allclose(fast["mean"], ref["mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.broadcast_to(fast["log_std"], ref["log_std"].shape), ref["log_std"])


def test_a_torso_numpy_cannot_run_acts_through_the_keras_model_on_the_dict():
    torso = keras.Sequential([keras.layers.Dense(8, activation="tanh"), keras.layers.LayerNormalization()])
    agent = keras_trpo.TRPO(PointGoalEnv, seed=0, torso=torso, normalize_obs=True, **FAST)
    assert not agent.actor.uses_numpy
    agent.fit(64, verbose=0)
    batch = sample_dict(agent.observation_space, 5, seed=1)
    np.testing.assert_allclose(agent.predict(batch), np.clip(agent.policy_model(batch)["mean"].numpy(), -1, 1), atol=1e-6)


@pytest.mark.parametrize("entry", [BOX(3), gym.spaces.Discrete(5)])
def test_a_single_key_dict_needs_no_concatenation(entry):
    space = gym.spaces.Dict({"only": entry})
    agent = keras_trpo.TRPO(lambda: ToyEnv(observation_space=space), seed=0, normalize_obs=True, **FAST)
    assert agent.actor.uses_numpy and "policy_obs_concat" not in [layer.name for layer in agent.policy_model.layers]
    agent.fit(64, verbose=0)
    batch = sample_dict(space, 7, seed=2)
    packed, _ = check_dict_space(space).check(batch)
    ref = agent.policy_model(batch)["logits"].numpy()
    np.testing.assert_allclose(agent.actor.params(packed)["logits"], ref, rtol=1e-5, atol=1e-6)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_the_dict_step_computes_each_row_as_it_would_alone(batch, seed):
    rng = np.random.default_rng(seed)
    var = rng.uniform(0.25, 4, 3).astype(np.float32)
    normalizer = Normalizer(rng.normal(size=3).astype(np.float32), var, 1e-8, 10.0, 1 / np.sqrt(var))
    inputs = (ObsInput("a", 0, 1, one_hot=3), ObsInput("b", 1, 3, normalizer=normalizer), ObsInput("c", 4, 2))
    head = Dense(np.zeros((8, 2), np.float32), np.zeros(2, np.float32), "linear", "policy_logits")
    plan = PolicyPlan(inputs, True, None, (), head, "logits", None, CategoricalRule(2))
    features = features_function(plan)
    packed = np.concatenate([rng.integers(0, 3, (batch, 1)), rng.normal(size=(batch, 5))], axis=1).astype(np.float32)
    together = features(packed)
    assert together.shape == (batch, 3 + 3 + 2)
    for i in range(batch):
        np.testing.assert_array_equal(features(packed[i:i + 1])[0], together[i])


# ----------------------------------------------------------------------------- statistics
def closed_form(values, prior_count=1e-4):
    """RunningMeanStd's result over ``values [N, d]`` from its prior (mean 0, var 1, count 1e-4), in closed form."""
    n, m, v = len(values), values.mean(axis=0), values.var(axis=0)
    total = prior_count + n
    return n * m / total, (prior_count * 1.0 + n * v + m**2 * prior_count * n / total) / total, total


def test_each_key_is_normalised_with_its_own_closed_form_statistics():
    agent = keras_trpo.TRPO(DictCountingEnv, seed=0, normalize_obs=True, **{**FAST, "n_steps": 12})
    first = agent._collect(12)
    agent._learn(first)  # the first rollout sets the statistics
    second = agent._collect(12)
    agent._learn(second)  # then they take in each rollout after the update
    t = np.arange(24) % 5  # stored observations: steps 0..4 of consecutive 5-step episodes
    expected = {"b": np.stack([t, 2 * t + 1], axis=1).astype(np.float64), "c": (10 - t)[:, None].astype(np.float64)}
    # The rollout holds the keys packed in sorted order: a (Discrete index), b, c.
    stored = np.concatenate([first.obs[:, 0], second.obs[:, 0]])
    np.testing.assert_array_equal(stored, np.concatenate([(t % 3)[:, None], expected["b"], expected["c"]], axis=1))
    assert set(agent.obs_rms.per_key) == {"b", "c"}  # the Discrete key is one-hot, with no statistics
    for key, values in expected.items():
        mean, var, count = closed_form(values)
        np.testing.assert_allclose(agent.obs_rms[key].mean, mean, rtol=1e-12)
        np.testing.assert_allclose(agent.obs_rms[key].var, var, rtol=1e-12)
        assert agent.obs_rms[key].count == pytest.approx(count)
        for model, prefix in ((agent.policy_model, "policy"), (agent.value_model, "value")):
            layer = model.get_layer(f"{prefix}_obs_normalizer_{key}")
            np.testing.assert_array_equal(layer.mean.numpy(), agent.obs_rms[key].mean.astype(np.float32))
            np.testing.assert_array_equal(layer.var.numpy(), agent.obs_rms[key].var.astype(np.float32))


# ----------------------------------------------------------------------------- predict, evaluate, bad input
def test_predict_takes_one_dict_or_a_batch_and_evaluate_runs_on_the_dict_env():
    agent = keras_trpo.TRPO(PointGoalEnv, seed=1, normalize_obs=True, **FAST)
    assert agent.obs_keys == ("achieved_goal", "desired_goal", "observation")
    agent.fit(64, verbose=0)
    batch = sample_dict(agent.observation_space, 6, seed=0)
    actions = agent.predict(batch)
    assert actions.shape == (6, 2) and np.all(np.abs(actions) <= 1.0)
    for i in range(6):
        np.testing.assert_array_equal(agent.predict({k: v[i] for k, v in batch.items()}), actions[i])
    mean = agent.distribution(batch).mean().numpy()
    np.testing.assert_allclose(np.clip(mean, -1, 1), actions, atol=1e-6)
    ret, _ = agent.evaluate(episodes=2)
    assert -60.0 < ret < 0.0  # 20 steps of minus a distance that stays within the 4x4 arena


@pytest.mark.parametrize("change, message", [
    (lambda o: o.pop("desired_goal"), "missing key 'desired_goal'"),
    (lambda o: o.update(extra=np.zeros(2)), "unexpected key 'extra'"),
    (lambda o: o.update(desired_goal=np.zeros(3)), r"\['desired_goal'\] has shape \(3,\); expected \(2,\)"),
    (lambda o: o.update(observation=np.full(4, np.nan)), "NaN or inf in 'observation'"),
    (lambda o: o.update(desired_goal=np.zeros((5, 2))), r"\['desired_goal'\] has shape \(5, 2\), which does not match"),
    (lambda o: o.update(achieved_goal=["a", "b"]), r"\['achieved_goal'\] has dtype"),
])
def test_predict_names_the_key_of_a_bad_observation(change, message):
    agent = keras_trpo.TRPO(PointGoalEnv, seed=0, **FAST)
    obs = PointGoalEnv().reset(seed=0)[0]
    change(obs)
    with pytest.raises(InvalidObservationError, match=message):
        agent.predict(obs)
    with pytest.raises(InvalidObservationError, match="takes a dict with keys"):
        agent.predict(np.zeros(8, np.float32))


def test_a_bad_discrete_index_is_named():
    agent = keras_trpo.TRPO(lambda: PointGoalEnv(discrete_goal=True), seed=0, **FAST)
    obs = PointGoalEnv(discrete_goal=True).reset(seed=0)[0]
    with pytest.raises(InvalidObservationError, match=r"'desired_goal' is not a Discrete\(4\) value"):
        agent.predict({**obs, "desired_goal": 4})


# ----------------------------------------------------------------------------- save / load
def test_save_load_and_continue(tmp_path):
    agent = keras_trpo.TRPO(lambda: PointGoalEnv(discrete_goal=True), seed=2, normalize_obs=True,
                            normalize_reward=True, **FAST)
    agent.fit(128, verbose=0)
    path = tmp_path / "dict.keras"
    agent.save(str(path))
    with zipfile.ZipFile(path) as z:  # no pickle: JSON, HDF5 and .npz only
        assert all(n.endswith((".json", ".h5", ".keras", ".npz")) for n in z.namelist()), z.namelist()
    loaded = keras_trpo.load(str(path), env=lambda: PointGoalEnv(discrete_goal=True))
    assert loaded.obs_keys == agent.obs_keys and loaded.observation_space == agent.observation_space
    batch = sample_dict(agent.observation_space, 16, seed=3)
    np.testing.assert_array_equal(loaded.predict(batch), agent.predict(batch))
    np.testing.assert_array_equal(loaded.value_model(batch).numpy(), agent.value_model(batch).numpy())
    for key in ("achieved_goal", "observation"):
        np.testing.assert_array_equal(loaded.obs_rms[key].mean, agent.obs_rms[key].mean)
        np.testing.assert_array_equal(loaded.obs_rms[key].var, agent.obs_rms[key].var)
        assert loaded.obs_rms[key].count == agent.obs_rms[key].count > 100
    for a, b in zip(loaded.get_weights(), agent.get_weights()):
        np.testing.assert_array_equal(a, b)
    policy = keras.saving.load_model(str(path))  # the file is also a Keras model file of the policy, one input per key
    assert sorted(policy.input) == list(agent.obs_keys)
    np.testing.assert_allclose(policy(batch)["mean"].numpy(), agent.policy_model(batch)["mean"].numpy())
    count = loaded.obs_rms["observation"].count
    loaded.fit(64, verbose=0)  # resume: the statistics go on from where they were
    assert loaded.num_timesteps == 192 and loaded.iterations == 3
    assert loaded.obs_rms["observation"].count == count + 64


# ----------------------------------------------------------------------------- learning
# No policy that ignores the goal can beat -20 * 0.7652 = -15.30 per 20-step episode: the goal is uniform
# on [-1, 1]^2, and E|g - p| >= E|g| = (sqrt(2) + asinh(1)) / 3 = 0.7652 for any point p (the centre is the
# square's geometric median). 0.7652 is E|g| for g uniform on the square, in closed form.
GOAL_BLIND_BEST = -20 * (math.sqrt(2) + math.asinh(1)) / 3


@pytest.mark.timeout(300)
def test_a_dict_policy_learns_to_reach_the_goal():
    # Measured on seeds 0, 1, 2 (10,240 steps, 18-25 s with TensorFlow's start on a shared 2-core machine): the
    # deterministic return over the same 20 evaluation episodes went from -17.6 / -17.7 / -17.7 to -2.9 / -3.4 / -2.6
    # (gains of 14.3 to 15.1), the training curve from -25.7 / -21.3 / -24.7 to -7.5 / -7.5 / -7.8. The asserted
    # margins, 7, are about half the smallest gain.
    agent = keras_trpo.TRPO(PointGoalEnv, seed=0, n_steps=1024, gamma=0.95, normalize_obs=True, jit_compile=False)
    before, _ = agent.evaluate(episodes=20)
    history = agent.fit(10_240, verbose=0).history
    after, _ = agent.evaluate(episodes=20)
    assert after > before + 7.0, (before, after, history["mean_return"])
    assert after > GOAL_BLIND_BEST + 7.0, (after, GOAL_BLIND_BEST)  # it must be using desired_goal
    assert history["mean_return"][-1] > history["mean_return"][0] + 7.0


def test_a_vector_env_s_batched_dicts_pack_as_the_env_list_s():
    """``async`` steps a gymnasium VectorEnv (observations as one dict of [n, ...] arrays, final observations
    per env); ``sync`` a list of envs (one dict per env): the packed rollouts must be the same."""
    import functools

    rollouts = []
    for vectorization in ("sync", "async"):
        agent = keras_trpo.TRPO(functools.partial(PointGoalEnv, discrete_goal=True), seed=4, n_envs=2, n_steps=30,
                                vectorization=vectorization, jit_compile=False)
        rollouts.append(agent._collect(30))
        agent.close()
    sync, vec = rollouts
    assert len(sync.truncated_index) == 2  # each env's 20-step episode ended inside the rollout
    for name in ("obs", "actions", "rewards", "truncated_index", "truncated_obs", "last_obs"):
        np.testing.assert_array_equal(getattr(vec, name), getattr(sync, name), err_msg=name)
