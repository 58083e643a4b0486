"""The agent file's container, without TensorFlow: its format marker and the agent's state (JSON).

``keras_trpo.load`` reads the models on top of this (serialization.py). The command line reads only this
first, so that a missing or foreign file, or a resume that would change the run, is refused in a fraction
of a second instead of after TensorFlow's import (about 4 s).
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

FORMAT = "keras_trpo.agent"
FORMAT_VERSION = 1
PREFIX = "keras_trpo/"  # the agent's own entries; the policy model's .keras entries sit at the top level


class AgentFileError(ValueError):
    """A file that is missing, corrupt, or not a keras_trpo agent."""


def check_agent_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path, or ``AgentFileError`` if nothing is there or it is a directory."""
    path = Path(path)
    if not path.exists():
        raise AgentFileError(f"no agent file at {str(path)!r}")
    if path.is_dir():
        raise AgentFileError(f"{str(path)!r} is a directory, not a keras_trpo agent file (.keras)")
    return path


def read_state(z: zipfile.ZipFile, path: str | os.PathLike) -> dict[str, Any]:
    """The agent's state (``TRPO.save``'s dict: env id, seed, config, ...) from an open agent zip;
    ``AgentFileError`` if the zip is not a keras_trpo agent file or a newer format than this version reads."""
    if PREFIX + "format.json" not in z.namelist():
        raise AgentFileError(f"{str(path)!r} is a zip but not a keras_trpo agent file (no {PREFIX}format.json); "
                             "was it saved with agent.save()?")
    meta = json.loads(z.read(PREFIX + "format.json"))
    if meta.get("format") != FORMAT or int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise AgentFileError(f"{str(path)!r} has unsupported format {meta!r}")
    return json.loads(z.read(PREFIX + "state.json"))


# What a damaged file raises from zipfile and json, turned into AgentFileError by the readers.
UNREADABLE = (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError, ValueError, EOFError)


def unreadable(path: str | os.PathLike, error: Exception) -> AgentFileError:
    """The error for a file that fails to read as an agent file (``error``: one of ``UNREADABLE``)."""
    return AgentFileError(f"{str(path)!r} is not a readable keras_trpo agent file (corrupt or truncated): {error}")


def read_agent_state(path: str | os.PathLike) -> dict[str, Any]:
    """The state of the agent file at ``path`` without loading its models (no TensorFlow);
    ``AgentFileError`` naming the problem if it is missing, a directory, corrupt or not an agent file."""
    path = check_agent_path(path)
    try:
        with zipfile.ZipFile(path) as z:
            return read_state(z, path)
    except AgentFileError:
        raise
    except UNREADABLE as e:
        raise unreadable(path, e) from e
