"""sb3-contrib TRPO child for compare.py: the zoo settings of ../shared/bench/sb3_trpo.py, plus a
learning curve and the rollout/update split. Run with a Python that has sb3-contrib.

Prints one JSON line. Usage: python sb3_runner.py ENV STEPS SEED
"""
import json
import os
import resource
import sys
import time

import numpy as np
from sb3_contrib import TRPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

# The reference settings and evaluation live in shared/bench; import them rather than restate them.
_SHARED = os.environ.get("SB3_BENCH_DIR") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench")
sys.path.insert(0, os.path.abspath(_SHARED))
import sb3_trpo  # noqa: E402  (sets torch.set_num_threads(1) as the reference does)


class CurveCallback(BaseCallback):
    """Mean of the last 100 training episodes at the end of every rollout, and rollout time."""

    def __init__(self, start: float):
        super().__init__()
        self.start, self.rollout_s, self.curve = start, 0.0, []

    def _on_rollout_start(self) -> None:
        self._t = time.perf_counter()

    def _on_rollout_end(self) -> None:
        self.rollout_s += time.perf_counter() - self._t
        buf = self.model.ep_info_buffer
        ret = float(np.mean([e["r"] for e in buf])) if buf else float("nan")
        self.curve.append((int(self.num_timesteps), time.perf_counter() - self.start, ret))

    def _on_step(self) -> bool:
        return True


def main() -> None:
    env_id, steps, seed = sys.argv[1], int(float(sys.argv[2])), int(sys.argv[3])
    hp = dict(sb3_trpo.ZOO.get(env_id, {}))
    normalize, n_envs = hp.pop("normalize", False), hp.pop("n_envs", 1)
    venv = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    if normalize:
        venv = VecNormalize(venv, gamma=hp.get("gamma", 0.99))
    model = TRPO("MlpPolicy", venv, seed=seed, verbose=0, device="cpu", **hp)
    start = time.perf_counter()
    cb = CurveCallback(start)
    model.learn(steps, callback=cb)
    wall = time.perf_counter() - start
    if normalize:
        venv.training = False
    mean, std = sb3_trpo.evaluate(model, env_id, venv)
    print(json.dumps(dict(impl="sb3-contrib", env=env_id, seed=seed, timesteps=int(model.num_timesteps), wall_s=wall,
                          steps_per_s=model.num_timesteps / wall, eval_mean=mean, eval_std=std, rollout_s=cb.rollout_s,
                          update_s=wall - cb.rollout_s,
                          peak_mem_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, curve=cb.curve)))


if __name__ == "__main__":
    main()
