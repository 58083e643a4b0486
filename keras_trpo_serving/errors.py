"""serving's exceptions (one base class, so callers can catch everything serving raises) and the
helpers that word its errors. Standard library only: the HTTP body parser (keras_trpo_serving/body.py)
imports it."""
from __future__ import annotations

import numbers
from typing import Any, Iterable, Sequence


class ServingError(Exception):
    """Base class of serving's errors."""


class ModelLoadError(ServingError):
    """The model file is missing, corrupt, or not a policy written by keras-trpo's export."""


class InvalidObservation(ServingError, ValueError):
    """An observation of the wrong shape or dtype, or out of a Discrete space's range.

    The message names the shape the policy expects.
    """


class NonFiniteObservation(InvalidObservation):
    """An observation containing NaN or +-inf (the HTTP server answers 400 for these)."""


class InvalidNoise(InvalidObservation):
    """Noise for a sampled action of the wrong shape or dtype, NaN or inf, or uniforms outside [0, 1).

    A subclass of ``InvalidObservation`` so that callers (and the HTTP server's 422) treat bad
    noise like any other bad input.
    """


class InvalidState(InvalidObservation):
    """A recurrent state of the wrong shape or dtype, NaN or inf, for another batch size, or a state
    given to a feed-forward policy; also an ``episode_start`` that does not fit the batch.

    A subclass of ``InvalidObservation``: callers (and the HTTP server's 422) treat a bad state
    like any other bad input.
    """


class InvalidActionMask(InvalidObservation):
    """An action mask of the wrong shape or dtype, with values other than 0 and 1, that leaves no valid
    action (a categorical, a MultiDiscrete sub-space or a MultiBinary bit with nothing allowed), or a
    mask given to a policy whose actions cannot be masked (Box) or that was exported without a mask.

    A subclass of ``InvalidObservation``: callers (and the HTTP server's 422) treat a bad mask like
    any other bad input.
    """


def key_problems(got: Iterable, keys: Sequence[str]) -> str:
    """What is wrong with a Dict observation's keys ``got`` against the policy's ``keys``:
    "lacks the key(s) [...]" and/or "has the unknown key(s) [...]" (at most five named);
    empty if they are the same set. The one wording the policy's and the HTTP body's errors share."""
    got = set(got)
    missing = [k for k in keys if k not in got]
    extra = sorted(map(str, set(got) - set(keys)))
    parts = ([f"lacks the key(s) {missing}"] if missing else []) + ([f"has the unknown key(s) {extra[:5]}"] if extra else [])
    return " and ".join(parts)


def first_line(e: BaseException) -> str:
    """The first line of ``e``'s message (its type's name if it has none), at most 300 characters: what
    an error of ours quotes from a runtime's, whose messages can run to pages."""
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


def check_count(name: str, value: Any, minimum: int) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an integer (not a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:  # np.integer is Integral
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
