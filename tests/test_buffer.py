"""The rollout buffer's functions (rollouts.buffer), the episode window, and the agent's split: the
front asks its policy object and never branches on the policy's kind."""
import ast
import pathlib

import numpy as np
import pytest

from keras_trpo.rollouts import buffer
from keras_trpo.rollouts.episodes import EpisodeWindow
from keras_trpo.rollouts.worker import Rollout
from keras_trpo.running_stats import RewardScaler

ROOT = pathlib.Path(__file__).resolve().parents[1]


def rollout(T=6, E=2, obs_dim=3, S=4, seed=0, **fields) -> Rollout:
    """A rollout whose arrays say where each entry came from: ``obs[t, e] = (t, e, 0...)``."""
    rng = np.random.default_rng(seed)
    obs = np.zeros((T, E, obs_dim), np.float32)
    obs[..., 0], obs[..., 1] = np.arange(T)[:, None], np.arange(E)[None, :]
    end = rng.random((T, E)) < 0.2
    rewards = rng.normal(size=(T, E)).astype(np.float32)
    base = dict(obs=obs, actions=(10 * np.arange(T)[:, None] + np.arange(E)[None, :]).astype(np.int64),
                rewards=rewards, raw_rewards=rewards, terminated=end, episode_end=end,
                truncated_index=np.zeros((0, 2), np.int64), truncated_obs=np.zeros((0, obs_dim), np.float32),
                last_obs=np.zeros((E, obs_dim), np.float32), states=rng.normal(size=(T, E, S)).astype(np.float32),
                starts=np.concatenate([np.ones((1, E), bool), end[:-1]]))
    base.update(fields)
    return Rollout(**base)


def test_step_batch_flattens_step_major():
    r = rollout(T=5, E=3)
    adv = np.arange(15, dtype=np.float32)
    returns = np.arange(15, dtype=np.float32).reshape(5, 3)
    b = buffer.step_batch(r, adv, returns)
    obs = b.policy_inputs
    assert obs.shape == (15, 3) and b.actions.shape == (15,) and b.returns.shape == (15,) and b.length == 1
    np.testing.assert_array_equal(obs[:, :2], [[t, e] for t in range(5) for e in range(3)])  # row t E + e
    np.testing.assert_array_equal(b.actions, [10 * t + e for t in range(5) for e in range(3)])
    np.testing.assert_array_equal(b.returns, returns.reshape(-1))
    assert b.value_inputs is obs


@pytest.mark.parametrize("length, L", [(0, 6), (3, 3), (128, 6)])
def test_sequence_batch_rows_are_env_major_sequences_from_their_stored_states(length, L):
    T, E = 6, 2
    r = rollout(T=T, E=E)
    critic = np.random.default_rng(1).normal(size=(T, E, 5)).astype(np.float32)
    adv = np.arange(T * E, dtype=np.float32)  # step-major: adv[t E + e]
    returns = adv.reshape(T, E) + 100
    b = buffer.sequence_batch(r, adv, returns, critic, length)
    N = E * (T // L)
    obs, starts, state = b.policy_inputs
    assert obs.shape == (N, L, 3) and starts.shape == (N, L) and starts.dtype == np.float32 and state.shape == (N, 4)
    assert b.length == L and b.returns.shape == (N, L) and b.value_inputs[2].shape == (N, 5)
    for row in range(N):
        e, j = divmod(row, T // L)
        steps = range(j * L, j * L + L)
        np.testing.assert_array_equal(obs[row, :, :2], [[t, e] for t in steps])
        np.testing.assert_array_equal(state[row], r.states[j * L, e])
        np.testing.assert_array_equal(b.value_inputs[2][row], critic[j * L, e])
        np.testing.assert_array_equal(b.returns[row], [returns[t, e] for t in steps])
        # actions and advantages one row per step, in the order of the policy's outputs (sequence-major)
        np.testing.assert_array_equal(b.actions[row * L:(row + 1) * L], [10 * t + e for t in steps])
        np.testing.assert_array_equal(b.advantages[row * L:(row + 1) * L], [t * E + e for t in steps])
    np.testing.assert_array_equal(buffer.from_chunks(b.returns, T, E), returns)


def test_chunks_round_trip_and_lengths():
    x = np.arange(24).reshape(6, 2, 2)
    chunks = buffer.to_chunks(x, 3)
    assert chunks.shape == (4, 3, 2)
    np.testing.assert_array_equal(buffer.from_chunks(chunks, 6, 2), x)
    assert buffer.check_length(32, 128) == 32 and buffer.check_length(40, 0) == 40
    with pytest.raises(ValueError, match="must divide"):
        buffer.check_length(40, 16)


def test_value_minibatches_hold_whole_sequences():
    rng = np.random.default_rng(0)
    b = buffer.TrainingBatch((), np.zeros(0), np.zeros(0), (), np.zeros((8, 16)), length=16)
    rows = b.value_minibatches(64, 2, rng)
    assert rows.shape == (4, 4) and set(rows[:2].ravel()) == set(range(8))  # 64 steps = 4 sequences of 16
    assert b.value_minibatches(8, 1, rng).shape == (8, 1)  # fewer steps than a sequence: one sequence each
    flat = buffer.TrainingBatch((), np.zeros(0), np.zeros(0), (), np.zeros(10))
    np.testing.assert_array_equal(flat.value_minibatches(4, 1, np.random.default_rng(3)),
                                  buffer.minibatch_indices(10, 4, 1, np.random.default_rng(3)))


def test_minibatch_indices_pad_the_last_batch_from_the_same_permutation():
    rows = buffer.minibatch_indices(10, 4, 2, np.random.default_rng(0))
    assert rows.shape == (6, 4) and rows.dtype == np.int32
    for epoch in (rows[:3], rows[3:]):
        assert set(epoch.ravel()) == set(range(10))
        np.testing.assert_array_equal(epoch.ravel()[10:], epoch.ravel()[:2])


def test_normalize_advantages_and_explained_variance():
    adv = np.array([1.0, 2.0, 3.0, 6.0])
    out = buffer.normalize_advantages(adv)
    assert abs(out.mean()) < 1e-12 and abs(out.std() - 1) < 1e-6
    one = np.array([5.0])
    assert buffer.normalize_advantages(one) is one
    returns = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert buffer.explained_variance(returns, returns) == 1.0
    assert buffer.explained_variance(np.zeros((2, 2)), returns) == 0.0
    assert np.isnan(buffer.explained_variance(returns, np.ones((2, 2))))


def test_scale_rewards_restarts_the_return_of_fresh_envs():
    r = rollout(T=4, E=2, fresh_envs=np.array([1]))
    scaler = RewardScaler(2, 0.9)
    scaler.returns[:] = 5.0
    reference = RewardScaler(2, 0.9)
    reference.returns[:] = [5.0, 0.0]
    scaled = buffer.scale_rewards(r, scaler)
    np.testing.assert_array_equal(scaled.rewards, reference(r.raw_rewards, r.episode_end))
    np.testing.assert_array_equal(scaled.raw_rewards, r.raw_rewards)


def test_episode_window_keeps_the_last_hundred_and_round_trips():
    window = EpisodeWindow()
    assert np.isnan(window.logs()["mean_return"])
    window.add(rollout(episode_returns=list(range(150)), episode_lengths=[2] * 150))
    assert len(window) == 100 and window.logs() == {"mean_return": 99.5, "mean_length": 2.0}
    again = EpisodeWindow()
    again.load_state(window.state())
    assert list(again) == list(window)
    with pytest.raises(ValueError, match=r"\[return, length\] pairs"):
        EpisodeWindow().load_state([[1.0]])


def test_the_front_never_branches_on_the_policy_kind():
    """agent.py asks its policy object; no condition in it reads 'recurrent' (issue 26)."""
    source = (ROOT / "keras_trpo" / "agent.py").read_text()
    assert len(source.splitlines()) <= 250
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.If, ast.IfExp, ast.While, ast.BoolOp)):
            test = node.test if not isinstance(node, ast.BoolOp) else node
            assert "recurrent" not in ast.unparse(test), ast.unparse(test)
