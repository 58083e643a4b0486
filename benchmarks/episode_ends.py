"""Why a CartPole policy's episodes end: the cart out of bounds, the pole down, or the time limit.

    python -m benchmarks.episode_ends ENV SEED --out DIR [--set NAME=VALUE ...] [--timesteps 100000] [--episodes 10]

Trains keras_trpo on ENV (``CartPole-v1`` or ``CartPoleNoVel-v1``; the env's keras-trpo preset plus ``--set``)
with SEED, as ``benchmarks.seeds`` does, saves the agent to ``DIR/seed_SEED.keras`` (or loads it if it is
there), then runs the final evaluation's deterministic episodes (env seeds 10000+, as seeds.py's) and records
for each how it ended: its length and the cart position ``x`` and pole angle ``theta`` of the last state,
read from the unmasked simulator state (``env.unwrapped.state``). CartPole ends an episode when
``|x| > 2.4`` or ``|theta| > 12 degrees`` (0.2095 rad; read from the env, ``x_threshold`` and
``theta_threshold_radians``), or at 500 steps. The result goes to
``DIR/seed_SEED.json`` and one line per seed is printed.

Issue 28: the CartPoleNoVel-v1 seeds that end near 170 or 120 do so with the cart at the bound and the pole
upright (``benchmarks/results/ahead/cartpolenovel/README.md``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.compare import parse_set

def episode_ends(agent, env_id: str, episodes: int, first_seed: int = 10_000, recurrent: bool = True) -> list[dict]:
    """Deterministic episodes of ``agent`` on ``env_id``: length, last ``x`` and ``theta``, and the reason.
    A ``recurrent`` agent is given its state and the episode starts; a feed-forward one takes neither."""
    import gymnasium as gym
    import numpy as np

    import keras_trpo.pomdp  # noqa: F401 - registers CartPoleNoVel-v1

    env = gym.make(env_id)
    rows = []
    for k in range(episodes):
        obs, _ = env.reset(seed=first_seed + k)
        state, start, length = None, True, 0
        while True:
            if recurrent:
                action, state = agent.predict(obs, state=state, episode_start=np.array([start]), deterministic=True)
            else:
                action = agent.predict(obs, deterministic=True)
            start = False
            obs, _, terminated, truncated, _ = env.step(action)
            length += 1
            if terminated or truncated:
                cartpole = env.unwrapped  # gymnasium's CartPoleEnv: its state and its own limits
                x, _, theta, _ = (float(v) for v in cartpole.state)
                reason = ("time limit" if not terminated else "cart out of bounds" if abs(x) > cartpole.x_threshold
                          else "pole down" if abs(theta) > cartpole.theta_threshold_radians else "other")
                rows.append(dict(episode=k, length=length, x=x, theta=theta, reason=reason))
                break
    env.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.episode_ends", description=__doc__.split("\n")[0])
    p.add_argument("env")
    p.add_argument("seed", type=int)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--timesteps", type=int, default=100_000)
    p.add_argument("--episodes", type=int, default=10)
    a = p.parse_args(argv)
    if not a.env.startswith("CartPole"):
        p.error(f"{a.env}: only CartPole envs have the cart and pole limits this reads")

    import keras_trpo
    from keras_trpo_serving.files import atomic_write_text

    a.out.mkdir(parents=True, exist_ok=True)
    path = a.out / f"seed_{a.seed}.keras"
    overrides = parse_set(a.set)
    if path.exists():
        agent = keras_trpo.load(str(path))
    else:
        agent = keras_trpo.TRPO(a.env, seed=a.seed, **overrides)
        agent.fit(a.timesteps, verbose=0)
        agent.save(str(path))
    rows = episode_ends(agent, a.env, a.episodes, recurrent=bool(agent.config.recurrent))
    agent.close()
    result = dict(env=a.env, seed=a.seed, timesteps=a.timesteps, overrides=overrides,
                  mean_length=sum(r["length"] for r in rows) / len(rows), episodes=rows)
    atomic_write_text(a.out / f"seed_{a.seed}.json", json.dumps(result, indent=1) + "\n")
    reasons = sorted({r["reason"] for r in rows})
    print(f"{a.env} seed {a.seed}: mean length {result['mean_length']:.1f}; ended by {', '.join(reasons)}; "
          f"last x {[round(r['x'], 2) for r in rows]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
