"""Callbacks specific to timestep-based training (standard Keras callbacks work too)."""
from __future__ import annotations

import csv
import math
import os
import sys
import time
from typing import Callable, Optional, Sequence

import keras


def _is_terminal(stream=None) -> bool:
    """Whether progress can be redrawn in place (a terminal or a notebook), not a log file or CI."""
    stream = stream or sys.stdout
    if "ipykernel" in sys.modules or "PYCHARM_HOSTED" in os.environ:
        return True
    return bool(getattr(stream, "isatty", lambda: False)()) and os.environ.get("TERM") != "dumb"


def fit_callbacks(callbacks: Optional[Sequence[keras.callbacks.Callback]], model, total_timesteps: int,
                  verbose: int) -> keras.callbacks.CallbackList:
    """The callbacks of one ``fit`` (with a ``TimestepProgbar`` unless ``verbose=0``) and its ``History``."""
    cbs = list(callbacks or [])
    if verbose:
        cbs.append(TimestepProgbar(total_timesteps, verbose=verbose))
    return keras.callbacks.CallbackList(cbs, add_history=True, model=model, verbose=verbose,
                                        epochs=None, steps=None, total_timesteps=total_timesteps)


class TimestepProgbar(keras.callbacks.Callback):
    """Progress over environment timesteps, showing the mean return.

    In a terminal it is a Keras progress bar redrawn in place. Anywhere else (a log file, a
    pipe, CI) Keras's bar would write carriage returns and colour escape codes, so it prints
    plain lines instead: one each time progress passes another ``plain_every`` fraction or
    ``plain_seconds`` have gone by, and one at the end. ``verbose=2`` prints only the last.
    Progress counts from the timesteps the agent had when ``fit`` began, so a resumed run
    shows its own part.
    """

    SHOWN = ("mean_return", "kl", "value_loss", "steps_per_s")

    def __init__(self, total_timesteps: int, verbose: int = 1, plain: Optional[bool] = None,
                 plain_every: float = 0.05, plain_seconds: float = 60.0):
        super().__init__()
        self.total_timesteps, self.verbose = int(total_timesteps), verbose
        self.plain = (not _is_terminal()) if plain is None else plain
        self.plain_every, self.plain_seconds = plain_every, plain_seconds

    def on_train_begin(self, logs=None):
        self._start_timesteps = int(getattr(self.model, "num_timesteps", 0) or 0) if self.model is not None else 0
        self._start = self._last_print = time.monotonic()
        self._last_fraction, self._done, self._finished = 0.0, 0, False
        if not self.plain:
            self.bar = keras.utils.Progbar(self.total_timesteps, stateful_metrics=self.SHOWN, unit_name="step",
                                           verbose=self.verbose)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self._done = min(int(logs.get("timesteps", 0)) - self._start_timesteps, self.total_timesteps)
        self._finished = self._done >= self.total_timesteps
        values = [(k, float(logs[k])) for k in self.SHOWN if k in logs and not math.isnan(logs[k])]
        if not self.plain:
            self.bar.update(self._done, values=values, finalize=self._finished)
            return
        now, fraction = time.monotonic(), self._done / max(self.total_timesteps, 1)
        due = (fraction - self._last_fraction >= self.plain_every or now - self._last_print >= self.plain_seconds)
        if self._finished or (self.verbose == 1 and due):
            self._print_line(values, now)
            self._last_fraction, self._last_print = fraction, now

    def on_train_end(self, logs=None):
        if self._finished:
            return
        if self.plain:  # stopped early (EarlyStopping, Ctrl-C): say where
            print(f"stopped at {self._done}/{self.total_timesteps} steps", flush=True)
        elif self._done:
            print(flush=True)  # leave the unfinished bar's line

    def _print_line(self, values, now: float) -> None:
        elapsed = now - self._start
        line = f"{self._done}/{self.total_timesteps} steps {100 * self._done / max(self.total_timesteps, 1):3.0f}%"
        line += f" - {elapsed:.0f}s"
        if not self._finished and self._done:
            line += f" - eta {elapsed * (self.total_timesteps - self._done) / self._done:.0f}s"
        line += "".join(f" - {k}: {v:.4g}" for k, v in values)
        print(line, flush=True)


class MetricsCSVLogger(keras.callbacks.CSVLogger):
    """``keras.callbacks.CSVLogger`` without the empty ``val_*`` columns it adds for ``fit``
    runs that have no validation data, and with ``timesteps`` as the first metric column.

    With ``append=True`` it continues an existing file under that file's own header (a
    resumed run); columns the header lacks are left out, missing ones written as NA.
    """

    def on_epoch_end(self, epoch, logs=None):
        if self.keys is None and logs:
            header = self._existing_header() if self.append else None
            self.keys = header[1:] if header else sorted(logs, key=lambda k: (k != "timesteps", k))
        super().on_epoch_end(epoch, logs)

    def _existing_header(self) -> Optional[list[str]]:
        try:
            with open(self.filename, newline="") as f:
                header = next(csv.reader(f), None)
        except OSError:
            return None
        return header if header and header[0] == "epoch" else None


class PeriodicCheckpoint(keras.callbacks.Callback):
    """Save the agent to ``filepath`` every ``every`` iterations (atomically: ``agent.save``).

    It saves when an iteration *begins*, so the file always holds whole iterations: at that
    point the agent's iteration counter, timesteps, weights, optimizer, normaliser and RNG
    all describe the same moment. The schedule counts the agent's own iterations, so a
    resumed run keeps it. The state a run ends in is for the caller to save.
    """

    def __init__(self, filepath: str, every: int):
        super().__init__()
        if every <= 0:
            raise ValueError(f"every must be a positive number of iterations, got {every!r}")
        self.filepath, self.every = str(filepath), int(every)
        self.saved_at: list[int] = []

    def on_train_begin(self, logs=None):
        self._first = int(self.model.iterations)

    def on_epoch_begin(self, epoch, logs=None):
        done = int(self.model.iterations)
        if done > self._first and done % self.every == 0:
            self.model.save(self.filepath)
            self.saved_at.append(done)


class StopWhen(keras.callbacks.Callback):
    """Set ``stop_training`` at the end of the first iteration after which ``condition()`` holds
    (e.g. a Ctrl-C was received): the iteration in progress is finished, not thrown away."""

    def __init__(self, condition: Callable[[], bool]):
        super().__init__()
        self.condition = condition

    def on_epoch_end(self, epoch, logs=None):
        if self.condition():
            self.model.stop_training = True
