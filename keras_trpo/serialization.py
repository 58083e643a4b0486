"""The agent file: a zip that is a valid Keras ``.keras`` file of the policy model,
plus ``keras_trpo/`` entries for the value model, optimizer state and agent state.

No pickle: JSON, HDF5 weights (via Keras) and ``.npz`` loaded with allow_pickle=False.
Written atomically (keras_trpo_serving/files.py).
"""
from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from keras_trpo.agent_file import (FORMAT, FORMAT_VERSION, PREFIX, UNREADABLE, AgentFileError, check_agent_path,
                                   read_state, unreadable)
from keras_trpo_serving.files import atomic_write_bytes


def _model_bytes(model: keras.Model) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.keras")
        model.save(p)
        return Path(p).read_bytes()


def _load_model_bytes(data: bytes, what: str) -> keras.Model:
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.keras")
        Path(p).write_bytes(data)
        try:
            return keras.saving.load_model(p, compile=False, safe_mode=True)
        except Exception as e:  # noqa: BLE001 - re-raised with context
            raise AgentFileError(f"the {what} inside the agent file could not be loaded: {e}") from e


def _npz_bytes(arrays: list[np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{f"v{i:04d}": a for i, a in enumerate(arrays)})
    return buf.getvalue()


def _npz_arrays(data: bytes) -> list[np.ndarray]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return [z[k] for k in sorted(z.files)]


def write_agent_file(path, policy: keras.Model, value: keras.Model, state: dict[str, Any],
                     optimizer_config: dict, optimizer_variables: list[np.ndarray]) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        # The policy model's own .keras entries at the top level: Keras can load the file as the policy.
        with zipfile.ZipFile(io.BytesIO(_model_bytes(policy))) as pol:
            for info in pol.infolist():
                out.writestr(info.filename, pol.read(info))
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION}
        out.writestr(PREFIX + "format.json", json.dumps(meta))
        out.writestr(PREFIX + "state.json", json.dumps(state, indent=1))
        out.writestr(PREFIX + "value.keras", _model_bytes(value))
        out.writestr(PREFIX + "value_optimizer.json", json.dumps(optimizer_config))
        out.writestr(PREFIX + "value_optimizer.npz", _npz_bytes(optimizer_variables))
    atomic_write_bytes(path, buf.getvalue())


def read_agent_file(path) -> dict[str, Any]:
    """Returns policy, value (Keras models), state, optimizer_config, optimizer_variables."""
    path = check_agent_path(path)
    try:
        with zipfile.ZipFile(path) as z:
            state = read_state(z, path)
            value_bytes = z.read(PREFIX + "value.keras")
            opt_config = json.loads(z.read(PREFIX + "value_optimizer.json"))
            opt_vars = _npz_arrays(z.read(PREFIX + "value_optimizer.npz"))
            policy_buf = io.BytesIO()
            with zipfile.ZipFile(policy_buf, "w") as pol:
                for info in z.infolist():
                    if not info.filename.startswith(PREFIX):
                        pol.writestr(info.filename, z.read(info))
    except AgentFileError:
        raise
    except UNREADABLE as e:
        raise unreadable(path, e) from e
    return {
        "policy": _load_model_bytes(policy_buf.getvalue(), "policy model"),
        "value": _load_model_bytes(value_bytes, "value model"),
        "state": state,
        "optimizer_config": opt_config,
        "optimizer_variables": opt_vars,
    }
