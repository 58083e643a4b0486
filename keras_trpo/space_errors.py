"""The errors about spaces and observations, below both ``spaces`` and ``dict_obs`` (which raise them
and are imported by each other's callers), so neither has to import the other's module for them."""
from __future__ import annotations


class UnsupportedSpaceError(ValueError):
    """An observation or action space keras_trpo cannot handle (yet)."""


class InvalidObservationError(ValueError):
    """An observation with the wrong shape or dtype, or with NaN / inf."""
