"""Agent -> TensorFlow SavedModel with a ``serving_default`` signature and metadata beside it."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from export.errors import ExportError
from export.graph import input_signature, serving_function
from export.metadata import policy_metadata
from export.onnx_export import ExportReport, _agent_reference, _require_agent
from export.verify import compare_outputs, run_in_batches, verification_observations
from keras_trpo.distributions import DiagGaussian

METADATA_FILE = "keras_trpo_metadata.json"


class _PolicyModule(tf.Module):
    def __init__(self, agent):
        super().__init__()
        self.policy = agent.policy_model  # tracked: its variables are saved
        self.serve = tf.function(serving_function(agent), input_signature=input_signature(agent))


def _replace_dir(src: Path, dst: Path) -> None:
    """Move a finished directory into place; an old one is removed only after the move."""
    backup = None
    if dst.exists():
        backup = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, backup)
    os.replace(src, dst)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def to_saved_model(agent, path: str | os.PathLike, *, verify: bool = True,
                   verify_observations: Optional[np.ndarray] = None) -> ExportReport:
    """Write a SavedModel directory loadable with ``tf.saved_model.load`` without keras_trpo.

    ``serving_default``: ``obs`` -> ``action`` and distribution parameters.
    ``keras_trpo_metadata.json`` in the directory holds the same metadata as the ONNX file.
    """
    _require_agent(agent)
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ExportError(f"{str(path)!r} exists and is a file; a SavedModel is a directory")
    if path.exists() and any(path.iterdir()) and not (path / "saved_model.pb").exists():
        raise ExportError(f"{str(path)!r} is a non-empty directory that is not a SavedModel; refusing to replace it")
    parent = path.resolve().parent
    if not parent.exists():
        raise ExportError(f"directory {str(parent)!r} does not exist")
    start = time.perf_counter()
    module = _PolicyModule(agent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=parent))
    try:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": module.serve})
        (tmp / METADATA_FILE).write_text(json.dumps(policy_metadata(agent), indent=1))
        _replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    report = ExportReport(str(path), size, 0.0, metadata=policy_metadata(agent))
    if verify:
        obs = verify_observations if verify_observations is not None else verification_observations(agent)
        obs = np.asarray(obs, np.float32)
        loaded = tf.saved_model.load(str(path)).signatures["serving_default"]
        got = run_in_batches(lambda o: {k: v.numpy() for k, v in loaded(obs=tf.constant(o)).items()}, obs)
        discrete = not isinstance(agent.family, DiagGaussian)
        report.worst_difference = compare_outputs(_agent_reference(agent, obs), got, discrete, f"SavedModel {path}")
        report.verified_observations = len(obs)
    report.seconds = time.perf_counter() - start
    return report
