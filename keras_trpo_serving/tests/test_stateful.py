"""Recurrent and Dict-observation policies: ``step`` / ``act`` / ``reset`` / ``initial_state`` on the
hand-built stateful_* fixtures (make_fixtures.py --stateful writes the .onnx files and the weights,
make_stateful_tflite.py the .tflite ones, op by op without TensorFlow), checked against the same
computation redone in NumPy from stateful_weights.json, on onnxruntime and LiteRT."""
import json
import os

import numpy as np
import pytest

from keras_trpo_serving import InvalidObservation, InvalidState, LiteRtPolicy, ModelLoadError, NonFiniteObservation, OnnxPolicy
from keras_trpo_serving.spaces import parse_metadata, space_mismatch
from keras_trpo_serving.tests.conftest import FIXTURES

RUNTIMES = {"onnx": (OnnxPolicy, ".onnx"), "tflite": (LiteRtPolicy, ".tflite")}


def load(name, runtime="onnx", **kw):
    cls, ext = RUNTIMES[runtime]
    return cls(os.path.join(FIXTURES, name + ext), **kw)


def weights(name):
    with open(os.path.join(FIXTURES, "stateful_weights.json")) as f:
        raw = json.load(f)
    return {k[len(name) + 1:]: np.asarray(v["value"], v["dtype"]) for k, v in raw.items() if k.startswith(name + ".")}


# ---------------------------------------------------------------- the same policies in NumPy
def rnn(obs, h):
    """stateful_recurrent: (logits, state_out)."""
    w = weights("stateful_recurrent")
    h2 = np.tanh(obs @ w["W"] + h @ w["U"] + w["b"])
    return h2 @ w["V"] + w["c"], h2


def dict_features(name, mode, pos, width):
    w = weights(name)
    hot = np.eye(3, dtype=np.float32)[np.asarray(mode, np.int64) - 1]
    return np.concatenate([np.atleast_2d(pos), np.atleast_2d(hot)], axis=1) @ w["W"] + w["b"]


def rdict(mode, pos, h):
    """stateful_recurrent_dict: (logits, state_out)."""
    w = weights("stateful_recurrent_dict")
    h2 = np.tanh(dict_features("stateful_recurrent_dict", mode, pos, 3) + h @ w["U"])
    return h2 @ w["V"], h2


def gumbel_max(logits, u):
    return np.argmax(logits - np.log(-np.log(u + np.float32(1e-20)) + np.float32(1e-20)), axis=-1)


def episode(n=12, starts=(0, 5, 9), seed=0):
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 3)).astype(np.float32) * 2
    start = np.zeros(n, bool)
    start[list(starts)] = True
    return obs, start


# ---------------------------------------------------------------- recurrent
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_recurrent_attributes(runtime):
    p = load("stateful_recurrent", runtime)
    assert p.is_recurrent and p.state_size == 4 and p.recurrent == "gru" and p.obs_keys is None
    z = p.initial_state()
    assert z.shape == (1, 4) and z.dtype == np.float32 and not z.any()
    assert p.initial_state(3).shape == (3, 4)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_act_carries_the_state_and_episode_start_resets_it(runtime):
    """The stateful act over an episode sequence equals the NumPy RNN run with zeros at each start."""
    p = load("stateful_recurrent", runtime)
    obs, start = episode()
    h = np.zeros((1, 4), np.float32)
    for t in range(len(obs)):
        if start[t]:
            h = np.zeros_like(h)
        logits, h = rnn(obs[t:t + 1], h)
        got = p.act(obs[t], episode_start=bool(start[t]))
        assert isinstance(got, np.int64) and got == np.argmax(logits[0]), t
        np.testing.assert_allclose(p._state, h, atol=1e-5)
    # reset() is the same as an episode start
    p.reset()
    logits, _ = rnn(obs[:1], np.zeros((1, 4), np.float32))
    assert p.act(obs[0]) == np.argmax(logits[0])


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_step_is_stateless_and_matches_numpy(runtime):
    p = load("stateful_recurrent", runtime)
    obs, start = episode(seed=1)
    state = None
    h = np.zeros((1, 4), np.float32)
    for t in range(len(obs)):
        if start[t]:
            h = np.zeros_like(h)
        logits, h = rnn(obs[t:t + 1], h)
        action, state = p.step(obs[t], state, episode_start=start[t])
        assert action == np.argmax(logits[0]) and state.shape == (4,)
        np.testing.assert_allclose(state, h[0], atol=1e-5)
    assert p._state is None  # step never touched act's state
    # [1, S] is one observation's state too, and the same call gives the same answer (no hidden state)
    a1, s1 = p.step(obs[0], state[None])
    a2, s2 = p.step(obs[0], state)
    assert a1 == a2 and np.array_equal(s1, s2) and s1.shape == (4,)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_step_batches_rows_with_their_own_states(runtime):
    p = load("stateful_recurrent", runtime)
    rng = np.random.default_rng(2)
    obs, state = rng.normal(size=(5, 3)).astype(np.float32), rng.uniform(-1, 1, size=(5, 4)).astype(np.float32)
    starts = np.array([False, True, False, False, True])
    expected_h = state.copy()
    expected_h[starts] = 0
    logits, h = rnn(obs, expected_h)
    action, new = p.step(obs, state, episode_start=starts)
    assert action.shape == (5,) and new.shape == (5, 4)
    assert np.array_equal(action, np.argmax(logits, axis=1))
    np.testing.assert_allclose(new, h, atol=1e-5)
    assert state[1].any()  # the caller's state is not zeroed in place
    # each row alone gives the same
    for i in range(5):
        a, s = p.step(obs[i], state[i], episode_start=bool(starts[i]))
        assert a == action[i]
        np.testing.assert_allclose(s, new[i], atol=1e-6)
    # None is zeros for every row; an empty batch gives empty answers
    a0, s0 = p.step(obs)
    assert np.array_equal(a0, np.argmax(rnn(obs, np.zeros((5, 4), np.float32))[0], axis=1))
    ae, se = p.step(np.zeros((0, 3), np.float32))
    assert ae.shape == (0,) and se.shape == (0, 4)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_act_refuses_another_batch_size_until_reset(runtime):
    p = load("stateful_recurrent", runtime)
    obs = np.ones((3, 3), np.float32)
    assert p.act(obs).shape == (3,)
    with pytest.raises(InvalidState, match=r"batch of 3 observation\(s\), this call has 2.*reset\(\)"):
        p.act(obs[:2])
    with pytest.raises(InvalidState, match="batch of 3"):
        p.act(obs[0])
    p.reset()
    assert p.act(obs[:2]).shape == (2,) and p._state.shape == (2, 4)
    # a bad call leaves the state as it was
    before = p._state.copy()
    with pytest.raises(InvalidObservation):
        p.act(np.full((2, 3), np.nan))
    assert np.array_equal(p._state, before)


@pytest.mark.parametrize("state, match", [
    (np.zeros(3), r"shape \(3,\); one observation takes \(4,\) or \(1, 4\)"),
    (np.zeros((2, 4)), r"shape \(2, 4\); one observation"),
    ([0, 0, np.nan, 0], "NaN or inf"),
    (["a", "b", "c", "d"], "dtype <U1"),
    ([[0, 0], [0, 0, 0, 0]], "not a rectangular array"),
    (np.zeros(4, bool), "dtype bool"),
])
def test_bad_state_is_refused(state, match):
    p = load("stateful_recurrent")
    with pytest.raises(InvalidState, match=match):
        p.step(np.zeros(3), state)
    assert issubclass(InvalidState, InvalidObservation)


def test_bad_batch_state_and_episode_start_are_refused():
    p = load("stateful_recurrent")
    obs = np.zeros((3, 3), np.float32)
    with pytest.raises(InvalidState, match=r"shape \(2, 4\); a batch of 3 takes \(3, 4\)"):
        p.step(obs, np.zeros((2, 4)))
    with pytest.raises(InvalidState, match=r"shape \(4,\); a batch of 3"):
        p.step(obs, np.zeros(4))
    with pytest.raises(InvalidState, match=r"episode_start has shape \(2,\); expected one per observation: \(3,\)"):
        p.step(obs, episode_start=[True, False])
    with pytest.raises(InvalidState, match="true/false"):
        p.step(obs, episode_start=[0.5, 0, 1])
    with pytest.raises(InvalidState, match="true/false"):
        p.step(obs, episode_start="yes")
    with pytest.raises(InvalidState, match="true/false"):
        p.act(obs, episode_start=[2, 0, 0])


def test_distribution_params_of_a_recurrent_policy_use_the_state():
    p = load("stateful_recurrent")
    obs = np.random.default_rng(3).normal(size=(4, 3)).astype(np.float32)
    state = np.random.default_rng(4).uniform(-1, 1, size=(4, 4)).astype(np.float32)
    np.testing.assert_allclose(p.distribution_params(obs, state)["logits"], rnn(obs, state)[0], atol=1e-5)
    np.testing.assert_allclose(p.distribution_params(obs)["logits"], rnn(obs, 0 * state)[0], atol=1e-5)
    with pytest.raises(InvalidState):
        p.distribution_params(obs, state[:2])


def test_sampled_actions_of_a_recurrent_dict_policy_follow_the_noise():
    """The stochastic file samples in the graph (Gumbel-max of its logits); the same noise gives
    the NumPy sample, and the state advances as for a deterministic step."""
    p = load("stateful_recurrent_dict", seed=0)
    assert p.samples_in_graph and p.is_recurrent and p.obs_keys == ("mode", "pos")
    rng = np.random.default_rng(5)
    mode, pos = np.array([1, 2, 3, 3]), rng.uniform(-1, 1, size=(4, 2)).astype(np.float32)
    h = rng.uniform(-1, 1, size=(4, 3)).astype(np.float32)
    u = rng.random((4, 2), dtype=np.float32)
    logits, h2 = rdict(mode, pos, h)
    action, new = p.step({"mode": mode, "pos": pos}, h, deterministic=False, noise=u)
    assert np.array_equal(action, gumbel_max(logits, u))
    np.testing.assert_allclose(new, h2, atol=1e-5)
    det, new_det = p.step({"mode": mode, "pos": pos}, h)
    assert np.array_equal(det, np.argmax(logits, axis=1)) and np.array_equal(new, new_det)
    # one observation: a Discrete entry is a number
    a1, s1 = p.step({"mode": 2, "pos": pos[1]}, h[1], deterministic=False, noise=u[1])
    assert a1 == action[1] and s1.shape == (3,)
    # sampling from the parameters in NumPy (what a file without the noise input gets) agrees
    params = p.distribution_params({"mode": mode, "pos": pos}, h)
    assert np.array_equal(p.sampling_rule.contract_action(params, u), action)
    # a seeded generator reproduces its draws
    a3, _ = p.step({"mode": mode, "pos": pos}, h, deterministic=False, rng=np.random.default_rng(9))
    a4, _ = p.step({"mode": mode, "pos": pos}, h, deterministic=False, rng=np.random.default_rng(9))
    assert np.array_equal(a3, a4)


# ---------------------------------------------------------------- Dict observations
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_dict_observation_actions_match_numpy(runtime):
    p = load("stateful_dict", runtime)
    assert p.obs_keys == ("mode", "pos") and not p.is_recurrent and p.state_size == 0 and p.obs_shape is None
    w = weights("stateful_dict")
    rng = np.random.default_rng(6)
    mode, pos = rng.integers(1, 4, size=7), rng.uniform(-1, 1, size=(7, 2))
    mean = dict_features("stateful_dict", mode, pos, 2)
    got = p.act({"pos": pos, "mode": mode})  # key order does not matter
    np.testing.assert_allclose(got, np.clip(mean, -1, 1), atol=1e-5)
    params = p.distribution_params({"mode": mode, "pos": pos})
    np.testing.assert_allclose(params["mean"], mean, atol=1e-5)
    np.testing.assert_allclose(params["log_std"], np.broadcast_to(w["log_std"], (7, 2)), atol=1e-6)
    one = p.act({"mode": np.int64(mode[2]), "pos": list(pos[2])})
    assert one.shape == (2,)
    np.testing.assert_allclose(one, got[2], atol=1e-6)
    x, single = p.check({"mode": 1, "pos": [0, 0]})
    assert single and set(x) == {"mode", "pos"} and x["mode"].shape == (1,) and x["pos"].shape == (1, 2)
    # feed-forward: step gives (action, None) and refuses a state; reset is a no-op
    action, state = p.step({"mode": mode, "pos": pos})
    assert state is None and np.array_equal(action, got)
    with pytest.raises(InvalidState, match="feed-forward"):
        p.step({"mode": 1, "pos": [0, 0]}, np.zeros(1))
    p.reset()
    assert p.initial_state(2).shape == (2, 0)


@pytest.mark.parametrize("obs, error, match", [
    ({"pos": [0, 0]}, InvalidObservation, r"lacks the key\(s\) \['mode'\]"),
    ({"mode": 1, "pos": [0, 0], "speed": 3}, InvalidObservation, r"unknown key\(s\) \['speed'\]"),
    ({"mode": 1, "pos": [0, 0, 0]}, InvalidObservation, r"observation 'pos' has shape \(3,\)"),
    ({"mode": 0, "pos": [0, 0]}, InvalidObservation, r"observation 'mode' must be an integer in \[1, 3\]"),
    ({"mode": 4, "pos": [0, 0]}, InvalidObservation, r"'mode' must be an integer in \[1, 3\]"),
    ({"mode": 1.5, "pos": [0, 0]}, InvalidObservation, r"'mode' must be an integer"),
    ({"mode": 1, "pos": [0, np.nan]}, NonFiniteObservation, r"observation 'pos' contains NaN"),
    ({"mode": [1, 2], "pos": [0, 0]}, InvalidObservation, r"'pos' is one observation but 'mode' is a batch of 2"),
    ({"mode": [1, 2], "pos": [[0, 0]] * 3}, InvalidObservation, r"'pos' is a batch of 3 but 'mode' is a batch of 2"),
    ({"mode": "a", "pos": [0, 0]}, InvalidObservation, r"observation 'mode' has dtype <U1"),
    ([1, 0, 0], InvalidObservation, "mapping of the keys"),
])
def test_bad_dict_observations_name_the_key(obs, error, match):
    p = load("stateful_dict")
    with pytest.raises(error, match=match):
        p.act(obs)
    with pytest.raises(error, match=match):
        p.step(obs)


# ---------------------------------------------------------------- loading
@pytest.mark.parametrize("name, match", [
    ("stateful_broken_no_state_meta", "has a 'state_in' input but its metadata says feed-forward"),
    ("stateful_broken_state_size", r"input 'state_in' has shape \['batch', 4\] but the metadata's state_size needs "
                                   r"\[batch, 5\]"),
    ("stateful_broken_no_state_out", "is recurrent but has no 'state_out' output"),
])
def test_files_whose_graph_and_metadata_disagree_are_refused(name, match):
    with pytest.raises(ModelLoadError, match=match):
        load(name)


def _props(**over):
    props = {"observation_space": json.dumps({"type": "Box", "shape": [3], "low": [-1] * 3, "high": [1] * 3}),
             "action_space": json.dumps({"type": "Discrete", "n": 2}), "distribution": "categorical"}
    props.update(over)
    return props


@pytest.mark.parametrize("over, match", [
    ({"recurrent": "rnn", "state_size": "4"}, "recurrent='rnn'"),
    ({"recurrent": "lstm", "state_size": "four"}, "state_size='four' is not a decimal integer"),
    ({"recurrent": "lstm"}, "needs a positive state_size"),
    ({"state_size": "4"}, "needs a positive state_size"),
    ({"observation_space": json.dumps({"type": "Dict", "spaces": {"a": {"type": "MultiDiscrete", "nvec": [2]}}})},
     "not Box or Discrete"),
    ({"observation_space": json.dumps({"type": "Dict", "spaces": {}})}, "non-empty"),
])
def test_bad_recurrent_or_dict_metadata_is_refused(over, match):
    with pytest.raises(ModelLoadError, match=match):
        parse_metadata(_props(**over), "f.onnx")


def test_feed_forward_metadata_may_say_so_explicitly():
    meta = parse_metadata(_props(recurrent="", state_size="0"), "f.onnx")
    assert meta.recurrent == "" and meta.state_size == 0


def test_dict_space_round_trips_and_is_compared_with_gymnasium():
    gym = pytest.importorskip("gymnasium")
    p = load("stateful_dict")
    d = p.observation_space.to_dict()
    assert d["type"] == "Dict" and list(d["spaces"]) == ["mode", "pos"] and p.metadata["observation_space"] == d
    same = gym.spaces.Dict({"pos": gym.spaces.Box(-1, 1, (2,), np.float32), "mode": gym.spaces.Discrete(3, start=1)})
    assert space_mismatch(p.observation_space, same) is None
    other = gym.spaces.Dict({"pos": gym.spaces.Box(-1, 1, (2,), np.float32), "mode": gym.spaces.Discrete(3)})
    assert "entry 'mode'" in space_mismatch(p.observation_space, other)
    fewer = gym.spaces.Dict({"pos": gym.spaces.Box(-1, 1, (2,), np.float32)})
    assert "keys are ['pos']" in space_mismatch(p.observation_space, fewer)


def test_an_empty_batch_leaves_acts_state_alone():
    p = load("stateful_recurrent")
    p.act(np.ones(3))
    before = p._state.copy()
    assert p.act(np.zeros((0, 3), np.float32)).shape == (0,)
    assert np.array_equal(p._state, before)
    p.act(np.ones(3))  # still a batch of one
