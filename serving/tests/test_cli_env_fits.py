"""`serving run` refuses an env whose spaces differ from the model's in size or bounds, not only
in type and shape (a Discrete(3) policy was run in CartPole's Discrete(2))."""
import os
import subprocess
import sys

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium")

from serving import OnnxPolicy  # noqa: E402
from serving.cli import CliError, run_episodes  # noqa: E402
from serving.spaces import Space, space_mismatch  # noqa: E402
from serving.tests.conftest import ROOT, fixture_path  # noqa: E402


def test_a_discrete3_model_is_refused_in_a_discrete2_env():
    # discrete.onnx: Box(-5, 5, (4,)) -> Discrete(3, start=1); CartPole: a 4-dim Box -> Discrete(2)
    out = subprocess.run([sys.executable, "-m", "serving", "run", "--model", fixture_path("discrete"),
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
