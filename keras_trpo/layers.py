"""Keras layers that make the policy model self-contained for saving and export."""
from __future__ import annotations

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="keras_trpo")
class ObservationNormalizer(keras.layers.Layer):
    """``clip((x - mean) / sqrt(var + eps), -clip, +clip)`` with frozen statistics.

    The statistics are non-trainable weights, so ``save`` and export carry them;
    the agent updates them from rollouts (``set_statistics``) between updates.
    """

    def __init__(self, clip: float = 10.0, epsilon: float = 1e-8, sequence: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.clip = float(clip)
        self.epsilon = float(epsilon)
        self.sequence = bool(sequence)  # input [B, T, *obs]: statistics per observation entry, not per step

    def build(self, input_shape):
        shape = tuple(input_shape[2:] if self.sequence else input_shape[1:])
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
        config = {**super().get_config(), "clip": self.clip, "epsilon": self.epsilon}
        if self.sequence:  # only when set, so feed-forward files keep their config
            config["sequence"] = True
        return config


@keras.saving.register_keras_serializable(package="keras_trpo")
class OneHot(keras.layers.Layer):
    """Discrete observation ``[B]`` (float or int) -> one-hot ``[B, n]``; with ``sequence``, ``[B, T] -> [B, T, n]``."""

    def __init__(self, n: int, sequence: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.n = int(n)
        self.sequence = bool(sequence)

    def call(self, x):
        if not self.sequence:
            x = ops.reshape(x, (-1,))
        # relu(1 - |i - k|) for k = 0..n-1 rather than ops.one_hot: the same 0/1 values (the index truncated
        # as before, out of range all zeros), in SUB, ABS and RELU, which TensorFlow Lite Micro has kernels
        # for (it has no ONE_HOT), so a policy on Discrete observations runs there too.
        index = ops.cast(ops.cast(x, "int32"), self.compute_dtype)
        k = ops.convert_to_tensor(np.arange(self.n), dtype=self.compute_dtype)
        return ops.relu(1.0 - ops.abs(ops.expand_dims(index, -1) - k))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.n) if self.sequence else (input_shape[0], self.n)

    def get_config(self):
        config = {**super().get_config(), "n": self.n}
        if self.sequence:
            config["sequence"] = True
        return config


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


@keras.saving.register_keras_serializable(package="keras_trpo")
class RecurrentCore(keras.layers.Layer):
    """An LSTM or GRU over sequences whose state is zeroed before every step flagged as an episode start.

    ``call([x, starts, state])``: ``x [B, T, F]``, ``starts [B, T]`` (1.0 where step t begins an
    episode), ``state [B, S]`` (the state before step 0) -> ``(outputs [B, T, units], states
    [B, T, S], final [B, S])``: ``states[:, t]`` is the state after step t, ``outputs`` its ``h``
    part. The flat state is ``[h, c]`` (S = 2 units) for an LSTM and ``h`` (S = units) for a GRU.

    Weights and equations are Keras's ``LSTMCell`` / ``GRUCell`` (``reset_after=True``) ones, and
    ``sequences.lstm_step`` / ``gru_step`` are the same in NumPy. Keras's own ``LSTM`` layer cannot
    reset its state in the middle of a sequence (its mask *skips* a step, keeping the state), and a
    rollout fragment holds many episodes, so the loop is here: ``tf.scan`` over time (a while loop,
    compiled by XLA, differentiable twice for the Fisher-vector product), with the input projection
    of every step done as one matrix product before it. A sequence of statically one step skips the
    loop (the same arithmetic), so a one-step serving graph has no while loop in it.

    Initialisation as sb3-contrib's recurrent policies: with ``ortho_init`` orthogonal kernels
    (gain 1) and zero biases; without, PyTorch's ``nn.LSTM``/``nn.GRU`` default U(-1/sqrt(u), 1/sqrt(u)).
    """

    def __init__(self, cell: str = "lstm", units: int = 64, ortho_init: bool = True, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if cell not in ("lstm", "gru"):
            raise ValueError(f"recurrent cell must be 'lstm' or 'gru', got {cell!r}")
        self.cell, self.units, self.ortho_init, self.seed = cell, int(units), bool(ortho_init), int(seed)
        self.gates = 4 if cell == "lstm" else 3
        self.state_size = 2 * self.units if cell == "lstm" else self.units

    def _initializer(self, offset: int):
        if self.ortho_init:
            return keras.initializers.Orthogonal(gain=1.0, seed=self.seed + offset)
        bound = 1.0 / self.units ** 0.5
        return keras.initializers.RandomUniform(-bound, bound, seed=self.seed + offset)

    def build(self, input_shape):
        features = int(input_shape[0][-1])
        width = self.gates * self.units
        self.kernel = self.add_weight(name="kernel", shape=(features, width), initializer=self._initializer(0))
        self.recurrent_kernel = self.add_weight(name="recurrent_kernel", shape=(self.units, width),
                                                initializer=self._initializer(1))
        bias_shape = (width,) if self.cell == "lstm" else (2, width)
        bias_init = "zeros" if self.ortho_init else self._initializer(2)
        self.bias = self.add_weight(name="bias", shape=bias_shape, initializer=bias_init)

    def _step(self, state, xw):
        """``state [B, S]``, ``xw [B, G u]`` (x @ kernel, bias not yet added) -> new state ``[B, S]``."""
        u = self.units
        if self.cell == "lstm":
            h, c = state[:, :u], state[:, u:]
            z = xw + self.bias + ops.matmul(h, self.recurrent_kernel)
            i, f, g, o = (z[:, k * u:(k + 1) * u] for k in range(4))
            c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
            return ops.concatenate([ops.sigmoid(o) * ops.tanh(c), c], axis=1)
        xz = xw + self.bias[0]
        hz = ops.matmul(state, self.recurrent_kernel) + self.bias[1]
        z = ops.sigmoid(xz[:, :u] + hz[:, :u])
        r = ops.sigmoid(xz[:, u:2 * u] + hz[:, u:2 * u])
        hh = ops.tanh(xz[:, 2 * u:] + r * hz[:, 2 * u:])
        return z * state + (1.0 - z) * hh

    def call(self, inputs):
        import tensorflow as tf  # the loop is TensorFlow's; the rest of the layer is backend-neutral

        x, starts, state = inputs
        if x.shape[1] == 1:  # one step (an export's serving graph): no loop, so no ONNX Loop / TFLite WHILE
            keep = 1.0 - tf.cast(starts, self.compute_dtype)  # [B, 1]
            xw = tf.matmul(tf.cast(x[:, 0], self.compute_dtype), self.kernel)
            new = self._step(tf.cast(state, self.compute_dtype) * keep, xw)
            return new[:, None, :self.units], new[:, None], new
        x_time = tf.transpose(tf.cast(x, self.compute_dtype), [1, 0, 2])  # [T, B, F]
        xw = tf.einsum("tbf,fo->tbo", x_time, self.kernel)  # every step's input projection at once
        keep = 1.0 - tf.transpose(tf.cast(starts, self.compute_dtype), [1, 0])[:, :, None]  # [T, B, 1]

        def step(prev, elems):
            xw_t, keep_t = elems
            return self._step(prev * keep_t, xw_t)

        states = tf.scan(step, (xw, keep), initializer=tf.cast(state, self.compute_dtype))  # [T, B, S]
        states = tf.transpose(states, [1, 0, 2])
        return states[:, :, :self.units], states, states[:, -1]

    def compute_output_shape(self, input_shape):
        b, t = input_shape[0][0], input_shape[0][1]
        return (b, t, self.units), (b, t, self.state_size), (b, self.state_size)

    def get_config(self):
        return {**super().get_config(), "cell": self.cell, "units": self.units, "ortho_init": self.ortho_init,
                "seed": self.seed}
