"""A tune's progress as the parent sees it in the storage: counts, best so far, and how to show them.

In a terminal one line redrawn in place (stderr); anywhere else (a log, CI) a plain line each time
a trial starts or ends. Either way those lines also go to ``OUT/tune.log``.
No TensorFlow here (``keras_trpo.callbacks`` has the same terminal test, but imports Keras).
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Optional, TextIO


def is_terminal(stream: TextIO) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)()) and os.environ.get("TERM") != "dumb"


@dataclasses.dataclass(frozen=True)
class Counts:
    """The study's trials by state; ``best`` is (value, trial number) of the best complete trial."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0
    interrupted: int = 0
    running: int = 0
    best: Optional[tuple[float, int]] = None

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.failed

    @classmethod
    def of(cls, trials) -> "Counts":
        from optuna.trial import TrialState

        from keras_trpo.tune.study import INTERRUPTED_ATTR

        c = dict(complete=0, pruned=0, failed=0, interrupted=0, running=0)
        best = None
        for t in trials:
            if t.state == TrialState.COMPLETE:
                c["complete"] += 1
                if t.value is not None and (best is None or t.value > best[0]):
                    best = (t.value, t.number)
            elif t.state == TrialState.PRUNED:
                c["pruned"] += 1
            elif t.state == TrialState.FAIL:
                c["interrupted" if t.user_attrs.get(INTERRUPTED_ATTR) else "failed"] += 1
            elif t.state == TrialState.RUNNING:
                c["running"] += 1
        return cls(best=best, **c)

    def line(self, target: int, elapsed_s: float) -> str:
        best = f"best {self.best[0]:.4g} (trial {self.best[1]})" if self.best else "best -"
        extra = f", {self.interrupted} interrupted" if self.interrupted else ""
        return (f"trials {self.finished}/{target} done: {self.complete} complete, {self.pruned} pruned, "
                f"{self.failed} failed{extra}; {self.running} running; {best}; {_duration(elapsed_s)}")


def _duration(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class Progress:
    """Shows ``Counts`` as they change: a live line in a terminal, plain lines elsewhere, and a log file."""

    def __init__(self, target: int, log_path: Optional[Path] = None, stream: TextIO = sys.stderr,
                 live: Optional[bool] = None, verbose: int = 1):
        self.target, self.stream, self.verbose = target, stream, verbose
        self.live = is_terminal(stream) if live is None else live
        self.log_path = log_path
        self._last: Optional[Counts] = None
        self._start = time.monotonic()

    def message(self, text: str) -> None:
        """A line of its own (a failed trial's error): in the log, and shown above the live line."""
        if self.verbose:
            self.stream.write(("\r\033[K" if self.live else "") + text + "\n")
            self.stream.flush()
        self._log(text)

    def update(self, counts: Counts) -> None:
        changed = self._last is None or (counts.finished, counts.running, counts.interrupted) != (
            self._last.finished, self._last.running, self._last.interrupted)
        line = counts.line(self.target, time.monotonic() - self._start)
        if self.verbose and self.live:
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
        elif self.verbose and changed:
            self.stream.write(line + "\n")
            self.stream.flush()
        if changed:
            self._log(line)
        self._last = counts

    def close(self) -> None:
        if self.verbose and self.live and self._last is not None:
            self.stream.write("\n")
            self.stream.flush()

    def _log(self, text: str) -> None:
        if self.log_path is not None:
            with open(self.log_path, "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
