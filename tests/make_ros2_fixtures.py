"""Policies for the ROS 2 node's tests and benchmark (keras_trpo_serving/ros2/), which run without
TensorFlow. Needs the training venv; run from the repository's root:

  python tests/make_ros2_fixtures.py --novel   # keras_trpo_serving/tests/fixtures/ros2_cartpolenovel_lstm.onnx (committed)
  python tests/make_ros2_fixtures.py --hopper  # benchmarks/results/ros2/hopper_policy.onnx (committed)

ros2_cartpolenovel_lstm: a recurrent (LSTM 16) agent on CartPoleNoVel-v1 (CartPole-v1 with the velocities
zeroed), trained briefly: the tests need its state to matter (resets change its actions), not a good
policy. hopper_policy: the default MLP (64, 64) Gaussian policy on Hopper-v5, trained briefly: the latency
benchmark needs Hopper's sizes (11 observations, 3 actions), not its returns.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import keras_trpo  # noqa: E402
from keras_trpo import export  # noqa: E402

FIXTURES = os.path.join(ROOT, "keras_trpo_serving", "tests", "fixtures")


def novel() -> None:
    agent = keras_trpo.TRPO("CartPoleNoVel-v1", seed=0, n_envs=4, n_steps=128, recurrent="lstm",
                            recurrent_units=16, recurrent_sequence_length=32, normalize_obs=True, jit_compile=False)
    agent.fit(8192, verbose=0)
    mean, _ = agent.evaluate(5)
    path = os.path.join(FIXTURES, "ros2_cartpolenovel_lstm.onnx")
    export.to_onnx(agent, path)
    print(f"wrote {path} (agent eval mean {mean:.1f})")


def hopper() -> None:
    agent = keras_trpo.TRPO("Hopper-v5", seed=0, n_envs=1, n_steps=1024, jit_compile=False)
    agent.fit(2048, verbose=0)
    out = os.path.join(ROOT, "benchmarks", "results", "ros2")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "hopper_policy.onnx")
    export.to_onnx(agent, path)
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--novel", action="store_true")
    p.add_argument("--hopper", action="store_true")
    a = p.parse_args()
    if a.novel:
        novel()
    if a.hopper:
        hopper()


if __name__ == "__main__":
    main()
