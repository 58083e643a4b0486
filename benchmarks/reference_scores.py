"""The two fixed points of stats.py's normalised scores: a random policy's return -> 0, a stated reference -> 1.

  python -m benchmarks.reference_scores [--episodes 100] [--out benchmarks/results/reference_scores.json] [--env ENV ...]

``--env`` measures only those envs and keeps the file's other entries.

The random score is measured here with the final evaluation's protocol (compare.py: fresh env,
episode i reset with seed 10000 + i, undiscounted return, no normalisation), the action drawn
uniformly from the action space (its own stream seeded 0), mean over ``--episodes``.

The references (1.0), and why:
- CartPole-v1: 500, the highest return there is (reward 1 per step, episodes truncated at 500).
- Pendulum-v1: 0, the highest return there is (every step's reward is -(θ² + 0.1 θ̇² + 0.001 u²) ≤ 0).
  No policy reaches it from the random start states: a policy that swings up and holds scores
  about -140 to -150, i.e. ~0.88 on this scale, so 1.0 is a bound, not a target.
- Hopper-v5 and HalfCheetah-v5: 3234.3 and 12135.0, D4RL's expert scores (Fu et al. 2020,
  REF_MAX_SCORE, the return of an SAC expert on Hopper/HalfCheetah-v2, whose rewards v5 keeps).
  MuJoCo returns have no upper bound, and this is the scale most papers on these tasks use.
- Ant-v5 (issue 28's widened rule): 3879.7, D4RL's expert score for Ant, on the same scale as Hopper and
  HalfCheetah. Swimmer-v5: D4RL has no Swimmer, so 360, the return gymnasium's registry calls solved
  (``gym.spec("Swimmer-v5").reward_threshold``).
- CartPoleNoVel-v1 and PendulumNoVel-v1 (the recurrent benchmark's masked tasks): the same bounds as
  CartPole-v1 and Pendulum-v1, whose dynamics and rewards they keep (only the velocities are hidden).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

from benchmarks.benchutil import RESULTS, episode_returns
from keras_trpo_serving.files import atomic_write_text

DEFAULT_PATH = os.path.join(RESULTS, "reference_scores.json")
EVAL_SEED = 10_000  # compare.py's evaluation seeds (compare.EVAL_SEED, not imported to keep this free of it)
REFERENCES = {
    "CartPole-v1": (500.0, "maximum return (reward 1 per step, truncated at 500 steps)"),
    "Pendulum-v1": (0.0, "maximum return (every reward is <= 0); a swing-up policy scores about -140 to -150"),
    "Hopper-v5": (3234.3, "D4RL expert score for Hopper (Fu et al. 2020, REF_MAX_SCORE; SAC expert)"),
    "HalfCheetah-v5": (12135.0, "D4RL expert score for HalfCheetah (Fu et al. 2020, REF_MAX_SCORE; SAC expert)"),
    "CartPoleNoVel-v1": (500.0, "maximum return (CartPole-v1 without the velocities: reward 1 per step, 500 steps)"),
    "PendulumNoVel-v1": (0.0, "maximum return (Pendulum-v1 without the angular velocity: every reward is <= 0)"),
    "Ant-v5": (3879.7, "D4RL expert score for Ant (Fu et al. 2020, REF_MAX_SCORE; SAC expert)"),
    "Swimmer-v5": (360.0, "gymnasium's reward_threshold for Swimmer-v5 (D4RL has no Swimmer)"),
}


def random_score(env_id: str, episodes: int, seed: int = EVAL_SEED) -> tuple[float, float]:
    """Mean and standard deviation of the return of uniformly random actions over ``episodes`` episodes."""
    import gymnasium as gym
    import numpy as np

    import keras_trpo.pomdp  # noqa: F401 - registers CartPoleNoVel-v1 and PendulumNoVel-v1
    probe = gym.make(env_id)
    space = probe.action_space  # the evaluation env's action space, sampled from its own stream
    probe.close()
    space.seed(0)
    returns = episode_returns(env_id, lambda obs: space.sample(), episodes, seed)
    return float(np.mean(returns)), float(np.std(returns))


def load(path: str = DEFAULT_PATH) -> dict:
    """``{env: {"random": float, "reference": float, ...}}`` as written by this script.

    Raises FileNotFoundError with the command that makes the file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist; make it with: python -m benchmarks.reference_scores")
    with open(path) as f:
        return json.load(f)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--out", default=DEFAULT_PATH)
    p.add_argument("--env", nargs="+", choices=sorted(REFERENCES), default=None,
                   help="measure only these envs and keep the file's other entries")
    a = p.parse_args(argv)
    if a.episodes < 1:
        p.error("--episodes must be at least 1")
    out = {k: v for k, v in load(a.out).items() if k != "_about"} if a.env and os.path.exists(a.out) else {}
    for env_id in a.env or REFERENCES:
        reference, why = REFERENCES[env_id]
        mean, std = random_score(env_id, a.episodes)
        out[env_id] = {"random": round(mean, 3), "random_std": round(std, 3), "random_episodes": a.episodes,
                       "reference": reference, "reference_is": why}
        print(f"{env_id}: random {mean:.1f} ± {std:.1f} ({a.episodes} episodes), reference {reference:g}")
    out["_about"] = {"random": f"uniform random actions, episode i reset with seed {EVAL_SEED} + i, undiscounted "
                               "return (benchmarks/reference_scores.py)",
                     "normalised": "(return - random) / (reference - random)",
                     "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")}
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    atomic_write_text(a.out, json.dumps(out, indent=1) + "\n")
    print(a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
