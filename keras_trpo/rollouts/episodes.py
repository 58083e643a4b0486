"""The window of recent episodes behind ``mean_return`` and ``mean_length`` (SB3's ``ep_info_buffer``)."""
from __future__ import annotations

import collections
from typing import Any

import numpy as np

from keras_trpo.rollouts.worker import Rollout


class EpisodeWindow(collections.deque):
    """The last ``maxlen`` finished episodes as ``(return, length)``, oldest first.

    A saved agent keeps it (``state``), so that a resumed run's ``mean_return`` continues.
    """

    def __init__(self, maxlen: int = 100):
        super().__init__(maxlen=maxlen)

    def add(self, rollout: Rollout) -> None:
        """The episodes that ended in ``rollout``, in (step, env) order, with their unscaled returns."""
        self.extend(zip(rollout.episode_returns, rollout.episode_lengths))

    def logs(self) -> dict[str, float]:
        """``mean_return`` and ``mean_length`` over the window (nan before the first episode ends)."""
        if not self:
            return {"mean_return": float("nan"), "mean_length": float("nan")}
        returns, lengths = zip(*self)
        return {"mean_return": float(np.mean(returns)), "mean_length": float(np.mean(lengths))}

    def state(self) -> list[list]:
        """``[[return, length], ...]``, JSON-ready."""
        return [[float(r), int(n)] for r, n in self]

    def load_state(self, episodes: Any) -> None:
        """Append ``state()``'s pairs; a ValueError says what is wrong with them."""
        try:
            self.extend((float(r), int(n)) for r, n in episodes)
        except (TypeError, ValueError) as e:
            raise ValueError(f"'episodes' must be [return, length] pairs: {e}") from e
