"""sb3-contrib TRPO's time per iteration, split into rollout, policy step and critic fit.

Run with a Python that has sb3-contrib. train() does the policy step and then the critic's
epochs; the policy step alone is measured by a second run with n_critic_updates=0.
Prints one JSON line of milliseconds per iteration (medians after a warm-up iteration).
Usage: python sb3_profile.py ENV ITERATIONS
"""
import json
import os
import statistics
import sys
import time

from sb3_contrib import TRPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

_SHARED = os.environ.get("SB3_BENCH_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench")
sys.path.insert(0, os.path.abspath(_SHARED))
import sb3_trpo  # noqa: E402  (the zoo settings; sets torch to one thread)


def timed(env_id: str, iterations: int, **override) -> dict:
    hp = dict(sb3_trpo.ZOO.get(env_id, {}), **override)
    normalize, n_envs = hp.pop("normalize", False), hp.pop("n_envs", 1)
    venv = make_vec_env(env_id, n_envs=n_envs, seed=0)
    if normalize:
        venv = VecNormalize(venv, gamma=hp.get("gamma", 0.99))
    model = TRPO("MlpPolicy", venv, seed=0, verbose=0, device="cpu", **hp)
    times = {"rollout": [], "train": []}
    for name, attr in (("rollout", "collect_rollouts"), ("train", "train")):
        original = getattr(model, attr)

        def wrapper(*a, _orig=original, _name=name, **kw):
            t = time.perf_counter()
            out = _orig(*a, **kw)
            times[_name].append(time.perf_counter() - t)
            return out

        setattr(model, attr, wrapper)
    model.learn(model.n_steps * n_envs * (iterations + 1))
    return {k: 1000 * statistics.median(v[1:]) for k, v in times.items()}


def main() -> None:
    env_id, iterations = sys.argv[1], int(sys.argv[2])
    full = timed(env_id, iterations)
    policy_only = timed(env_id, iterations, n_critic_updates=0)
    print(json.dumps({"impl": "sb3-contrib", "env": env_id, "rollout_ms": full["rollout"],
                      "policy_update_ms": policy_only["train"], "value_update_ms": full["train"] - policy_only["train"],
                      "update_ms": full["train"]}))


if __name__ == "__main__":
    main()
