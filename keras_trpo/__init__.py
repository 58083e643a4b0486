"""keras_trpo: Trust Region Policy Optimization for TensorFlow/Keras."""
__version__ = "0.1.0"

from keras_trpo.agent import TRPO, load  # noqa: E402
from keras_trpo.config import ConfigError, TRPOConfig, default_config  # noqa: E402
from keras_trpo.serialization import AgentFileError  # noqa: E402
from keras_trpo.spaces import InvalidObservationError, UnsupportedSpaceError  # noqa: E402

__all__ = ["TRPO", "load", "TRPOConfig", "default_config", "ConfigError", "AgentFileError",
           "InvalidObservationError", "UnsupportedSpaceError", "__version__"]
