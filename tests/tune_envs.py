"""An env for the tune tests whose evaluation score, and crash, are known in advance for each trial.

``keras-trpo tune`` trains trial k with seed ``SEED + k`` (one env, reset with that seed) and
evaluates it on env seeds 20000, 20001, ... in the same worker process. ``ProbeEnv`` remembers the
last training seed (a module global: training and evaluation envs live in one process with the
inline rollout backend), and its evaluation episodes last ``EVEN`` steps after a trial with an even
seed and ``ODD`` after an odd one, whatever the policy: even trials score 20, odd ones 5, so the
median pruner must prune an odd trial once an even one has completed. Training with a seed in
``CRASH_SEEDS`` raises, so those trials must be recorded as failed (two of them: the test kills the tune
while early trials run, and a trial running then is recorded as interrupted instead).

Made with ``gym.make("tests.tune_envs:KerasTrpoTuneProbe-v0")``: gymnasium imports this module first.
"""
import gymnasium as gym
import numpy as np

EVAL_SEEDS_FROM = 20_000
EVEN, ODD, TRAIN_LENGTH = 20, 5, 16
CRASH_SEEDS = (3, 7)
_last_training_seed = 0


class ProbeEnv(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        global _last_training_seed
        super().reset(seed=seed)
        if seed is not None and seed < EVAL_SEEDS_FROM:
            if seed in CRASH_SEEDS:
                raise RuntimeError(f"probe env: simulated crash on training seed {seed}")
            _last_training_seed = seed
        evaluating = seed is not None and seed >= EVAL_SEEDS_FROM
        self.length = (ODD if _last_training_seed % 2 else EVEN) if evaluating else TRAIN_LENGTH
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return np.array([self.t / 20.0, 1.0], np.float32)

    def step(self, action):
        self.t += 1
        return self._obs(), 1.0, self.t >= self.length, False, {}


if "KerasTrpoTuneProbe-v0" not in gym.registry:
    gym.register("KerasTrpoTuneProbe-v0", entry_point=ProbeEnv)
