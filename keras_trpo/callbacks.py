"""Callbacks specific to timestep-based training (standard Keras callbacks work too)."""
from __future__ import annotations

import math

import keras


class TimestepProgbar(keras.callbacks.Callback):
    """A Keras progress bar over environment timesteps, showing the mean return.

    ``fit(verbose=1)`` adds it; ``verbose=2`` prints one line per iteration instead.
    """

    SHOWN = ("mean_return", "kl", "value_loss", "steps_per_s")

    def __init__(self, total_timesteps: int, verbose: int = 1):
        super().__init__()
        self.total_timesteps, self.verbose = int(total_timesteps), verbose

    def on_train_begin(self, logs=None):
        self.bar = keras.utils.Progbar(self.total_timesteps, stateful_metrics=self.SHOWN, unit_name="step",
                                       verbose=self.verbose)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        values = [(k, logs[k]) for k in self.SHOWN if k in logs and not math.isnan(logs[k])]
        self.bar.update(min(int(logs.get("timesteps", 0)), self.total_timesteps), values=values,
                        finalize=logs.get("timesteps", 0) >= self.total_timesteps)


class MetricsCSVLogger(keras.callbacks.CSVLogger):
    """``keras.callbacks.CSVLogger`` without the empty ``val_*`` columns it adds for ``fit``
    runs that have no validation data, and with ``timesteps`` as the first metric column."""

    def on_epoch_end(self, epoch, logs=None):
        if self.keys is None and logs:
            self.keys = sorted(logs, key=lambda k: (k != "timesteps", k))
        super().on_epoch_end(epoch, logs)
