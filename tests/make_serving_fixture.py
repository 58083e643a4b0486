"""Train a CartPole policy, export it to ONNX, and record the TF agent's actions.

serving/tests cannot import TensorFlow, so this writes what they compare against:
  DIR/cartpole.onnx          the exported policy
  DIR/cartpole_reference.npz obs [N, 4] float32 and the agent's actions [N] int64
Usage: python tests/make_serving_fixture.py DIR [--timesteps 100000]
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import export  # noqa: E402
import keras_trpo  # noqa: E402
from export.verify import verification_observations  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--timesteps", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    agent = keras_trpo.TRPO("CartPole-v1", seed=args.seed)
    agent.fit(args.timesteps, verbose=0)
    mean, _ = agent.evaluate(10)
    onnx_path = os.path.join(args.out, "cartpole.onnx")
    export.to_onnx(agent, onnx_path)
    obs = verification_observations(agent, n_sampled=5000, n_rollout=5000, seed=1)
    np.savez(os.path.join(args.out, "cartpole_reference.npz"), obs=obs, actions=agent.predict(obs).astype(np.int64))
    print(f"wrote {onnx_path} (agent eval mean {mean:.1f}) and {len(obs)} reference actions")


if __name__ == "__main__":
    main()
