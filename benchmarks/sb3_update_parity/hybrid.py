"""``hybrid``: sb3-contrib's whole loop with keras_trpo's learner in place of its ``train()`` (torch and TensorFlow in one
process)."""
from __future__ import annotations

import json
import os

import numpy as np

from benchmarks.sb3_update_parity.weights import (
    VALUE_LAYERS,
    agent_with_sb3_weights,
    find_layer,
    policy_layer_names,
)


def _keras_to_torch(agent, policy) -> None:
    """keras_trpo's weights back into sb3-contrib's policy, so that its next rollout acts with them."""
    import torch

    params = dict(policy.named_parameters())
    gaussian = "log_std" in params
    layers = policy_layer_names(gaussian)
    with torch.no_grad():
        for names, model in ((layers, agent.policy_model), (VALUE_LAYERS, agent.value_model)):
            for torch_name, keras_name in names.items():
                kernel, bias = find_layer(model, keras_name).get_weights()
                params[f"{torch_name}.weight"].copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
                params[f"{torch_name}.bias"].copy_(torch.from_numpy(bias))
        if gaussian:
            params["log_std"].copy_(torch.from_numpy(find_layer(agent.policy_model, "policy_log_std").get_weights()[0]))


def hybrid(env_id: str, seed: int, steps: int, out: str) -> dict:
    """sb3-contrib's whole loop (its envs, VecNormalize, sampling, truncation bootstrap, GAE) with keras_trpo's
    ``Learner`` in place of its ``train()``: keras_trpo's policy step and critic fit on each rollout, the weights
    copied back for the next one. keras_trpo's Adam carries its own state from the start, as in a keras_trpo run.

    If this climbs where keras_trpo's own runs stop, the gap is in how keras_trpo collects and feeds its batches;
    if it stops where sb3-contrib climbs, in the update over a whole run. Writes ``OUT/seed_N.json`` (per
    iteration: timesteps, the mean of the last 100 training episodes, KL, the policy's std), atomically."""
    import time

    try:
        import torch
    except ImportError as e:
        raise SystemExit("hybrid needs torch and sb3-contrib beside TensorFlow: pip install 'torch==2.13.0' "
                         "sb3-contrib, or a .pth file in this venv's site-packages naming sb3-contrib's venv "
                         f"site-packages (Python appends it after its own) ({e})") from None

    from benchmarks.sb3_runner import make_model
    from keras_trpo.rollouts.buffer import normalize_advantages
    from keras_trpo_serving.files import atomic_write_text

    torch.set_num_threads(1)
    model, _, _ = make_model(env_id, seed)
    init = {f"before/{k}": v.detach().cpu().numpy().astype(np.float64) for k, v in model.policy.state_dict().items()}
    agent, _, _, _ = agent_with_sb3_weights(init, {"env": env_id, "adam_epsilon": 1e-5})
    cfg, rows, rng, start = agent.config, [], np.random.default_rng(seed), time.perf_counter()

    def train() -> None:
        buf = model.rollout_buffer
        obs = buf.observations.reshape(-1, *buf.obs_shape).astype(np.float32)
        actions = buf.actions.reshape(len(obs), -1).astype(np.float32)
        if agent.family.param_names == ("logits",):
            actions = actions[:, 0].astype(np.int32)
        adv = buf.advantages.reshape(-1)
        adv = normalize_advantages(adv).astype(np.float32) if cfg.normalize_advantage else adv.astype(np.float32)
        logs = agent.learner.policy_update(obs, actions, adv)
        n = len(obs) - len(obs) % cfg.value_batch_size
        batches = np.concatenate([rng.permutation(len(obs))[:n].reshape(-1, cfg.value_batch_size)
                                  for _ in range(cfg.value_epochs)]).astype(np.int32)
        agent.learner.value_update(obs, buf.returns.reshape(-1).astype(np.float32), batches)
        _keras_to_torch(agent, model.policy)
        episodes = [e["r"] for e in model.ep_info_buffer]
        std = float(np.exp(model.policy.log_std.detach().numpy()).mean()) if hasattr(model.policy, "log_std") else None
        rows.append(dict(timesteps=int(model.num_timesteps), mean_return=float(np.mean(episodes)) if episodes else None,
                         kl=float(logs["kl"]), step_accepted=float(logs["step_accepted"]), policy_std=std,
                         wall_s=round(time.perf_counter() - start, 2)))

    model.train = train
    model.learn(total_timesteps=int(steps))
    result = dict(env=env_id, seed=seed, impl="sb3-contrib loop, keras_trpo learner", timesteps=int(model.num_timesteps),
                  rows=rows)
    os.makedirs(out, exist_ok=True)
    atomic_write_text(os.path.join(out, f"seed_{seed}.json"), json.dumps(result, indent=1) + "\n")
    return result
