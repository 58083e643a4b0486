"""keras_trpo.joint_limits: the masked arm tasks' observations, masks and partial observability (no TensorFlow)."""
import gymnasium as gym
import numpy as np
import pytest

from keras_trpo.joint_limits import FLICKER, N_JOINTS, N_POSITIONS, JointLimitsEnv


def _episode(env_id, seed, steps=60):
    """Observations and masks of one episode under random valid commands."""
    env = gym.make(env_id)
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    seen, masks = [obs], [info["action_mask"]]
    for _ in range(steps):
        m = info["action_mask"].reshape(N_JOINTS, 3)
        action = np.array([rng.choice(np.flatnonzero(row)) for row in m])
        obs, _, term, trunc, info = env.step(action)
        seen.append(obs)
        masks.append(info["action_mask"])
        if term or trunc:
            break
    env.close()
    return np.array(seen), np.array(masks)


def test_the_memory_task_shows_the_target_on_the_first_step_only():
    obs, _ = _episode("JointLimitsMemory-v0", 3)
    assert obs.shape[1] == 2 * N_JOINTS + 1
    assert obs[0, -1] == 1.0 and obs[0, N_JOINTS:2 * N_JOINTS].any()
    assert (obs[1:, N_JOINTS:] == 0).all()


def test_the_flickering_task_shows_the_target_on_about_a_fifth_of_the_steps_and_says_when():
    shown = []
    for seed in range(40):
        obs, _ = _episode("JointLimitsFlicker-v0", seed)
        assert obs[0, -1] == 1.0  # always on the first step
        flag, target = obs[1:, -1], obs[1:, N_JOINTS:2 * N_JOINTS]
        assert set(np.unique(flag)) <= {0.0, 1.0}
        assert (target[flag == 0] == 0).all()  # hidden: zeros
        # shown: the same target as on the first step
        assert np.allclose(target[flag == 1], obs[0, N_JOINTS:2 * N_JOINTS])
        shown.extend(flag)
    rate, n = float(np.mean(shown)), len(shown)
    assert abs(rate - FLICKER) < 4 * np.sqrt(FLICKER * (1 - FLICKER) / n), (rate, n)


def test_same_seed_same_episode_and_the_masks_follow_the_limits():
    a, ma = _episode("JointLimitsFlicker-v0", 11)
    b, mb = _episode("JointLimitsFlicker-v0", 11)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ma, mb)
    m = ma.reshape(len(ma), N_JOINTS, 3)
    assert m[:, :, 1].all()  # holding is always valid
    pos = np.rint(a[:, :N_JOINTS] * (N_POSITIONS - 1))
    assert (m[pos == 0][:, 0] == 0).all()  # no move below position 0
    assert (m[pos == N_POSITIONS - 1][:, 2] == 0).all()  # nor above the last


def test_a_flicker_that_is_not_a_probability_or_without_memory_is_refused():
    with pytest.raises(ValueError, match="flicker must be a probability"):
        JointLimitsEnv(memory=True, flicker=1.5)
    with pytest.raises(ValueError, match="flicker needs memory=True"):
        JointLimitsEnv(flicker=0.2)
