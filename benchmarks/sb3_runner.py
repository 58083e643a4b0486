"""The sb3-contrib side of compare.py and profile_iteration.py. Run it from the checkout's root with a
Python that has sb3-contrib (torch, sb3-contrib, gymnasium[mujoco]; no TensorFlow, no keras_trpo install:
it imports keras_trpo.pomdp and benchmarks.benchutil from the checkout, NumPy and gymnasium only):

  python -m benchmarks.sb3_runner ENV STEPS SEED                    # train, evaluate; one "RESULT {json}" line
  python -m benchmarks.sb3_runner --recurrent-ppo ENV STEPS SEED    # the same with RecurrentPPO (the NoVel tasks)
  python -m benchmarks.sb3_runner --maskable-ppo ENV STEPS SEED     # MaskablePPO on a masked task (issue 29)
  python -m benchmarks.sb3_runner --profile ENV ITERATIONS [WARMUP [SEED]]  # ms per phase; one "RESULT {json}" line

Settings: rl-baselines3-zoo's tuned TRPO hyperparameters (hyperparams/trpo.yml), as in the
reference script shared/bench/sb3_trpo.py: VecNormalize (obs and reward) for MuJoCo, torch on
one thread, device cpu. Evaluation: 10 deterministic episodes on a fresh env seeded
10000..10009, observations normalised with the training statistics, frozen.

--recurrent-ppo: sb3-contrib's RecurrentPPO (MlpLstmPolicy) with rl-baselines3-zoo's
hyperparams/ppo_lstm.yml entry for the env as written (linear schedules, gSDE on PendulumNoVel),
on the velocity-masked tasks keras_trpo registers (keras_trpo.pomdp: numpy and gymnasium only, no
TensorFlow, so this Python needs no keras_trpo dependencies); evaluation carries the LSTM state
and resets it at each episode start.

--maskable-ppo: sb3-contrib's MaskablePPO (MlpPolicy) with its documented defaults (n_envs=1,
n_steps=2048, batch_size=64, n_epochs=10, learning_rate=3e-4, ...): rl-baselines3-zoo has no
MaskablePPO entry for these envs (nor for any gymnasium env), so there is nothing tuned to use. Masks
come from the env: its ``action_masks()`` method (JointLimits-v0, keras_trpo.joint_limits) or, when it
has only ``info["action_mask"]`` (Taxi-v4), an ``ActionMasker`` fed the mask of the last info. Invalid
actions (benchmarks/maskcount.py) are counted in training and in the evaluation, whose deterministic
episodes get the env's masks.
"""
from __future__ import annotations

import json
import statistics
import sys
import time

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import TRPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

import keras_trpo.joint_limits  # noqa: F401 - registers JointLimits-v0 and JointLimitsMemory-v0 (no TensorFlow)
import keras_trpo.pomdp  # noqa: F401 - registers CartPoleNoVel-v1 and PendulumNoVel-v1 (no TensorFlow)
from keras_trpo.presets import ZOO_TRPO, zoo_entry_for  # no TensorFlow either
from benchmarks.benchutil import decile_progress, episode_returns, peak_rss_mb, process_cpu_s
from benchmarks.maskcount import CountInvalid, masked_episodes
from keras_trpo_serving.action_masks import INFO as MASK_INFO
from keras_trpo_serving.action_masks import METHOD as MASK_METHOD
from keras_trpo_serving.action_masks import mask_method

torch.set_num_threads(1)

# The envs this runner sets up as rl-baselines3-zoo does, each with its zoo entry's hyperparameters (the zoo's
# Ant-v4, Swimmer-v4, ... entries for v5), read from keras_trpo.presets.ZOO_TRPO, the zoo's trpo.yml as data that
# keras_trpo's presets translate too: one source for both sides. Left out: the entry's bookkeeping, and gSDE
# for Pendulum (the reference runs, and keras_trpo, use a plain Gaussian). Ant-v5 and Swimmer-v5 are the two
# envs of issue 28's widened adoption rule.
ZOO_ENVS = ("CartPole-v1", "Pendulum-v1", "Hopper-v5", "HalfCheetah-v5", "Ant-v5", "Swimmer-v5")
_NOT_HYPERPARAMETERS = ("status", "n_timesteps", "policy", "use_sde", "sde_sample_freq")
ZOO = {env: {k: v for k, v in ZOO_TRPO[zoo_entry_for(env)].items() if k not in _NOT_HYPERPARAMETERS}
       for env in ZOO_ENVS}


def make_model(env_id: str, seed: int, **override) -> tuple[TRPO, object, bool]:
    """The zoo's TRPO for ``env_id`` (sb3-contrib's defaults, n_envs=1, for other envs)."""
    if env_id not in ZOO:
        print(f"notice: {env_id} has no zoo settings here; sb3-contrib defaults with n_envs=1", file=sys.stderr)
    hp = dict(ZOO.get(env_id, {}), **override)
    normalize, n_envs = hp.pop("normalize", False), hp.pop("n_envs", 1)
    venv = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    if normalize:
        venv = VecNormalize(venv, gamma=hp.get("gamma", 0.99))
    model = TRPO("MlpPolicy", venv, seed=seed, verbose=0, device="cpu", **hp)
    return model, venv, normalize


def hyperparameters(model: TRPO, venv) -> dict:
    """What the model actually runs with, in sb3-contrib's names (compare.py checks them)."""
    norm = isinstance(venv, VecNormalize)
    policy = model.policy
    hp = dict(n_envs=venv.num_envs, n_steps=model.n_steps, batch_size=model.batch_size, gamma=model.gamma,
              gae_lambda=model.gae_lambda, target_kl=model.target_kl, cg_max_steps=model.cg_max_steps,
              cg_damping=model.cg_damping, line_search_max_iter=model.line_search_max_iter,
              line_search_shrinking_factor=model.line_search_shrinking_factor, n_critic_updates=model.n_critic_updates,
              learning_rate=model.learning_rate if not callable(model.learning_rate) else model.learning_rate(1.0),
              normalize_advantage=model.normalize_advantage, sub_sampling_factor=model.sub_sampling_factor,
              norm_obs=norm and venv.norm_obs, norm_reward=norm and venv.norm_reward,
              clip_obs=venv.clip_obs if norm else None, net_arch=list(policy.net_arch["pi"]) if isinstance(
                  policy.net_arch, dict) else list(policy.net_arch), activation_fn=policy.activation_fn.__name__.lower())
    if hasattr(policy, "log_std"):
        hp["log_std_init"] = float(getattr(policy, "log_std_init", float("nan")))
    return hp


def evaluate(model: TRPO, env_id: str, venv, episodes: int = 10, seed: int = 10_000) -> tuple[float, float]:
    """Deterministic episodes on a fresh, unnormalised env; obs normalised with frozen training stats."""
    if isinstance(venv, VecNormalize):
        venv.training = False

    def act(obs):
        x = venv.normalize_obs(obs) if isinstance(venv, VecNormalize) else obs
        return model.predict(x, deterministic=True)[0]

    returns = episode_returns(env_id, act, episodes, seed)
    return float(np.mean(returns)), float(np.std(returns))


class CurveCallback(BaseCallback):
    """Per iteration: timesteps and the mean return of the last 100 training episodes (read at the
    end of the rollout), with the wall time after that iteration's update (as keras_trpo logs it);
    and the total time spent between on_rollout_start and on_rollout_end."""

    def __init__(self, start: float, total: int, label: str):
        super().__init__()
        self.start, self.progress = start, decile_progress(label, total)
        self.rollout_s, self.curve, self._pending = 0.0, [], None

    def _close_point(self) -> None:
        if self._pending is not None:
            t, ret = self._pending
            wall = time.perf_counter() - self.start
            self.curve.append((t, wall, ret))
            self._pending = None
            self.progress(t, ret, wall)

    def _on_rollout_start(self) -> None:
        self._close_point()
        self._t = time.perf_counter()

    def _on_rollout_end(self) -> None:
        self.rollout_s += time.perf_counter() - self._t
        buf = self.model.ep_info_buffer
        self._pending = (int(self.num_timesteps), float(np.mean([e["r"] for e in buf])) if buf else float("nan"))

    def _on_training_end(self) -> None:
        self._close_point()

    def _on_step(self) -> bool:
        return True


def train(env_id: str, steps: int, seed: int) -> dict:
    model, venv, _ = make_model(env_id, seed)
    hp = hyperparameters(model, venv)
    cpu0, start = time.process_time(), time.perf_counter()
    cb = CurveCallback(start, steps, f"sb3-contrib {env_id} seed {seed}")
    model.learn(steps, callback=cb)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    mean, std = evaluate(model, env_id, venv)
    n = int(model.num_timesteps)
    return dict(impl="sb3-contrib", env=env_id, seed=seed, timesteps=n, eval_mean=mean, eval_std=std, wall_s=wall,
                steps_per_s=n / wall, rollout_s=cb.rollout_s, update_s=wall - cb.rollout_s, cpu_s=cpu,
                process_cpu_s=process_cpu_s(), peak_mem_mb=peak_rss_mb(), curve=cb.curve, hyperparameters=hp, versions={"sb3_contrib": _version("sb3_contrib"),
                                                              "torch": torch.__version__})


def _version(module: str) -> str:
    return getattr(sys.modules.get(module), "__version__", "?")


def profile(env_id: str, iterations: int, warmup: int, seed: int = 0) -> dict:
    """Milliseconds per iteration (median over ``iterations`` after ``warmup``) of sb3-contrib's phases.

    rollout: collect_rollouts (it includes the value predictions and GAE, which sb3 does while
    collecting; GAE alone is reported as gae_ms). train(): the policy step, then the critic's
    n_critic_updates epochs. The split between the two is exact, in the same run: the critic loop
    begins with the first rollout_buffer.get(batch_size) call of train() (the policy step's single
    get(None) comes first).
    """
    model, venv, _ = make_model(env_id, seed)
    hp = hyperparameters(model, venv)
    rec: dict[str, list] = {"rollout": [], "gae": [], "train": [], "policy": [], "critic": []}
    state = {}

    def timed(obj, attr, on_done):
        original = getattr(obj, attr)

        def wrapper(*a, **kw):
            t = time.perf_counter()
            out = original(*a, **kw)
            on_done(t, time.perf_counter())
            return out

        setattr(obj, attr, wrapper)

    buffer = model.rollout_buffer
    original_get = buffer.get

    def get(batch_size=None):
        if batch_size is not None and state.get("critic_start") is None:
            state["critic_start"] = time.perf_counter()
        return original_get(batch_size)

    buffer.get = get
    timed(buffer, "compute_returns_and_advantage", lambda t0, t1: rec["gae"].append(t1 - t0))
    timed(model, "collect_rollouts", lambda t0, t1: rec["rollout"].append(t1 - t0))

    def train_done(t0, t1):
        c = state.pop("critic_start", None) or t1
        rec["train"].append(t1 - t0)
        rec["policy"].append(c - t0)
        rec["critic"].append(t1 - c)

    timed(model, "train", train_done)
    model.learn(model.n_steps * model.n_envs * (warmup + iterations))
    ms = {k: 1000 * statistics.median(v[warmup:]) for k, v in rec.items()}
    return {"impl": "sb3-contrib", "env": env_id, "iterations": iterations, "warmup": warmup,
            "steps_per_iteration": model.n_steps * model.n_envs, "rollout_ms": ms["rollout"], "gae_ms": ms["gae"],
            "policy_update_ms": ms["policy"], "value_update_ms": ms["critic"], "update_ms": ms["train"],
            "iteration_ms": ms["rollout"] + ms["train"], "hyperparameters": hp}


def _linear(start: float):
    """The zoo's ``lin_X``: X times the remaining progress (1 -> 0 over training)."""
    return lambda progress_remaining: progress_remaining * start


# rl-baselines3-zoo hyperparams/ppo_lstm.yml @ 038ab16 (keras_trpo.presets.ZOO_PPO_LSTM), lin_X as _linear(X).
ZOO_PPO_LSTM = {
    "CartPoleNoVel-v1": dict(n_envs=8, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                             ent_coef=0.0, learning_rate=_linear(0.001), clip_range=_linear(0.2)),
    "PendulumNoVel-v1": dict(n_envs=4, n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0,
                             learning_rate=1e-3, clip_range=0.2, use_sde=True, sde_sample_freq=4),
}


def train_recurrent_ppo(env_id: str, steps: int, seed: int) -> dict:
    from sb3_contrib import RecurrentPPO

    if env_id not in ZOO_PPO_LSTM:
        raise SystemExit(f"--recurrent-ppo knows the zoo's settings for {', '.join(ZOO_PPO_LSTM)}, not {env_id}")
    hp = dict(ZOO_PPO_LSTM[env_id])
    venv = make_vec_env(env_id, n_envs=hp.pop("n_envs"), seed=seed)
    model = RecurrentPPO("MlpLstmPolicy", venv, seed=seed, verbose=0, device="cpu", **hp)
    p = model.policy
    used = dict(n_envs=venv.num_envs, n_steps=model.n_steps, batch_size=model.batch_size, gamma=model.gamma,
                gae_lambda=model.gae_lambda, n_epochs=model.n_epochs, ent_coef=model.ent_coef, use_sde=model.use_sde,
                lstm_hidden_size=p.lstm_actor.hidden_size, enable_critic_lstm=p.lstm_critic is not None,
                net_arch=p.net_arch if isinstance(p.net_arch, list) else dict(p.net_arch))
    cpu0, start = time.process_time(), time.perf_counter()
    cb = CurveCallback(start, steps, f"RecurrentPPO {env_id} seed {seed}")
    model.learn(steps, callback=cb)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    memory = {}  # the LSTM state and whether the episode just started, carried between steps

    def start() -> None:
        memory.update(state=None, start=np.ones((1,), bool))

    def act(obs):
        action, memory["state"] = model.predict(obs, state=memory["state"], episode_start=memory["start"],
                                                deterministic=True)
        memory["start"] = np.zeros((1,), bool)
        return action

    returns = episode_returns(env_id, act, 10, 10_000, on_reset=start)
    n = int(model.num_timesteps)
    return dict(impl="sb3-contrib-RecurrentPPO", env=env_id, seed=seed, timesteps=n, eval_mean=float(np.mean(returns)),
                eval_std=float(np.std(returns)), wall_s=wall, steps_per_s=n / wall, rollout_s=cb.rollout_s,
                update_s=wall - cb.rollout_s, cpu_s=cpu, process_cpu_s=process_cpu_s(), peak_mem_mb=peak_rss_mb(),
                curve=cb.curve, hyperparameters=used,
                versions={"sb3_contrib": _version("sb3_contrib"), "torch": torch.__version__})


def masked_env(env: gym.Env) -> gym.Env:
    """``env`` counting invalid actions (``CountInvalid``), with an ``ActionMasker`` fed from the last
    info when the env has no ``action_masks()`` method of its own (gymnasium's ``info["action_mask"]``)."""
    from sb3_contrib.common.wrappers import ActionMasker

    counted = CountInvalid(env)
    if mask_method(env) is not None:
        return counted
    return ActionMasker(counted, lambda e: np.asarray(e.get_wrapper_attr("last_mask")) != 0)


def train_maskable_ppo(env_id: str, steps: int, seed: int) -> dict:
    from sb3_contrib import MaskablePPO

    venv = make_vec_env(env_id, n_envs=1, seed=seed, wrapper_class=masked_env)
    model = MaskablePPO("MlpPolicy", venv, seed=seed, verbose=0, device="cpu")
    used = dict(n_envs=venv.num_envs, n_steps=model.n_steps, batch_size=model.batch_size, n_epochs=model.n_epochs,
                gamma=model.gamma, gae_lambda=model.gae_lambda, ent_coef=model.ent_coef, vf_coef=model.vf_coef,
                max_grad_norm=model.max_grad_norm, learning_rate=model.learning_rate,
                clip_range=model.clip_range(1.0), normalize_advantage=model.normalize_advantage,
                net_arch=model.policy.net_arch if isinstance(model.policy.net_arch, list) else dict(model.policy.net_arch),
                activation_fn=model.policy.activation_fn.__name__.lower(),
                masks=MASK_METHOD if mask_method(venv.envs[0].unwrapped) is not None else MASK_INFO)
    cpu0, start = time.process_time(), time.perf_counter()
    cb = CurveCallback(start, steps, f"MaskablePPO {env_id} seed {seed}")
    model.learn(steps, callback=cb)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    counters = [e.get_wrapper_attr("invalid") for e in venv.envs]
    returns, eval_invalid = masked_episodes(
        env_id, lambda obs, mask: model.predict(obs, deterministic=True, action_masks=mask)[0], 10, 10_000)
    n = int(model.num_timesteps)
    return dict(impl="sb3-contrib-MaskablePPO", env=env_id, seed=seed, timesteps=n,
                eval_mean=float(np.mean(returns)), eval_std=float(np.std(returns)), wall_s=wall, steps_per_s=n / wall,
                rollout_s=cb.rollout_s, update_s=wall - cb.rollout_s, cpu_s=cpu, process_cpu_s=process_cpu_s(),
                peak_mem_mb=peak_rss_mb(), curve=cb.curve, hyperparameters=used,
                invalid_actions_train=int(sum(counters)), invalid_actions_eval=int(eval_invalid),
                eval_returns=[float(r) for r in returns],
                versions={"sb3_contrib": _version("sb3_contrib"), "torch": torch.__version__})


def main(argv: list[str]) -> int:
    for flag, fn in (("--recurrent-ppo", train_recurrent_ppo), ("--maskable-ppo", train_maskable_ppo)):
        if argv and argv[0] == flag:
            if len(argv) != 4:
                print(__doc__, file=sys.stderr)
                return 2
            print("RESULT " + json.dumps(fn(argv[1], int(float(argv[2])), int(argv[3]))), flush=True)
            return 0
    if argv and argv[0] == "--profile":
        if len(argv) not in (3, 4, 5):
            print(__doc__, file=sys.stderr)
            return 2
        result = profile(argv[1], int(argv[2]), *(int(x) for x in argv[3:]))
    else:
        if len(argv) != 3:
            print(__doc__, file=sys.stderr)
            return 2
        result = train(argv[0], int(float(argv[1])), int(argv[2]))
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
