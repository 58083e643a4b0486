"""Policy and value networks as Keras functional models."""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Union

import gymnasium as gym
import keras

from keras_trpo.policies.dict_networks import dict_model_inputs
from keras_trpo.dict_obs import check_dict_space
from keras_trpo.distributions import Family
from keras_trpo.layers import ObservationNormalizer, OneHot, RecurrentCore, StateIndependentLogStd
from keras_trpo.spaces import UnsupportedSpaceError, obs_shape

TorsoSpec = Union[None, keras.Model, keras.layers.Layer, Callable[[], keras.layers.Layer]]


def torch_default_initializers(fan_in: int, seed: int) -> dict[str, keras.initializers.Initializer]:
    """PyTorch's ``nn.Linear`` default, which SB3 keeps with ``ortho_init=False``, as Keras initialisers.

    PyTorch draws the kernel by ``kaiming_uniform_(a=sqrt(5))`` and the bias from the same range:
    both U(-1/sqrt(fan_in), 1/sqrt(fan_in)). ``VarianceScaling(1/3, "fan_in", "uniform")`` has the
    limit sqrt(3 * (1/3) / fan_in), the same distribution; Keras's own default (Glorot uniform, zero
    bias) would be 1.7x wider on a 256x256 layer and 2.4x on a 256 -> 2 head.
    """
    bound = 1.0 / math.sqrt(fan_in)
    return {
        "kernel_initializer": keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform", seed=seed),
        "bias_initializer": keras.initializers.RandomUniform(-bound, bound, seed=seed + 50),
    }


def _init(ortho_init: bool, gain: float, fan_in: int, seed: int) -> dict[str, keras.initializers.Initializer]:
    """SB3's initialisation of one Dense layer: orthogonal with ``gain`` and zero bias, or PyTorch's default."""
    if ortho_init:
        return {"kernel_initializer": keras.initializers.Orthogonal(gain=gain, seed=seed), "bias_initializer": "zeros"}
    return torch_default_initializers(fan_in, seed)


def build_mlp(hidden: Sequence[int], activation: str, seed: int, name: str, ortho_init: bool = True,
              input_dim: Optional[int] = None) -> keras.Sequential:
    """Dense torso with orthogonal init (gain sqrt(2)) and zero biases, as in SB3; with
    ``ortho_init=False`` PyTorch's default init (which needs ``input_dim``, the first fan-in)."""
    if not ortho_init and input_dim is None:
        raise ValueError("build_mlp(ortho_init=False) needs input_dim: the default init depends on the fan-in")
    fan_ins = [input_dim or 0, *hidden[:-1]]
    layers = [
        keras.layers.Dense(units, activation=activation, name=f"{name}_dense_{i}",
                           **_init(ortho_init, math.sqrt(2), int(fan_in), seed + i))
        for i, (units, fan_in) in enumerate(zip(hidden, fan_ins))
    ]
    return keras.Sequential(layers, name=name)


def _instantiate_torso(torso: TorsoSpec, name: str, hidden, activation, seed, ortho_init: bool = True,
                       input_dim: Optional[int] = None) -> keras.layers.Layer:
    if torso is None:
        return build_mlp(hidden, activation, seed, name, ortho_init=ortho_init, input_dim=input_dim)
    if isinstance(torso, keras.layers.Layer):  # Models are Layers too
        # The value net gets a fresh copy so the two networks share nothing.
        return torso if name == "policy_torso" else keras.models.clone_model(torso)
    if callable(torso):
        layer = torso()
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(f"torso factory returned {type(layer).__name__}, expected a keras Layer or Model")
        return layer
    raise TypeError(f"torso must be None, a keras Model/Layer or a factory returning one, got {type(torso).__name__}")


def _preprocess(obs_space: gym.Space, inputs, normalize: bool, prefix: str, sequence: bool = False):
    if isinstance(obs_space, gym.spaces.Discrete):
        return OneHot(int(obs_space.n), sequence=sequence, name=f"{prefix}_one_hot")(inputs)
    if normalize:
        return ObservationNormalizer(sequence=sequence, name=f"{prefix}_obs_normalizer")(inputs)
    return inputs


def _model_inputs(obs_space: gym.Space, normalize: bool, prefix: str):
    """``(inputs, features)``: one ``obs`` input, or for a Dict space one named input per key."""
    if isinstance(obs_space, gym.spaces.Dict):
        return dict_model_inputs(check_dict_space(obs_space), normalize, prefix)
    inputs = keras.Input(shape=obs_shape(obs_space), dtype="float32", name="obs")
    return inputs, _preprocess(obs_space, inputs, normalize, prefix)


def _features(torso_layer, x):
    h = torso_layer(x)
    if len(h.shape) > 2:
        h = keras.layers.Flatten()(h)
    return h


def build_policy_model(
    obs_space: gym.Space,
    family: Family,
    *,
    torso: TorsoSpec = None,
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    normalize_obs: bool = False,
    log_std_init: float = 0.0,
    seed: int = 0,
    ortho_init: bool = True,
) -> keras.Model:
    """``obs [B, *obs_shape] float32 -> {param name: [B, size]}`` for ``family``; for a Dict space
    ``{key: [B, *key_shape]} -> ...`` (``dict_networks``).

    ``ortho_init=False``: PyTorch's default init for every Dense layer ours, heads included, as SB3."""
    inputs, x = _model_inputs(obs_space, normalize_obs, "policy")
    torso_layer = _instantiate_torso(torso, "policy_torso", hidden, activation, seed, ortho_init, int(x.shape[-1]))
    h = _features(torso_layer, x)
    return keras.Model(inputs, _heads(family, h, ortho_init, seed, log_std_init), name="policy")


def _heads(family: Family, h, ortho_init: bool, seed: int, log_std_init: float) -> dict:
    """The distribution's parameters from the features ``h``: ``{"logits"}`` or ``{"mean", "log_std"}``."""
    head_init = _init(ortho_init, 0.01, int(h.shape[-1]), seed + 100)  # orthogonal: a near-uniform initial policy
    if family.param_names == ("logits",):
        return {"logits": keras.layers.Dense(family.head_sizes["logits"], name="policy_logits", **head_init)(h)}
    mean = keras.layers.Dense(family.head_sizes["mean"], name="policy_mean", **head_init)(h)
    return {"mean": mean, "log_std": StateIndependentLogStd(log_std_init, name="policy_log_std")(mean)}


# The recurrent models' inputs besides the observation; a Dict key cannot take these names.
_SEQUENCE_INPUTS = ("starts", "state")


def _sequence_inputs(obs_space: gym.Space, state_size: int, normalize: bool, prefix: str) -> tuple[dict, object]:
    """``({"obs", "starts" [B, T], "state" [B, S]}, features [B, T, F])``. ``"obs"`` is one input
    ``[B, T, *obs_shape]``, or for a Dict space ``{key: [B, T, *key_shape]}`` with the feed-forward
    Dict model's per-key layers (``dict_networks``)."""
    if isinstance(obs_space, gym.spaces.Dict):
        layout = check_dict_space(obs_space)
        clash = [k for k in layout.keys if k in _SEQUENCE_INPUTS]
        if clash:
            raise UnsupportedSpaceError(
                f"Dict observation space: key {clash[0]!r} has the name of a recurrent model's own input "
                f"({', '.join(map(repr, _SEQUENCE_INPUTS))}); rename the key (gymnasium.wrappers.TransformObservation) "
                "or use recurrent=None")
        obs, x = dict_model_inputs(layout, normalize, prefix, sequence=True)
    else:
        obs = keras.Input(shape=(None,) + obs_shape(obs_space), dtype="float32", name="obs")
        x = _preprocess(obs_space, obs, normalize, prefix, sequence=True)
    inputs = {"obs": obs, "starts": keras.Input(shape=(None,), dtype="float32", name="starts"),
              "state": keras.Input(shape=(state_size,), dtype="float32", name="state")}
    return inputs, x


def check_recurrent_torso(torso: TorsoSpec) -> None:
    """A recurrent policy is normaliser -> LSTM/GRU -> Dense layers -> head; it takes no torso of its own."""
    if torso is not None:
        raise ValueError(
            f"recurrent policies build their own network (observation -> LSTM/GRU -> hidden_sizes Dense layers -> "
            f"head) and cannot take a torso (got {type(torso).__name__}); a CNN torso with a recurrent core is not "
            "supported: pass torso=None, or recurrent=None for a feed-forward policy with this torso")


def build_recurrent_policy_model(
    obs_space: gym.Space,
    family: Family,
    *,
    cell: str = "lstm",
    units: int = 64,
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    normalize_obs: bool = False,
    log_std_init: float = 0.0,
    seed: int = 0,
    ortho_init: bool = True,
) -> keras.Model:
    """``{obs [B, T, *obs_shape], starts [B, T], state [B, S]} -> {param name: [B, T, size], "state": [B, S]}``.

    sb3-contrib's ``MlpLstmPolicy`` layout: (normaliser) -> LSTM/GRU of ``units`` -> the ``hidden``
    Dense layers -> head. ``starts`` is 1.0 where step t begins an episode (the state is zeroed
    before it); ``state`` is the state before step 0 and the ``"state"`` output the one after step T-1.
    For a Dict space (``MultiInputLstmPolicy``) ``obs`` is ``{key: [B, T, *key_shape]}``, one named
    input per key, normalised / one-hot per key and concatenated in sorted-key order before the cell.
    """
    core = RecurrentCore(cell, units, ortho_init=ortho_init, seed=seed + 500, name="policy_recurrent")
    inputs, x = _sequence_inputs(obs_space, core.state_size, normalize_obs, "policy")
    h, _, final = core([x, inputs["starts"], inputs["state"]])
    h = build_mlp(hidden, activation, seed, "policy_torso", ortho_init=ortho_init, input_dim=units)(h)
    outputs = _heads(family, h, ortho_init, seed, log_std_init)
    outputs["state"] = final
    return keras.Model(inputs, outputs, name="policy")


def build_recurrent_value_model(
    obs_space: gym.Space,
    *,
    cell: str = "lstm",
    units: int = 64,
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    normalize_obs: bool = False,
    seed: int = 0,
    ortho_init: bool = True,
) -> keras.Model:
    """``{obs [B, T, *obs_shape], starts [B, T], state [B, S]} -> {"value": [B, T, 1], "states": [B, T, S]}``
    (a Dict space: ``obs`` as in ``build_recurrent_policy_model``).

    The critic has its own LSTM/GRU (sb3-contrib's default ``enable_critic_lstm=True``): sharing the
    policy's would let the critic's regression move the policy outside TRPO's trust region.
    ``"states"[:, t]`` is the state after step t, which the bootstrap values of truncated episodes
    and the next fragment start from.
    """
    core = RecurrentCore(cell, units, ortho_init=ortho_init, seed=seed + 1500, name="value_recurrent")
    inputs, x = _sequence_inputs(obs_space, core.state_size, normalize_obs, "value")
    h, states, _ = core([x, inputs["starts"], inputs["state"]])
    h = build_mlp(hidden, activation, seed + 1000, "value_torso", ortho_init=ortho_init, input_dim=units)(h)
    v = keras.layers.Dense(1, name="value_head", **_init(ortho_init, 1.0, int(h.shape[-1]), seed + 2000))(h)
    return keras.Model(inputs, {"value": v, "states": states}, name="value")


def build_value_model(
    obs_space: gym.Space,
    *,
    torso: TorsoSpec = None,
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    normalize_obs: bool = False,
    seed: int = 0,
    ortho_init: bool = True,
) -> keras.Model:
    """``obs [B, *obs_shape] float32 -> V [B, 1]``."""
    inputs, x = _model_inputs(obs_space, normalize_obs, "value")
    torso_layer = _instantiate_torso(torso, "value_torso", hidden, activation, seed + 1000, ortho_init, int(x.shape[-1]))
    h = _features(torso_layer, x)
    v = keras.layers.Dense(1, name="value_head", **_init(ortho_init, 1.0, int(h.shape[-1]), seed + 2000))(h)
    return keras.Model(inputs, v, name="value")
