"""`serving run` refuses an env whose spaces differ from the model's in size or bounds, not only
in type and shape (a Discrete(3) policy was run in CartPole's Discrete(2))."""
import os
import subprocess
import sys

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")

from keras_trpo_serving import OnnxPolicy  # noqa: E402
from keras_trpo_serving.cli import CliError, run_episodes  # noqa: E402
from keras_trpo_serving.spaces import Space, space_mismatch  # noqa: E402
from keras_trpo_serving.tests.conftest import ROOT, fixture_path  # noqa: E402


def test_a_discrete3_model_is_refused_in_a_discrete2_env():
    # discrete.onnx: Box(-5, 5, (4,)) -> Discrete(3, start=1); CartPole: a 4-dim Box -> Discrete(2)
    out = subprocess.run([sys.executable, "-m", "keras_trpo_serving", "run", "--model", fixture_path("discrete"),
                          "--env", "CartPole-v1", "--episodes", "1"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 2, out.stdout + out.stderr
    assert "action space Discrete(2) does not match the model's Discrete[]: it has n=2, start=0; " \
           "the model's has n=3, start=1" in out.stderr, out.stderr


@pytest.mark.parametrize("env_space, fragment", [
    (gym.spaces.Discrete(3), "start=0"),                      # same n, other start
    (gym.spaces.Discrete(4, start=1), "n=4"),
    (gym.spaces.Box(-1, 1, (2,)), "it is a Box"),
])
def test_discrete_sizes_and_starts_are_compared(env_space, fragment):
    model = Space.from_json('{"type": "Discrete", "n": 3, "start": 1}', "action_space")
    assert fragment in space_mismatch(model, env_space)
    assert space_mismatch(model, gym.spaces.Discrete(3, start=1)) is None


def test_box_bounds_and_multidiscrete_sizes_are_compared():
    box = Space.from_json('{"type": "Box", "shape": [2], "low": [-1, "-inf"], "high": [1, "inf"]}', "observation_space")
    assert space_mismatch(box, gym.spaces.Box(np.array([-1, -np.inf], np.float32), np.array([1, np.inf], np.float32))) is None
    assert "high" in space_mismatch(box, gym.spaces.Box(np.array([-1, -np.inf], np.float32), np.array([2, np.inf], np.float32)))
    assert "shape" in space_mismatch(box, gym.spaces.Box(-1, 1, (3,)))
    md = Space.from_json('{"type": "MultiDiscrete", "nvec": [3, 2]}', "action_space")
    assert space_mismatch(md, gym.spaces.MultiDiscrete([3, 2])) is None
    assert "nvec=[3, 3]" in space_mismatch(md, gym.spaces.MultiDiscrete([3, 3]))


def test_run_episodes_raises_before_the_first_step():
    policy = OnnxPolicy(fixture_path("discrete"))
    with pytest.raises(CliError, match="Discrete"):
        run_episodes(policy, "CartPole-v1", 1)


class _RecordingEnv(gym.Env):
    """Box(3) observations, Discrete(3) actions (stateful_recurrent.onnx's spaces); episodes of
    ``length`` steps; observations drawn from the reset seed; records each (obs, action)."""

    observation_space = gym.spaces.Box(-5, 5, (3,), np.float32)
    action_space = gym.spaces.Discrete(3)

    def __init__(self, length=4):
        self.length, self.log = length, []

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.obs = self.np_random.uniform(-2, 2, size=3).astype(np.float32)
        self.log.append([])
        return self.obs, {}

    def step(self, action):
        self.log[-1].append((self.obs, int(action)))
        self.t += 1
        self.obs = self.np_random.uniform(-2, 2, size=3).astype(np.float32)
        return self.obs, 1.0, False, self.t >= self.length, {}


def test_run_resets_a_recurrent_policys_state_at_each_episode_start():
    from keras_trpo_serving.tests.test_stateful import rnn

    policy = OnnxPolicy(os.path.join(os.path.dirname(fixture_path("x")), "stateful_recurrent.onnx"))
    env = _RecordingEnv(length=6)
    result = run_episodes(policy, "Recording-v0", 5, env=env)
    assert result["returns"] == [6.0] * 5 and len(env.log) == 5
    carried, differ = np.zeros((1, 4), np.float32), 0
    for steps in env.log:  # each episode from zeros: the NumPy RNN restarted per episode
        h = np.zeros((1, 4), np.float32)
        for obs, action in steps:
            logits, h = rnn(obs[None], h)
            assert action == int(np.argmax(logits[0]))
            carried_logits, carried = rnn(obs[None], carried)
            differ += int(np.argmax(carried_logits[0])) != action
    assert differ > 0  # a state carried over from the previous episode would have acted otherwise


class _DictEnv(gym.Env):
    """stateful_dict.onnx's spaces: Dict(mode=Discrete(3, start=1), pos=Box(-1, 1, (2,))) -> Box(2);
    records each episode's (obs, action); the reward is action[0]."""

    observation_space = gym.spaces.Dict({"pos": gym.spaces.Box(-1, 1, (2,), np.float32),
                                         "mode": gym.spaces.Discrete(3, start=1)})
    action_space = gym.spaces.Box(-1, 1, (2,), np.float32)

    def __init__(self):
        self.log = []

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.obs = self.observation_space.sample()
        self.log.append([])
        return self.obs, {}

    def step(self, action):
        self.log[-1].append((self.obs, np.array(action)))
        self.t += 1
        self.obs = self.observation_space.sample()
        return self.obs, float(action[0]), False, self.t >= 3, {}


def test_run_passes_dict_observations_through():
    from keras_trpo_serving.tests.test_stateful import dict_features

    policy = OnnxPolicy(os.path.join(os.path.dirname(fixture_path("x")), "stateful_dict.onnx"))
    env = _DictEnv()
    env.observation_space.seed(0)
    result = run_episodes(policy, "Dict-v0", 2, env=env)
    assert result["episodes"] == 2 and [len(steps) for steps in env.log] == [3, 3]
    returns, inside = [], 0
    for steps in env.log:  # every action the run took, against the NumPy linear map of its observation
        total = 0.0
        for obs, action in steps:
            expected = np.clip(dict_features("stateful_dict", obs["mode"], obs["pos"], 2), -1, 1)[0]
            np.testing.assert_allclose(action, expected, atol=1e-5)
            inside += int(np.any(np.abs(expected) < 0.99))  # not only the bounds: the clip alone would pass
            total += float(expected[0])
        returns.append(total)
    assert inside > 0
    np.testing.assert_allclose(result["returns"], returns, atol=2e-3)  # the summary rounds to 3 decimals
