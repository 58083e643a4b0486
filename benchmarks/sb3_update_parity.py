"""Does keras_trpo's learner take sb3-contrib's step from sb3-contrib's own data? (issue 28, Swimmer gap)

Two halves, two Pythons (sb3-contrib's venv has no TensorFlow, keras_trpo's has no torch):

  SB3_PYTHON -m benchmarks.sb3_update_parity dump ENV SEED --at 1 30 100 [--out DIR]
  python     -m benchmarks.sb3_update_parity check DIR/ENV_seedN_iterK.npz [...]
  python     -m benchmarks.sb3_update_parity cgstart DIR/ENV_seedN_iterK.npz [...]
  python     -m benchmarks.sb3_update_parity hybrid ENV STEPS SEED [...] [--out DIR]   # torch + sb3-contrib importable

``dump`` trains sb3-contrib's TRPO with the zoo's settings (``sb3_runner.make_model``) and, at each training
iteration named by ``--at``, stores what its ``train()`` saw and did, one ``.npz`` per iteration (NumPy arrays
only, no pickle): the rollout as GAE read it ([n_steps, n_envs] rewards with SB3's truncation bootstraps, values,
episode starts, the last values) and the advantages it computed, the rollout buffer as ``train()`` reads it
(VecNormalize's observations, actions, GAE advantages before normalisation, returns, the acting log-probabilities),
every policy parameter before and after ``train()``, the critic's Adam state before it, the permutations its buffer
drew (the first orders the policy's full batch, then one per critic epoch, cut into minibatches), the gradient and
direction its conjugate-gradient solver returned, and what it logged.

``check`` builds keras_trpo's agent for the same env with the same settings (the zoo's, observations and rewards
already normalised by VecNormalize, so no normaliser of its own; SB3's Adam epsilon for the critic), copies
sb3-contrib's weights and Adam state into it, and runs keras_trpo's ``Learner`` on the same batch: the policy step
on the same normalised advantages, the critic's 20 epochs on the same minibatches. It prints, per file, how far the
two agree: the forward pass, GAE (keras_trpo's ``compute_gae`` on sb3-contrib's rollout), the surrogate's gradient,
the step (cosine and length ratio of theta_new - theta_old), the KL reached, and the critic's parameters after its
fit. Box actions (diagonal Gaussian, state-independent log std) and Discrete ones (categorical), sb3-contrib's
default MlpPolicy. Equal steps mean the Swimmer gap is not in the update; a different step says where to look.

``cgstart`` asks of the same batch whether sb3-contrib's random CG start (``1e-4 * randn``; keras_trpo starts from 0)
is what separates the two directions late in a run, and how far the ``cg_iters`` solve is from converged."""
from __future__ import annotations

import argparse
import io
import json
import os
import sys

import numpy as np

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "ahead", "swimmer", "parity")

# sb3-contrib MlpPolicy names -> keras_trpo layer names (feed-forward, two hidden layers); the action head is
# "policy_mean" (with the state-independent "log_std") for Box actions, "policy_logits" for Discrete ones.
TORSO_LAYERS = {"mlp_extractor.policy_net.0": "policy_torso_dense_0", "mlp_extractor.policy_net.2": "policy_torso_dense_1"}
VALUE_LAYERS = {"mlp_extractor.value_net.0": "value_torso_dense_0", "mlp_extractor.value_net.2": "value_torso_dense_1",
                "value_net": "value_head"}


# ----------------------------------------------------------------------------------------------- dump (sb3)
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


# ----------------------------------------------------------------------------------------------- check (keras_trpo)
def _load(path: str) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(path, allow_pickle=False) as z:  # sb3-contrib's float32 arrays, compared in float64
        arrays = {k: z[k].astype(np.float64) if z[k].dtype.kind == "f" else z[k] for k in z.files}
    if "meta" not in arrays or "perm_0" not in arrays:
        raise ValueError(f"{path}: not a file that 'python -m benchmarks.sb3_update_parity dump' wrote "
                         f"(no meta or perm_0 array; it holds {', '.join(sorted(arrays)[:5]) or 'nothing'})")
    return arrays, json.loads(str(arrays.pop("meta")))


def _set_dense(model, layer_name: str, weight: np.ndarray, bias: np.ndarray) -> None:
    """A torch ``nn.Linear`` (weight ``[out, in]``) into a Keras ``Dense`` (kernel ``[in, out]``)."""
    layer = _layer(model, layer_name)
    layer.set_weights([weight.T.astype(np.float32), bias.astype(np.float32)])


def _layer(model, name: str):
    """The layer called ``name`` anywhere in ``model`` (the torsos are Sequential models inside it)."""
    for layer in model.layers:
        if layer.name == name:
            return layer
        if hasattr(layer, "layers"):
            try:
                return _layer(layer, name)
            except KeyError:
                pass
    raise KeyError(f"no layer {name!r} in {model.name}")


def _policy_variables(model, layers: dict[str, str], order: list[str]) -> list:
    """keras_trpo's policy variables in sb3-contrib's parameter order, ``(variable, transpose)`` pairs:
    a torch ``[out, in]`` weight is a Keras ``[in, out]`` kernel."""
    out = []
    for name in order:
        if name == "log_std":
            out.append((_layer(model, "policy_log_std").weights[0], False))
            continue
        layer_name, kind = name.rsplit(".", 1)
        kernel, bias = _layer(model, layers[layer_name]).weights
        out.append((kernel, True) if kind == "weight" else (bias, False))
    return out


def _flat(arrays_and_transposes) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(a, np.float64).T if t else np.asarray(a, np.float64))
                           for a, t in arrays_and_transposes])


def _set_sb3_weights(agent, a: dict[str, np.ndarray]) -> dict[str, str]:
    """sb3-contrib's policy and critic weights (``a["before/<torch name>"]``) into keras_trpo's agent; returns the
    policy's torch -> Keras layer names."""
    gaussian = "before/log_std" in a
    policy_layers = {**TORSO_LAYERS, "action_net": "policy_mean" if gaussian else "policy_logits"}
    for layers, model in ((policy_layers, agent.policy_model), (VALUE_LAYERS, agent.value_model)):
        for torch_name, keras_name in layers.items():
            _set_dense(model, keras_name, a[f"before/{torch_name}.weight"], a[f"before/{torch_name}.bias"])
    if gaussian:
        _layer(agent.policy_model, "policy_log_std").set_weights([a["before/log_std"].astype(np.float32)])
    return policy_layers


def _policy_batch(a: dict[str, np.ndarray], gaussian: bool):
    """The dump's policy batch in sb3-contrib's ``train()`` order (its first permutation): observations
    ``[N, obs] float32``, actions (``[N, d] float32`` or ``[N] int32``), advantages normalised as sb3-contrib
    does (torch's std is the unbiased one) ``[N] float64``."""
    perm = a["perm_0"]
    actions = a["actions"].astype(np.float32) if gaussian else a["actions"][:, 0].astype(np.int32)
    adv = a["advantages"][perm]
    return a["obs"].astype(np.float32)[perm], actions[perm], (adv - adv.mean()) / (adv.std(ddof=1) + 1e-8)


def _agent_with_sb3_weights(a: dict[str, np.ndarray], meta: dict):
    """keras_trpo's agent for the dump's env, with sb3-contrib's settings and its weights before ``train()``;
    ``(agent, gaussian, order, variables)``: ``order`` names sb3-contrib's actor parameters in its flat order,
    ``variables`` are keras_trpo's ``(variable, transpose)`` pairs in that order."""
    from keras_trpo import TRPO

    # VecNormalize's observations and rewards come normalised: no normaliser of keras_trpo's own
    agent = TRPO(meta["env"], seed=0, normalize_obs=False, normalize_reward=False,
                 value_adam_epsilon=meta.get("adam_epsilon", 1e-5))  # SB3's Adam epsilon
    gaussian = "before/log_std" in a
    if not gaussian and agent.family.param_names != ("logits",):
        raise ValueError(f"{meta['env']}: only Box (diagonal Gaussian) and Discrete (categorical) actions are compared")
    policy_layers = _set_sb3_weights(agent, a)
    order = ["log_std"] * gaussian + [f"{t}.{k}" for t in policy_layers for k in ("weight", "bias")]
    return agent, gaussian, order, _policy_variables(agent.policy_model, policy_layers, order)


def _critic_fit(agent, a: dict[str, np.ndarray]) -> None:
    """keras_trpo's critic update from sb3-contrib's Adam state, on sb3-contrib's minibatches (the permutations
    after the first, one per epoch, cut into ``value_batch_size`` rows)."""
    cfg, opt = agent.config, agent.learner.value_optimizer
    opt.iterations.assign(int(a.get("adam_step", 0.0)))  # torch's step count: Keras's next t is the same
    for torch_name, keras_name in VALUE_LAYERS.items():
        kernel, bias = _layer(agent.value_model, keras_name).weights
        for var, kind, transpose in ((kernel, "weight", True), (bias, "bias", False)):
            for slot, prefix in (("momentum", "adam_m"), ("velocity", "adam_v")):
                key = f"{prefix}/{torch_name}.{kind}"
                if key in a:
                    value = a[key].T if transpose else a[key]
                    _optimizer_slot(opt, var, slot).assign(value.astype(np.float32))
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


def _cos(u: np.ndarray, v: np.ndarray) -> float:
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v) + 1e-300))


def check(path: str) -> dict:
    """How far keras_trpo's update of the dump's batch is from sb3-contrib's (see the module's docstring)."""
    import tensorflow as tf

    a, meta = _load(path)
    logged = meta["logged"]
    agent, gaussian, order, variables = _agent_with_sb3_weights(a, meta)
    cfg, policy_model, value_model = agent.config, agent.policy_model, agent.value_model
    d = a["actions"].shape[1] if gaussian else 1  # sb3-contrib's KL is a mean over a Gaussian's dimensions too

    def theta() -> np.ndarray:
        return _flat((v.numpy(), t) for v, t in variables)

    obs = a["obs"].astype(np.float32)
    actions = (a["actions"].astype(np.float32) if gaussian else a["actions"][:, 0].astype(np.int32))
    # the acting log-probabilities sb3-contrib stored, recomputed by keras_trpo's distribution
    logp = agent.family.make(policy_model(obs)).log_prob(actions).numpy()
    values = value_model(obs).numpy()[:, 0]

    x, act, adv_norm = _policy_batch(a, gaussian)

    # the surrogate's gradient at the old policy (sb3-contrib's is stored as "gradient")
    with tf.GradientTape() as tape:
        new = agent.family.make(policy_model(x))
        surrogate = tf.reduce_mean(tf.exp(new.log_prob(act) - tf.stop_gradient(new.log_prob(act))) * adv_norm)
    g_keras = _flat((g.numpy(), t) for g, (_, t) in zip(tape.gradient(surrogate, [v for v, _ in variables]), variables))

    theta0 = theta()
    logs = agent.learner.policy_update(x, act, adv_norm.astype(np.float32))
    step_keras = theta() - theta0
    step_sb3 = np.concatenate([np.ravel(a[f"after/{n}"] - a[f"before/{n}"]) for n in order])

    _critic_fit(agent, a)
    critic_keras = _flat((w, w.ndim == 2) for k in VALUE_LAYERS.values() for w in _layer(value_model, k).get_weights())
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
        gradient_cos=_cos(g_keras, a["gradient"]),
        gradient_norm_ratio=float(np.linalg.norm(g_keras) / np.linalg.norm(a["gradient"])),
        step_cos=_cos(step_keras, step_sb3),
        step_norm_ratio=float(np.linalg.norm(step_keras) / max(np.linalg.norm(step_sb3), 1e-300)),
        step_norm_sb3=float(np.linalg.norm(step_sb3)), step_norm_keras=float(np.linalg.norm(step_keras)),
        kl_keras=logs["kl"], kl_sb3=logged.get("train/kl_divergence_loss", float("nan")) * d,
        line_search_tries_keras=logs["line_search_steps"], accepted_keras=logs["step_accepted"],
        accepted_sb3=logged.get("train/is_line_search_success"),
        cg_iterations_keras=logs["cg_iterations"],
        critic_step_cos=_cos(critic_keras - critic_before, critic_sb3 - critic_before),
        critic_step_norm_ratio=float(np.linalg.norm(critic_keras - critic_before) / np.linalg.norm(critic_sb3 - critic_before)),
        critic_max_abs_diff=float(np.max(np.abs(critic_keras - critic_sb3))),
        direction_cos_keras_step=_cos(step_keras, s),
        sb3_step_over_direction=float(step_sb3 @ s / (s @ s)),
        keras_step_over_direction=float(step_keras @ s / (s @ s)),
        sb3_beta_full=float(np.sqrt(2 * meta["target_kl"] / (s @ a["direction_fvp"]))),
    )


def _cg_from(matvec, b, x0, iters: int, residual_tol: float = 1e-10):
    """sb3-contrib's conjugate-gradient loop from the start ``x0`` (its own draws ``1e-4 * randn``)."""
    x = x0
    r = b - matvec(x)
    p, rr = r, float(np.dot(r, r))
    for i in range(iters):
        ap = matvec(p)
        alpha = rr / float(np.dot(p, ap))
        x = x + alpha * p
        if i == iters - 1:
            break
        r = r - alpha * ap
        rr_new = float(np.dot(r, r))
        if rr_new < residual_tol:
            break
        p, rr = r + (rr_new / rr) * p, rr_new
    return x


def cg_start(path: str, draws: int = 6, long_iters: int = 200) -> dict:
    """Is sb3-contrib's random CG start (``x = 1e-4 * randn`` where keras_trpo starts from 0) what makes the two
    directions differ late in a run? keras_trpo's Fisher product (damping included) on the dump's batch,
    its CG from 0 and from ``draws`` of sb3-contrib's start, and a ``long_iters`` solve for how far the
    ``cg_iters`` ones are from converged. Cosines are against sb3-contrib's direction (its parameter order);
    ``x0Fx0`` is the start's size in the metric the trust region uses, against the direction's ``sFs``."""
    import tensorflow as tf

    from keras_trpo.optim.cg import conjugate_gradient

    a, meta = _load(path)
    agent, gaussian, _, variables = _agent_with_sb3_weights(a, meta)
    learner, cfg = agent.learner, agent.config
    x, act, adv = _policy_batch(a, gaussian)
    x, adv = tf.constant(x), adv.astype(np.float32)
    old_params = {k: tf.stop_gradient(v) for k, v in agent.policy_model(x).items()}
    old_log_prob = agent.family.make(old_params).log_prob(act)
    policy_vars = learner.policy_vars
    with tf.GradientTape() as tape:
        new = agent.family.make(agent.policy_model(x))
        surrogate = tf.reduce_mean(tf.exp(new.log_prob(act) - old_log_prob) * adv)
    g = tf.concat([tf.reshape(t, [-1]) for t in tape.gradient(surrogate, policy_vars)], 0)
    fvp = learner.fisher_product((x,), old_params)

    def matvec(v: np.ndarray) -> np.ndarray:
        return fvp(tf.constant(v, tf.float32)).numpy()

    def in_sb3_order(flat: np.ndarray) -> np.ndarray:
        by_path, i = {}, 0
        for v in policy_vars:
            n = int(np.prod(v.shape))
            by_path[v.path], i = flat[i:i + n].reshape(v.shape), i + n
        return _flat((by_path[v.path], t) for v, t in variables)

    def quad(v: np.ndarray) -> float:
        return float(v @ matvec(v))

    s_sb3 = a["direction"]
    zero = conjugate_gradient(fvp, g, cfg.cg_iters, cfg.cg_residual_tol)[0].numpy()
    long = conjugate_gradient(fvp, g, long_iters, 0.0)[0].numpy()
    rng = np.random.default_rng(0)
    starts = [(1e-4 * rng.standard_normal(zero.shape)).astype(np.float32) for _ in range(draws)]
    random = [_cg_from(matvec, g.numpy(), x0, cfg.cg_iters) for x0 in starts]
    # the same loop from 0: what the loop's own arithmetic (against the graph's while_loop) moves, without the start
    zero_loop = _cg_from(matvec, g.numpy(), np.zeros_like(starts[0]), cfg.cg_iters)
    return dict(
        file=os.path.basename(path), iteration=meta["iteration"], timesteps=meta["timesteps"], parameters=int(zero.size),
        cg_iters=cfg.cg_iters, cos_zero_start_vs_sb3=_cos(in_sb3_order(zero), s_sb3),
        cos_random_start_vs_sb3=[_cos(in_sb3_order(r), s_sb3) for r in random],
        cos_random_start_vs_zero_start=[_cos(r, zero) for r in random],
        cos_zero_start_same_loop_vs_sb3=_cos(in_sb3_order(zero_loop), s_sb3), cos_zero_start_same_loop_vs_zero_start=_cos(zero_loop, zero),
        cos_random_start_vs_zero_start_same_loop=[_cos(r, zero_loop) for r in random],
        sFs_zero_start=quad(zero), x0Fx0=[quad(x0) for x0 in starts],
        cos_long_vs_zero_start=_cos(long, zero), cos_long_vs_sb3=_cos(in_sb3_order(long), s_sb3),
        long_iters=long_iters,
    )


# ----------------------------------------------------------------------------------------------- hybrid (both)
def _keras_to_torch(agent, policy) -> None:
    """keras_trpo's weights back into sb3-contrib's policy, so that its next rollout acts with them."""
    import torch

    params = dict(policy.named_parameters())
    gaussian = "log_std" in params
    layers = {**TORSO_LAYERS, "action_net": "policy_mean" if gaussian else "policy_logits"}
    with torch.no_grad():
        for names, model in ((layers, agent.policy_model), (VALUE_LAYERS, agent.value_model)):
            for torch_name, keras_name in names.items():
                kernel, bias = _layer(model, keras_name).get_weights()
                params[f"{torch_name}.weight"].copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
                params[f"{torch_name}.bias"].copy_(torch.from_numpy(bias))
        if gaussian:
            params["log_std"].copy_(torch.from_numpy(_layer(agent.policy_model, "policy_log_std").get_weights()[0]))


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
    agent, _, _, _ = _agent_with_sb3_weights(init, {"env": env_id, "adam_epsilon": 1e-5})
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


def _optimizer_slot(opt, var, slot: str):
    """Keras 3 Adam's ``momentum`` / ``velocity`` variable for ``var`` (named after its path)."""
    name = f"{opt.name}/{var.path.replace('/', '_')}_{slot}"
    for v in opt.variables:
        if v.path == name:
            return v
    raise KeyError(f"the optimizer has no {name!r}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="sb3-contrib's side (its Python)")
    d.add_argument("env")
    d.add_argument("seed", type=int)
    d.add_argument("--at", type=int, nargs="+", required=True, help="training iterations to store (1 = the first)")
    d.add_argument("--out", default=DEFAULT_OUT)
    c = sub.add_parser("check", help="keras_trpo's side")
    c.add_argument("files", nargs="+")
    s = sub.add_parser("cgstart", help="keras_trpo's CG from 0, from sb3-contrib's random starts, and converged")
    s.add_argument("files", nargs="+")
    h = sub.add_parser("hybrid", help="sb3-contrib's loop with keras_trpo's learner (torch and TensorFlow in one "
                                      "process)")
    h.add_argument("env")
    h.add_argument("steps", type=float)
    h.add_argument("seeds", type=int, nargs="+")
    h.add_argument("--out", default=os.path.join(os.path.dirname(DEFAULT_OUT), "hybrid"))
    a = p.parse_args(argv)
    if a.command == "hybrid":
        for seed in a.seeds:
            if os.path.exists(os.path.join(a.out, f"seed_{seed}.json")):
                continue
            rows = hybrid(a.env, seed, int(a.steps), a.out)["rows"]
            print(f"seed {seed}: mean return {rows[-1]['mean_return']:.1f} at {rows[-1]['timesteps']} steps", flush=True)
        return 0
    if a.command == "dump":
        dump(a.env, a.seed, sorted(set(a.at)), a.out)
        return 0
    report = check if a.command == "check" else cg_start
    for path in a.files:
        print(json.dumps(report(path), indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
