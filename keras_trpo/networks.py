"""Policy and value networks as Keras functional models."""
from __future__ import annotations

import math
from typing import Callable, Sequence, Union

import gymnasium as gym
import keras

from keras_trpo.distributions import Family
from keras_trpo.layers import ObservationNormalizer, OneHot, StateIndependentLogStd
from keras_trpo.spaces import obs_shape

TorsoSpec = Union[None, keras.Model, keras.layers.Layer, Callable[[], keras.layers.Layer]]


def build_mlp(hidden: Sequence[int], activation: str, seed: int, name: str) -> keras.Sequential:
    """Dense torso with orthogonal init (gain sqrt(2)) and zero biases, as in SB3."""
    layers = [
        keras.layers.Dense(
            units,
            activation=activation,
            kernel_initializer=keras.initializers.Orthogonal(gain=math.sqrt(2), seed=seed + i),
            bias_initializer="zeros",
            name=f"{name}_dense_{i}",
        )
        for i, units in enumerate(hidden)
    ]
    return keras.Sequential(layers, name=name)


def _instantiate_torso(torso: TorsoSpec, name: str, hidden, activation, seed) -> keras.layers.Layer:
    if torso is None:
        return build_mlp(hidden, activation, seed, name)
    if isinstance(torso, keras.layers.Layer):  # Models are Layers too
        # The value net gets a fresh copy so the two networks share nothing.
        return torso if name == "policy_torso" else keras.models.clone_model(torso)
    if callable(torso):
        layer = torso()
        if not isinstance(layer, keras.layers.Layer):
            raise TypeError(f"torso factory returned {type(layer).__name__}, expected a keras Layer or Model")
        return layer
    raise TypeError(f"torso must be None, a keras Model/Layer or a factory returning one, got {type(torso).__name__}")


def _preprocess(obs_space: gym.Space, inputs, normalize: bool, prefix: str):
    if isinstance(obs_space, gym.spaces.Discrete):
        return OneHot(int(obs_space.n), name=f"{prefix}_one_hot")(inputs)
    if normalize:
        return ObservationNormalizer(name=f"{prefix}_obs_normalizer")(inputs)
    return inputs


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
) -> keras.Model:
    """``obs [B, *obs_shape] float32 -> {param name: [B, size]}`` for ``family``."""
    inputs = keras.Input(shape=obs_shape(obs_space), dtype="float32", name="obs")
    x = _preprocess(obs_space, inputs, normalize_obs, "policy")
    h = _features(_instantiate_torso(torso, "policy_torso", hidden, activation, seed), x)
    head_init = keras.initializers.Orthogonal(gain=0.01, seed=seed + 100)  # near-uniform initial policy
    outputs = {}
    if family.param_names == ("logits",):
        outputs["logits"] = keras.layers.Dense(
            family.head_sizes["logits"], kernel_initializer=head_init, name="policy_logits"
        )(h)
    else:
        mean = keras.layers.Dense(family.head_sizes["mean"], kernel_initializer=head_init, name="policy_mean")(h)
        outputs["mean"] = mean
        outputs["log_std"] = StateIndependentLogStd(log_std_init, name="policy_log_std")(mean)
    return keras.Model(inputs, outputs, name="policy")


def build_value_model(
    obs_space: gym.Space,
    *,
    torso: TorsoSpec = None,
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    normalize_obs: bool = False,
    seed: int = 0,
) -> keras.Model:
    """``obs [B, *obs_shape] float32 -> V [B, 1]``."""
    inputs = keras.Input(shape=obs_shape(obs_space), dtype="float32", name="obs")
    x = _preprocess(obs_space, inputs, normalize_obs, "value")
    h = _features(_instantiate_torso(torso, "value_torso", hidden, activation, seed + 1000), x)
    v = keras.layers.Dense(
        1, kernel_initializer=keras.initializers.Orthogonal(gain=1.0, seed=seed + 2000), name="value_head"
    )(h)
    return keras.Model(inputs, v, name="value")
