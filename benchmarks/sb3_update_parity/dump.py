"""``dump``: sb3-contrib's side, run under its Python (no TensorFlow): what its ``train()`` saw and did, per iteration."""
from __future__ import annotations

import io
import json
import os

import numpy as np


def dump(env_id: str, seed: int, at: list[int], out: str) -> list[str]:
    import sb3_contrib.trpo.trpo as trpo_module
    import torch

    from benchmarks.sb3_runner import make_model
    from keras_trpo_serving.files import atomic_write_bytes

    torch.set_num_threads(1)
    model, _, _ = make_model(env_id, seed)
    original_train, original_cg = model.train, trpo_module.conjugate_gradient_solver
    written: list[str] = []

    buffer, original_gae, gae = model.rollout_buffer, model.rollout_buffer.compute_returns_and_advantage, {}

    def compute_returns_and_advantage(last_values, dones) -> None:
        # GAE's inputs as the buffer holds them, [n_steps, n_envs] (train() flattens them): truncated episodes'
        # bootstrap values are already in the rewards (SB3's collect_rollouts adds gamma V(final observation))
        gae.clear()
        gae.update({"gae/rewards": buffer.rewards.copy(), "gae/values": buffer.values.copy(),
                    "gae/episode_starts": buffer.episode_starts.copy(),
                    "gae/last_values": last_values.detach().cpu().numpy().reshape(-1).copy(),
                    "gae/dones": np.asarray(dones, np.float32).reshape(-1)})
        original_gae(last_values, dones)
        gae["gae/advantages"] = buffer.advantages.copy()

    buffer.compute_returns_and_advantage = compute_returns_and_advantage

    def params() -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in model.policy.state_dict().items()}  # float32, as trained

    def train() -> None:
        iteration = model._n_updates + 1
        if iteration not in at:
            return original_train()
        before, perms, cg = params(), [], {}
        adam = {}
        for name, p in model.policy.named_parameters():
            state = model.policy.optimizer.state.get(p)
            if "value" in name and state:
                adam[f"adam_m/{name}"] = state["exp_avg"].numpy().copy()
                adam[f"adam_v/{name}"] = state["exp_avg_sq"].numpy().copy()
                adam["adam_step"] = np.asarray(float(state["step"]))
        permutation = np.random.permutation

        def recording_permutation(n):
            p = permutation(n)
            perms.append(np.asarray(p, np.int16 if n <= np.iinfo(np.int16).max else np.int32))  # random: int64 would not compress
            return p

        def recording_cg(fn, b, *a, **kw):
            x = original_cg(fn, b, *a, **kw)
            cg["gradient"], cg["direction"] = b.detach().numpy().copy(), x.detach().numpy().copy()
            cg["direction_fvp"] = fn(x.detach(), retain_graph=True).detach().numpy()
            return x

        np.random.permutation, trpo_module.conjugate_gradient_solver = recording_permutation, recording_cg
        try:
            original_train()
        finally:
            np.random.permutation, trpo_module.conjugate_gradient_solver = permutation, original_cg
        after, buf = params(), model.rollout_buffer  # train() has flattened the buffer to [n_envs * n_steps, ...]
        logged = {k: float(v) for k, v in model.logger.name_to_value.items() if k.startswith("train/")}
        arrays = dict(obs=buf.observations.reshape(len(buf.observations), -1), actions=buf.actions.reshape(len(buf.actions), -1),
                      advantages=buf.advantages.reshape(-1), returns=buf.returns.reshape(-1), old_log_prob=buf.log_probs.reshape(-1),
                      values=buf.values.reshape(-1), **gae, **{f"perm_{i}": p for i, p in enumerate(perms)},
                      **{f"before/{k}": v for k, v in before.items()}, **{f"after/{k}": v for k, v in after.items()},
                      **adam, **cg, meta=np.asarray(json.dumps(dict(env=env_id, seed=seed, iteration=iteration,
                                                                     timesteps=int(model.num_timesteps), logged=logged,
                                                                     target_kl=model.target_kl, cg_damping=model.cg_damping,
                                                                     adam_epsilon=model.policy.optimizer.defaults["eps"],
                                                                     gamma=model.gamma, gae_lambda=model.gae_lambda))))
        path = os.path.join(out, f"{env_id}_seed{seed}_iter{iteration}.npz")
        data = io.BytesIO()
        np.savez_compressed(data, **arrays)
        atomic_write_bytes(path, data.getvalue())
        written.append(path)
        std = f", std {logged['train/std']:.4f}" if "train/std" in logged else ""  # a Gaussian policy's
        print(f"iteration {iteration} ({model.num_timesteps} steps): {path}; sb3-contrib logged "
              f"kl {logged.get('train/kl_divergence_loss'):.5f}, line search success "
              f"{logged.get('train/is_line_search_success'):.0f}{std}", flush=True)

    model.train = train
    iterations = max(at)
    model.learn(iterations * model.n_steps * model.n_envs)
    return written
