"""`keras-trpo-serving run` with action masks (issue 29): a masked model is given the env's masks
(an ``action_masks()`` method or ``info["action_mask"]``), and the summary counts the actions the
env's mask forbade: 0 with masks. Also ``invalid_actions.forbidden`` against a per-action loop."""
import json
import subprocess
import sys

import numpy as np
import pytest

from keras_trpo_serving import OnnxPolicy
from keras_trpo_serving.cli import CliError, run_episodes
from keras_trpo_serving.invalid_actions import forbidden
from keras_trpo_serving.tests.conftest import ROOT, fixture_path
from keras_trpo_serving.tests.test_masks import is_valid, random_masks

gym = pytest.importorskip("gymnasium")


def run_cli(*args):
    out = subprocess.run([sys.executable, "-m", "keras_trpo_serving", "run", *args], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    return out.returncode, out.stdout, out.stderr


def test_ten_taxi_episodes_with_a_masked_export_take_no_invalid_action():
    code, out, err = run_cli("--model", fixture_path("masked_taxi"), "--episodes", "10", "--stochastic")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["env"] == "Taxi-v4" and summary["episodes"] == 10
    assert summary["action_masks"] == 'info["action_mask"]' and summary["masked"] is True
    assert summary["invalid_actions"] == 0 and summary["invalid_per_episode"] == [0] * 10


def test_the_count_is_real_the_same_model_without_masks_takes_invalid_actions():
    code, out, err = run_cli("--model", fixture_path("masked_taxi"), "--episodes", "3", "--action-masks", "off")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["masked"] is False and summary["invalid_actions"] > 0
    assert summary["invalid_actions"] == sum(summary["invalid_per_episode"])


class JointMasks(gym.Env):
    """masked_multidiscrete's spaces, Box(3) -> MultiDiscrete([3, 2], start=[1, -1]), with an
    ``action_masks()`` method (sb3-contrib's convention) and a different mask in its info, which the
    method must win over; ``bad`` makes the method's mask leave sub-space 1 empty at step 3."""

    def __init__(self, bad=False):
        self.observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
        self.action_space = gym.spaces.MultiDiscrete([3, 2], start=[1, -1])
        self.bad, self.t, self.refused = bad, 0, 0

    def action_masks(self):
        if self.bad and self.t == 3:
            return np.array([1, 1, 1, 0, 0], bool)
        return random_masks("masked_multidiscrete", np.random.default_rng(self.t), 1)[0]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, 3).astype(np.float32), {"action_mask": np.array([1, 0, 0, 1, 0], bool)}

    def step(self, action):
        self.refused += not is_valid("masked_multidiscrete", action, self.action_masks())
        self.t += 1
        obs = self.np_random.uniform(-1, 1, 3).astype(np.float32)
        return obs, 1.0, False, self.t >= 40, {"action_mask": np.array([1, 0, 0, 1, 0], bool)}


def test_an_action_masks_method_wins_and_gives_a_multidiscrete_model_its_masks():
    policy = OnnxPolicy(fixture_path("masked_multidiscrete"), seed=0)
    env = JointMasks()
    summary = run_episodes(policy, "JointMasks", 3, deterministic=False, env=env)
    assert summary["action_masks"] == "action_masks()" and summary["invalid_actions"] == 0 and env.refused == 0
    env = JointMasks()
    summary = run_episodes(policy, "JointMasks", 3, env=env, action_masks="off")
    assert summary["invalid_actions"] == env.refused > 0  # counted as the env itself counts them


class NoMasks(JointMasks):
    """JointMasks without masks: no method, nothing in the info."""

    action_masks = None

    def reset(self, *, seed=None, options=None):
        return super().reset(seed=seed)[0], {}

    def step(self, action):
        self.t += 1
        return self.observation_space.sample(), 1.0, False, self.t >= 10, {}


def test_an_unmasked_model_in_a_masked_env_is_counted_and_on_refuses_it():
    policy = OnnxPolicy(fixture_path("linear_multidiscrete"))
    env = JointMasks()
    summary = run_episodes(policy, "JointMasks", 2, env=env)
    assert summary["masked"] is False and summary["invalid_actions"] == env.refused > 0
    with pytest.raises(CliError, match="model has no action_mask input"):
        run_episodes(policy, "JointMasks", 1, env=JointMasks(), action_masks="on")


def test_an_env_without_masks_reports_none_and_on_refuses_it():
    policy = OnnxPolicy(fixture_path("masked_multidiscrete"))
    summary = run_episodes(policy, "NoMasks", 1, env=NoMasks())
    assert summary["action_masks"] is None and summary["invalid_actions"] is None and summary["masked"] is False
    with pytest.raises(CliError, match="the env gives no action masks"):
        run_episodes(policy, "NoMasks", 1, env=NoMasks(), action_masks="on")


def test_a_malformed_env_mask_is_an_error_naming_the_episode_and_step():
    policy = OnnxPolicy(fixture_path("masked_multidiscrete"), seed=0)
    with pytest.raises(CliError, match=r"action_masks\(\)\) at episode 0, step 3: .*sub-space 1"):
        run_episodes(policy, "JointMasks", 1, env=JointMasks(bad=True))


@pytest.mark.parametrize("name, space", [
    ("masked_taxi", gym.spaces.Discrete(6)),
    ("masked_multidiscrete", gym.spaces.MultiDiscrete([3, 2], start=[1, -1])),
    ("masked_multibinary", gym.spaces.MultiBinary(4)),
])
def test_forbidden_agrees_with_a_per_action_check(name, space):
    rng = np.random.default_rng(2)
    masks = random_masks(name, rng, 500)
    space.seed(3)
    actions = np.stack([np.asarray(space.sample()) for _ in range(500)])
    want = [not is_valid(name, a, m) for a, m in zip(actions, masks)]
    assert forbidden(space, actions, masks).tolist() == want
    assert 50 < sum(want) < 450  # both kinds are there
    policy = OnnxPolicy(fixture_path(name))
    assert forbidden(policy.action_space, actions, masks).tolist() == want  # serving's Space too
