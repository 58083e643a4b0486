class ServingError(Exception):
    """Base class of serving's errors."""


class ModelLoadError(ServingError):
    """The model file is missing, corrupt, or not a keras_trpo export."""


class InvalidObservation(ServingError, ValueError):
    """An observation of the wrong shape or dtype, or with NaN / inf."""
