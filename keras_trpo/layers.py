"""Keras layers that make the policy model self-contained for saving and export."""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_trpo")
class ObservationNormalizer(keras.layers.Layer):
    """``clip((x - mean) / sqrt(var + eps), -clip, +clip)`` with frozen statistics.

    The statistics are non-trainable weights, so ``save`` and export carry them;
    the agent updates them from rollouts (``set_statistics``) between updates.
    """

    def __init__(self, clip: float = 10.0, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.clip = float(clip)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        shape = tuple(input_shape[1:])
        self.mean = self.add_weight(name="mean", shape=shape, initializer="zeros", trainable=False)
        self.var = self.add_weight(name="var", shape=shape, initializer="ones", trainable=False)

    def call(self, x):
        x = ops.cast(x, self.compute_dtype)
        z = (x - self.mean) / ops.sqrt(self.var + self.epsilon)
        return ops.clip(z, -self.clip, self.clip)

    def set_statistics(self, mean, var) -> None:
        self.mean.assign(ops.cast(ops.reshape(mean, self.mean.shape), self.mean.dtype))
        self.var.assign(ops.cast(ops.reshape(var, self.var.shape), self.var.dtype))

    def get_config(self):
        return {**super().get_config(), "clip": self.clip, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="keras_trpo")
class OneHot(keras.layers.Layer):
    """Discrete observation ``[B]`` (float or int) -> one-hot ``[B, n]``."""

    def __init__(self, n: int, **kwargs):
        super().__init__(**kwargs)
        self.n = int(n)

    def call(self, x):
        return ops.one_hot(ops.cast(ops.reshape(x, (-1,)), "int32"), self.n, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n)

    def get_config(self):
        return {**super().get_config(), "n": self.n}


@keras.saving.register_keras_serializable(package="keras_trpo")
class StateIndependentLogStd(keras.layers.Layer):
    """Learned log-std vector broadcast to the batch of ``mean`` it is called on."""

    def __init__(self, initial_value: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_value = float(initial_value)

    def build(self, input_shape):
        self.log_std = self.add_weight(
            name="log_std",
            shape=(input_shape[-1],),
            initializer=keras.initializers.Constant(self.initial_value),
            trainable=True,
        )

    def call(self, mean):
        return ops.zeros_like(mean) + self.log_std

    def get_config(self):
        return {**super().get_config(), "initial_value": self.initial_value}
