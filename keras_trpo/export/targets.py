"""Checks on where an export is asked to write, before any work is done."""
from __future__ import annotations

import os
from pathlib import Path

from keras_trpo.export.errors import ExportError


def check_target(path: str | os.PathLike, suffix: str, kind: str = "ONNX") -> Path:
    """``path`` as a Path, or ``ExportError`` if it is a directory, lacks ``suffix`` or its
    directory does not exist."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise ExportError(f"{str(path)!r} is a directory; give a file path ending in {suffix}")
    if path.suffix != suffix:
        raise ExportError(f"{kind} files end in {suffix}; got {str(path)!r}")
    if path.parent and not path.parent.exists():
        raise ExportError(f"directory {str(path.parent)!r} does not exist")
    return path
