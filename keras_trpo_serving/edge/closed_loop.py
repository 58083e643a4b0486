"""Two exported policies in the same env on the same seeds: returns side by side, and the second
policy's actions on the first one's trajectories (lockstep), so a difference in returns can be
told apart from a difference in the policy.

    python -m keras_trpo_serving.edge.closed_loop --model cartpole.onnx --other cartpole_c --env CartPole-v1

Returns come from ``keras_trpo_serving.cli.run_episodes`` (what ``python -m keras_trpo_serving run`` prints: episode
``i`` is reset with seed ``seed + i``, deterministic actions). Lockstep: ``--model`` drives the
env; at every state the ``--other`` policy's action is computed too, and the worst difference
(or the number of differing discrete actions) is reported. In a chaotic env (Hopper) float
actions that agree to 1e-6 still end in returns that differ after hundreds of steps; in
CartPole, whose actions are discrete, returns must be equal. No TensorFlow.
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from keras_trpo_serving.cli import run_episodes
from keras_trpo_serving.errors import ServingError
from keras_trpo_serving.load import load_policy


def lockstep(driver, other, env_id: str, episodes: int, seed: int) -> dict:
    import gymnasium as gym

    env = gym.make(env_id)
    worst, differing, steps = 0.0, 0, 0
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            driver.reset(), other.reset()  # recurrent policies start each episode from zeros
            done = False
            while not done:
                a, b = driver.act(obs), other.act(obs)
                diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
                worst = max(worst, float(np.max(diff)) if diff.size else 0.0)
                differing += int(np.any(diff != 0))
                steps += 1
                obs, _, terminated, truncated, _ = env.step(a)
                done = terminated or truncated
    finally:
        env.close()
    return {"steps": steps, "worst_action_difference": worst, "steps_with_any_difference": differing}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m keras_trpo_serving.edge.closed_loop", description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="the reference policy (e.g. the .onnx file)")
    p.add_argument("--other", required=True, help="the policy to compare (e.g. the C export's directory)")
    p.add_argument("--env", default=None, help="gymnasium env id (default: the model's metadata)")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=10000)
    a = p.parse_args(argv)
    try:
        ref, other = load_policy(a.model, seed=a.seed), load_policy(a.other, seed=a.seed)
    except (ServingError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    env_id = a.env or ref.metadata.get("env_id")
    r_ref = run_episodes(ref, env_id, a.episodes, a.seed, True)["returns"]
    r_other = run_episodes(other, env_id, a.episodes, a.seed, True)["returns"]
    out = {"env": env_id, "episodes": a.episodes, "seed": a.seed, "model": a.model, "other": a.other,
           "returns_model": r_ref, "returns_other": r_other, "equal": r_ref == r_other,
           "max_abs_return_difference": float(np.max(np.abs(np.subtract(r_ref, r_other)))),
           "mean_model": round(float(np.mean(r_ref)), 3), "mean_other": round(float(np.mean(r_other)), 3),
           "lockstep": lockstep(ref, other, env_id, a.episodes, a.seed)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
