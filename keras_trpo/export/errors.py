class ExportError(ValueError):
    """The agent, path or option cannot be exported as asked."""


class ExportVerificationError(ExportError):
    """The exported file does not reproduce the agent's outputs."""
