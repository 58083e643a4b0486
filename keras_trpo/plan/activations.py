"""The activations a plan's Dense layers may have: the one table of their names.

Each is ``keras.activations.<name>`` with its default arguments, by Keras's own name. The value is
its NumPy form, which the NumPy actor runs, or None where NumPy has none that is both fast and
close (an agent with such a layer acts through its Keras model). The C export implements every
name: ``keras_trpo/export/c/policy.c``'s ``activate`` has one case per name, and the C is checked
against the TensorFlow agent for each (tests/test_export_c.py).
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

Activation = Callable[[np.ndarray], np.ndarray]

ACTIVATIONS: dict[str, Optional[Activation]] = {
    "linear": lambda x: x,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "selu": None,
    "softplus": None,
    "softsign": None,
    "silu": None,
    "swish": None,
    "gelu": None,
    "leaky_relu": None,
    "relu6": None,
    "hard_sigmoid": None,
    "exponential": None,
}


def numpy_activation(name: str) -> Activation:
    """The NumPy form of activation ``name``; ``ValueError`` if it has none."""
    fn = ACTIVATIONS.get(name)
    if fn is None:
        raise ValueError(f"activation {name!r} has no NumPy version")
    return fn
