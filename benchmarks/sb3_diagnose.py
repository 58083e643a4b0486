"""sb3-contrib's side of diagnose.py: the same per-iteration columns, under the sb3 Python.

  SB3_PYTHON -m benchmarks.sb3_diagnose ENV STEPS SEED [--out DIR] [--obs-stats step|rollout]
                                        [--reward-stats step|rollout]

The zoo's settings from sb3_runner.py; one JSON file ``OUT/sb3-contrib/ENV/seed_N.json``, written
atomically, the same layout as diagnose.py's. Per iteration: ``mean_return`` (last 100 training
episodes), ``kl`` (sb3-contrib's ``train/kl_divergence_loss`` x the action dimension, so that it is the
KL of the whole action as keras_trpo logs it), ``policy_std``, ``explained_variance``, ``value_loss``,
``adv_std`` (GAE advantages before normalisation), ``obs_mean_abs`` / ``obs_std_mean`` (VecNormalize's
statistics) and ``norm_kl``: how far VecNormalize's per-step updates during one rollout move the
policy, KL(pi with the statistics at the rollout's start || pi with those at its end), same
parameters, over the rollout's observations (recovered from the stored normalised ones with the
end statistics: an approximation, since each was normalised with the statistics of its own step).

``--obs-stats rollout`` moves VecNormalize's observation statistics as keras_trpo's normaliser does: frozen
while a rollout is collected, then updated with all of its observations at once (so they lag one rollout;
one batch update equals the per-step ones, Chan et al.'s parallel formula). Stored under
``OUT/sb3-contrib-obs-rollout/``. ``--reward-stats rollout`` does the same to the statistics of the discounted
returns that scale the rewards (``-reward-rollout`` in the folder's name).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize

from benchmarks.benchutil import RESULTS
from benchmarks.sb3_runner import evaluate, make_model
from keras_trpo_serving.files import atomic_write_text

DEFAULT_OUT = os.path.join(RESULTS, "diagnostics")


class DeferredStats(RunningMeanStd):
    """One of VecNormalize's statistics (``obs_rms``, ``ret_rms``) whose ``update`` only collects;
    ``flush`` applies what was collected in one update. A RunningMeanStd itself, as VecNormalize checks."""

    def __init__(self, rms: RunningMeanStd):
        super().__init__(shape=rms.mean.shape)
        self.mean, self.var, self.count = rms.mean.copy(), rms.var.copy(), rms.count
        self.pending: list[np.ndarray] = []

    def update(self, x: np.ndarray) -> None:
        self.pending.append(np.array(x, dtype=np.float64))

    def flush(self) -> None:
        if self.pending:
            super().update(np.concatenate(self.pending))
            self.pending = []


# The options that defer one of VecNormalize's statistics to the rollout's end, and which statistics.
DEFERRABLE = {"obs_stats": "obs_rms", "reward_stats": "ret_rms"}


class DiagnosticsCallback(BaseCallback):
    def __init__(self, venv):
        super().__init__()
        self.venv, self.rows, self._start_stats, self._pending = venv, [], None, None

    def _stats(self):
        rms = self.venv.obs_rms if isinstance(self.venv, VecNormalize) else None
        return None if rms is None else (rms.mean.copy(), rms.var.copy())

    def _flush(self) -> None:
        """Close the previous iteration's row with what its train() logged."""
        if self._pending is None:
            return
        logged = self.model.logger.name_to_value
        d = int(np.prod(self.model.action_space.shape)) if self.model.action_space.shape else 1
        row = self._pending
        row.update(kl=float(logged.get("train/kl_divergence_loss", np.nan)) * d,
                   policy_std=float(logged.get("train/std", np.nan)),
                   explained_variance=float(logged.get("train/explained_variance", np.nan)),
                   value_loss=float(logged.get("train/value_loss", np.nan)),
                   step_accepted=float(logged.get("train/is_line_search_success", np.nan)))
        self.rows.append(row)
        self._pending = None

    def _on_rollout_start(self) -> None:
        self._flush()
        self._start_stats = self._stats()

    def _on_rollout_end(self) -> None:
        # A deferred obs_rms: the rollout's observations were all normalised with the statistics it started with.
        deferred = isinstance(getattr(self.venv, "obs_rms", None), DeferredStats)
        for name in DEFERRABLE.values():
            stats = getattr(self.venv, name, None)
            if isinstance(stats, DeferredStats):
                stats.flush()
        buf, model = self.model.rollout_buffer, self.model
        ep = model.ep_info_buffer
        row = dict(iteration=len(self.rows), timesteps=float(self.num_timesteps),
                   mean_return=float(np.mean([e["r"] for e in ep])) if ep else float("nan"),
                   adv_std=float(np.std(buf.advantages)), return_std=float(np.std(buf.returns)))
        end = self._stats()
        if end is not None:
            row.update(obs_mean_abs=float(np.mean(np.abs(end[0]))), obs_std_mean=float(np.mean(np.sqrt(end[1]))))
            eps, clip = self.venv.epsilon, self.venv.clip_obs
            z = buf.observations.reshape(-1, buf.observations.shape[-1]).astype(np.float64)
            basis = self._start_stats if deferred else end
            raw = z * np.sqrt(basis[1] + eps) + basis[0]
            row["norm_kl"] = self._kl(np.clip((raw - self._start_stats[0]) / np.sqrt(self._start_stats[1] + eps), -clip, clip),
                                      np.clip((raw - end[0]) / np.sqrt(end[1] + eps), -clip, clip))
        self._pending = row

    def _kl(self, a: np.ndarray, b: np.ndarray) -> float:
        policy = self.model.policy
        with torch.no_grad():
            da = policy.get_distribution(torch.as_tensor(a, dtype=torch.float32)).distribution
            db = policy.get_distribution(torch.as_tensor(b, dtype=torch.float32)).distribution
            kl = torch.distributions.kl_divergence(da, db)
        return float(kl.reshape(kl.shape[0], -1).sum(-1).mean())

    def _on_training_end(self) -> None:
        self._flush()

    def _on_step(self) -> bool:
        return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("env")
    p.add_argument("steps", type=float)
    p.add_argument("seed", type=int)
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--obs-stats", choices=["step", "rollout"], default="step",
                   help="when VecNormalize's observation statistics move: every step (sb3's) or once per rollout")
    p.add_argument("--reward-stats", choices=["step", "rollout"], default="step",
                   help="when VecNormalize's return statistics (which scale the rewards) move")
    a = p.parse_args(argv)
    mode = "sb3-contrib" + ("-obs-rollout" if a.obs_stats == "rollout" else "") + \
        ("-reward-rollout" if a.reward_stats == "rollout" else "")
    path = os.path.join(a.out, mode, a.env, f"seed_{a.seed}.json")
    if os.path.exists(path):
        print(f"stored: {path}")
        return 0
    torch.set_num_threads(1)
    model, venv, _ = make_model(a.env, a.seed)
    for option, name in DEFERRABLE.items():
        if getattr(a, option) == "rollout":
            if not isinstance(venv, VecNormalize):
                p.error(f"--{option.replace('_', '-')} rollout: the zoo's settings for {a.env} do not normalise")
            setattr(venv, name, DeferredStats(getattr(venv, name)))
    cb = DiagnosticsCallback(venv)
    start = time.perf_counter()
    model.learn(int(a.steps), callback=cb)
    wall = time.perf_counter() - start
    mean, std = evaluate(model, a.env, venv)
    result = dict(env=a.env, seed=a.seed, mode=mode, timesteps=int(model.num_timesteps), eval_mean=mean,
                  eval_std=std, wall_s=wall, rows=cb.rows)
    atomic_write_text(path, json.dumps(result))
    print(f"{mode} {a.env} seed {a.seed}: eval {mean:.1f} +- {std:.1f}, last mean_return "
          f"{cb.rows[-1]['mean_return']:.1f}, {wall:.0f} s -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
