"""keras_trpo: Trust Region Policy Optimization for TensorFlow/Keras.

The public names are imported lazily (PEP 562) so that ``import keras_trpo.<module>`` for a
TensorFlow-free piece (the rollout workers, the command line's ``--help``) does not pay
TensorFlow's 3 s and 590 MB start-up.
"""
from __future__ import annotations

from keras_trpo_serving.lazy import lazy_attributes

__version__ = "0.1.0"

_LAZY = {
    "TRPO": "keras_trpo.agent",
    "load": "keras_trpo.agent",
    "TRPOConfig": "keras_trpo.config",
    "default_config": "keras_trpo.config",
    "ConfigError": "keras_trpo.config",
    "load_config": "keras_trpo.config_file",
    "AgentFileError": "keras_trpo.agent_file",
    "InvalidObservationError": "keras_trpo.space_errors",
    "UnsupportedSpaceError": "keras_trpo.space_errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
