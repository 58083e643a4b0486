"""Ctrl-C (SIGINT) and SIGTERM as "stop after this iteration", for the command-line trainer."""
from __future__ import annotations

import os
import signal
import sys
from typing import Optional


class GracefulStop:
    """Within the block, the first SIGINT or SIGTERM only sets ``signum``; a second one of either
    restores the previous handlers and raises ``KeyboardInterrupt`` (abort now).

    Training checks ``requested`` after each iteration (``callbacks.StopWhen``), so the
    iteration in progress is finished and can be saved; the caller then exits with
    ``exit_code`` (128 + the signal number: 130 for Ctrl-C, 143 for SIGTERM).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, message: str = "stopping at the end of this iteration (Ctrl-C again to abort now)"):
        self.message = message
        self.signum: Optional[int] = None
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def exit_code(self) -> int:
        return 128 + self.signum if self.signum is not None else 0

    def _handle(self, signum, frame):
        if os.getpid() != self._pid:
            # A forked env worker inherited this handler; a terminal's Ctrl-C reaches the whole process
            # group, and the worker must keep serving the parent, which stops it when training ends.
            return
        if self.signum is not None:
            self._restore()
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: {self.message}", file=sys.stderr, flush=True)

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __enter__(self) -> "GracefulStop":
        self._pid = os.getpid()
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        self._restore()
