"""``check``: keras_trpo's learner on a batch sb3-contrib stored, against what sb3-contrib's ``train()`` did with it."""
from __future__ import annotations

import os

import numpy as np

from benchmarks.sb3_update_parity.weights import (
    VALUE_LAYERS,
    agent_with_sb3_weights,
    find_layer,
    flat,
    load_dump,
    policy_batch,
)


def _critic_fit(agent, a: dict[str, np.ndarray]) -> None:
    """keras_trpo's critic update from sb3-contrib's Adam state, on sb3-contrib's minibatches (the permutations
    after the first, one per epoch, cut into ``value_batch_size`` rows)."""
    cfg, opt = agent.config, agent.learner.value_optimizer
    opt.iterations.assign(int(a.get("adam_step", 0.0)))  # torch's step count: Keras's next t is the same
    for torch_name, keras_name in VALUE_LAYERS.items():
        kernel, bias = find_layer(agent.value_model, keras_name).weights
        for var, kind, transpose in ((kernel, "weight", True), (bias, "bias", False)):
            for slot, prefix in (("momentum", "adam_m"), ("velocity", "adam_v")):
                key = f"{prefix}/{torch_name}.{kind}"
                if key in a:
                    value = a[key].T if transpose else a[key]
                    __optimizer_slot(opt, var, slot).assign(value.astype(np.float32))
    n = len(a["returns"])
    batches = np.concatenate([a[f"perm_{i}"][:n].reshape(-1, cfg.value_batch_size)
                              for i in range(1, 1 + cfg.value_epochs)]).astype(np.int32)
    agent.learner.value_update(a["obs"].astype(np.float32), a["returns"].astype(np.float32), batches)


def _gae_max_abs_diff(a: dict[str, np.ndarray], meta: dict) -> float:
    """keras_trpo's ``compute_gae`` on sb3-contrib's rollout against the advantages sb3-contrib computed. SB3 folds a
    truncated episode's bootstrap into its last reward, so every episode end is a terminal one here; the rollout's
    last step bootstraps from ``last_values`` unless it ended."""
    from keras_trpo.rollouts.gae import compute_gae

    starts, dones = a["gae/episode_starts"], a["gae/dones"]
    ended = np.concatenate([starts[1:], dones[None]], axis=0) > 0.5  # [T, E]: the episode ended at step t
    next_values = np.concatenate([a["gae/values"][1:], a["gae/last_values"][None]], axis=0)
    advantages, _ = compute_gae(a["gae/rewards"], a["gae/values"], next_values, ended, ended,
                                meta["gamma"], meta["gae_lambda"])
    return float(np.max(np.abs(advantages - a["gae/advantages"])))


def __optimizer_slot(opt, var, slot: str):
    """Keras 3 Adam's ``momentum`` / ``velocity`` variable for ``var`` (named after its path)."""
    name = f"{opt.name}/{var.path.replace('/', '_')}_{slot}"
    for v in opt.variables:
        if v.path == name:
            return v
    raise KeyError(f"the optimizer has no {name!r}")


def cosine(u: np.ndarray, v: np.ndarray) -> float:
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v) + 1e-300))


def check(path: str) -> dict:
    """How far keras_trpo's update of the dump's batch is from sb3-contrib's (see the module's docstring)."""
    import tensorflow as tf

    a, meta = load_dump(path)
    logged = meta["logged"]
    agent, gaussian, order, variables = agent_with_sb3_weights(a, meta)
    cfg, policy_model, value_model = agent.config, agent.policy_model, agent.value_model
    d = a["actions"].shape[1] if gaussian else 1  # sb3-contrib's KL is a mean over a Gaussian's dimensions too

    def theta() -> np.ndarray:
        return flat((v.numpy(), t) for v, t in variables)

    obs = a["obs"].astype(np.float32)
    actions = (a["actions"].astype(np.float32) if gaussian else a["actions"][:, 0].astype(np.int32))
    # the acting log-probabilities sb3-contrib stored, recomputed by keras_trpo's distribution
    logp = agent.family.make(policy_model(obs)).log_prob(actions).numpy()
    values = value_model(obs).numpy()[:, 0]

    x, act, adv_norm = policy_batch(a, gaussian)

    # the surrogate's gradient at the old policy (sb3-contrib's is stored as "gradient")
    with tf.GradientTape() as tape:
        new = agent.family.make(policy_model(x))
        surrogate = tf.reduce_mean(tf.exp(new.log_prob(act) - tf.stop_gradient(new.log_prob(act))) * adv_norm)
    g_keras = flat((g.numpy(), t) for g, (_, t) in zip(tape.gradient(surrogate, [v for v, _ in variables]), variables))

    theta0 = theta()
    logs = agent.learner.policy_update(x, act, adv_norm.astype(np.float32))
    step_keras = theta() - theta0
    step_sb3 = np.concatenate([np.ravel(a[f"after/{n}"] - a[f"before/{n}"]) for n in order])

    _critic_fit(agent, a)
    critic_keras = flat((w, w.ndim == 2) for k in VALUE_LAYERS.values() for w in find_layer(value_model, k).get_weights())
    critic_sb3, critic_before = (np.concatenate([np.ravel(a[f"{when}/{t}.{k}"]) for t in VALUE_LAYERS for k in ("weight", "bias")])
                                 for when in ("after", "before"))

    gae_diff = _gae_max_abs_diff(a, meta) if "gae/rewards" in a else float("nan")
    s = a["direction"]  # sb3-contrib's CG solution: its step is c * beta * s, c the line search's factor
    return dict(
        file=os.path.basename(path), iteration=meta["iteration"], timesteps=meta["timesteps"],
        config=dict(max_kl=cfg.max_kl, cg_damping=cfg.cg_damping, cg_iters=cfg.cg_iters, value_epochs=cfg.value_epochs,
                    value_batch_size=cfg.value_batch_size, line_search_steps=cfg.line_search_steps,
                    line_search_shrink=cfg.line_search_shrink, line_search_kl=cfg.line_search_kl),
        sb3_target_kl_times_d=meta["target_kl"] * d, sb3_cg_damping_times_d=meta["cg_damping"] * d,
        logp_max_abs_diff=float(np.max(np.abs(logp - a["old_log_prob"]))),
        value_max_abs_diff=float(np.max(np.abs(values - a["values"]))),
        gae_max_abs_diff=gae_diff, return_scale=float(np.max(np.abs(a["returns"]))),
        gradient_cos=cosine(g_keras, a["gradient"]),
        gradient_norm_ratio=float(np.linalg.norm(g_keras) / np.linalg.norm(a["gradient"])),
        step_cos=cosine(step_keras, step_sb3),
        step_norm_ratio=float(np.linalg.norm(step_keras) / max(np.linalg.norm(step_sb3), 1e-300)),
        step_norm_sb3=float(np.linalg.norm(step_sb3)), step_norm_keras=float(np.linalg.norm(step_keras)),
        kl_keras=logs["kl"], kl_sb3=logged.get("train/kl_divergence_loss", float("nan")) * d,
        line_search_tries_keras=logs["line_search_steps"], accepted_keras=logs["step_accepted"],
        accepted_sb3=logged.get("train/is_line_search_success"),
        cg_iterations_keras=logs["cg_iterations"],
        critic_step_cos=cosine(critic_keras - critic_before, critic_sb3 - critic_before),
        critic_step_norm_ratio=float(np.linalg.norm(critic_keras - critic_before) / np.linalg.norm(critic_sb3 - critic_before)),
        critic_max_abs_diff=float(np.max(np.abs(critic_keras - critic_sb3))),
        direction_cos_keras_step=cosine(step_keras, s),
        sb3_step_over_direction=float(step_sb3 @ s / (s @ s)),
        keras_step_over_direction=float(step_keras @ s / (s @ s)),
        sb3_beta_full=float(np.sqrt(2 * meta["target_kl"] / (s @ a["direction_fvp"]))),
    )
