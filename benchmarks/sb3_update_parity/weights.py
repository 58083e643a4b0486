"""sb3-contrib's dump files and weights in keras_trpo's agent: the shared plumbing of ``check``, ``cgstart`` and ``hybrid``."""
from __future__ import annotations

import json

import numpy as np

# sb3-contrib MlpPolicy names -> keras_trpo layer names (feed-forward, two hidden layers); the action head is
# "policy_mean" (with the state-independent "log_std") for Box actions, "policy_logits" for Discrete ones.
TORSO_LAYERS = {"mlp_extractor.policy_net.0": "policy_torso_dense_0", "mlp_extractor.policy_net.2": "policy_torso_dense_1"}
VALUE_LAYERS = {"mlp_extractor.value_net.0": "value_torso_dense_0", "mlp_extractor.value_net.2": "value_torso_dense_1",
                "value_net": "value_head"}


def load_dump(path: str) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(path, allow_pickle=False) as z:  # sb3-contrib's float32 arrays, compared in float64
        arrays = {k: z[k].astype(np.float64) if z[k].dtype.kind == "f" else z[k] for k in z.files}
    if "meta" not in arrays or "perm_0" not in arrays:
        raise ValueError(f"{path}: not a file that 'python -m benchmarks.sb3_update_parity dump' wrote "
                         f"(no meta or perm_0 array; it holds {', '.join(sorted(arrays)[:5]) or 'nothing'})")
    return arrays, json.loads(str(arrays.pop("meta")))


def set_dense(model, layer_name: str, weight: np.ndarray, bias: np.ndarray) -> None:
    """A torch ``nn.Linear`` (weight ``[out, in]``) into a Keras ``Dense`` (kernel ``[in, out]``)."""
    layer = find_layer(model, layer_name)
    layer.set_weights([weight.T.astype(np.float32), bias.astype(np.float32)])


def find_layer(model, name: str):
    """The layer called ``name`` anywhere in ``model`` (the torsos are Sequential models inside it)."""
    for layer in model.layers:
        if layer.name == name:
            return layer
        if hasattr(layer, "layers"):
            try:
                return find_layer(layer, name)
            except KeyError:
                pass
    raise KeyError(f"no layer {name!r} in {model.name}")


def policy_variables(model, layers: dict[str, str], order: list[str]) -> list:
    """keras_trpo's policy variables in sb3-contrib's parameter order, ``(variable, transpose)`` pairs:
    a torch ``[out, in]`` weight is a Keras ``[in, out]`` kernel."""
    out = []
    for name in order:
        if name == "log_std":
            out.append((find_layer(model, "policy_log_std").weights[0], False))
            continue
        layer_name, kind = name.rsplit(".", 1)
        kernel, bias = find_layer(model, layers[layer_name]).weights
        out.append((kernel, True) if kind == "weight" else (bias, False))
    return out


def flat(arrays_and_transposes) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(a, np.float64).T if t else np.asarray(a, np.float64))
                           for a, t in arrays_and_transposes])


def policy_layer_names(gaussian: bool) -> dict[str, str]:
    """sb3-contrib's policy layers -> keras_trpo's: the torso and the action head (Gaussian mean or logits)."""
    return {**TORSO_LAYERS, "action_net": "policy_mean" if gaussian else "policy_logits"}


def set_sb3_weights(agent, a: dict[str, np.ndarray]) -> dict[str, str]:
    """sb3-contrib's policy and critic weights (``a["before/<torch name>"]``) into keras_trpo's agent; returns the
    policy's torch -> Keras layer names."""
    gaussian = "before/log_std" in a
    policy_layers = policy_layer_names(gaussian)
    for layers, model in ((policy_layers, agent.policy_model), (VALUE_LAYERS, agent.value_model)):
        for torch_name, keras_name in layers.items():
            set_dense(model, keras_name, a[f"before/{torch_name}.weight"], a[f"before/{torch_name}.bias"])
    if gaussian:
        find_layer(agent.policy_model, "policy_log_std").set_weights([a["before/log_std"].astype(np.float32)])
    return policy_layers


def policy_batch(a: dict[str, np.ndarray], gaussian: bool):
    """The dump's policy batch in sb3-contrib's ``train()`` order (its first permutation): observations
    ``[N, obs] float32``, actions (``[N, d] float32`` or ``[N] int32``), advantages normalised as sb3-contrib
    does (torch's std is the unbiased one) ``[N] float64``."""
    perm = a["perm_0"]
    actions = a["actions"].astype(np.float32) if gaussian else a["actions"][:, 0].astype(np.int32)
    adv = a["advantages"][perm]
    return a["obs"].astype(np.float32)[perm], actions[perm], (adv - adv.mean()) / (adv.std(ddof=1) + 1e-8)


def agent_with_sb3_weights(a: dict[str, np.ndarray], meta: dict):
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
    policy_layers = set_sb3_weights(agent, a)
    order = ["log_std"] * gaussian + [f"{t}.{k}" for t in policy_layers for k in ("weight", "bias")]
    return agent, gaussian, order, policy_variables(agent.policy_model, policy_layers, order)
