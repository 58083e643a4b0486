"""Agent -> TensorFlow SavedModel with a ``serving_default`` signature and metadata beside it.

The module saved tracks the ``tf.Variable`` under each Keras weight, not the Keras model. Tracking
the Keras model (as this file did before) kept Keras 3's weights as resource variables that the
TFLite converter leaves in the flatbuffer as ``VAR_HANDLE`` / ``READ_VARIABLE`` ops nothing
initialises: a user's own ``TFLiteConverter.from_saved_model`` on it gave NaN for every output.
Tracking the variables lets the converter freeze them into constants; the ``.tflite`` export
converts this same module (``write_saved_model``).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Optional

import tensorflow as tf

from keras_trpo.export.description import PolicyDescription, describe
from keras_trpo.export.errors import ExportError
from keras_trpo.export.graph import input_signature, serving_function
from keras_trpo.export.inputs import Feeds, Runner, run_in_batches
from keras_trpo.export.metadata import policy_metadata
from keras_trpo.export.observations import Inputs
from keras_trpo.export.report import ExportReport
from keras_trpo.export.verify import verify_file

METADATA_FILE = "keras_trpo_metadata.json"
SIGNATURE = "serving_default"


class PolicyModule(tf.Module):
    """``serve``: the serving function; ``frozen_weights``: the ``tf.Variable`` under each Keras
    weight, tracked so they are saved and a converter can freeze them (see module doc)."""

    def __init__(self, desc: PolicyDescription, serve=None, stochastic: bool = False):
        super().__init__()
        # A Keras 3 weight on the TensorFlow backend holds its tf.Variable in ``.value``.
        variables = [w if isinstance(w, tf.Variable) else getattr(w, "value", None) for w in desc.model.weights]
        bad = [type(v).__name__ for v in variables if not isinstance(v, tf.Variable)]
        if bad:
            raise ExportError(f"cannot save the policy's weights as TensorFlow variables: found {bad[:3]} "
                              "(is Keras running on the TensorFlow backend?)")
        self.frozen_weights = variables
        self.serve = tf.function(serve or serving_function(desc, stochastic=stochastic),
                                 input_signature=input_signature(desc, stochastic))


def write_saved_model(desc: PolicyDescription, directory: str | os.PathLike, serve=None, stochastic: bool = False) -> None:
    """Save ``PolicyModule(desc)`` into an existing empty ``directory`` with signature
    ``serving_default`` (``serve`` replaces the serving function, e.g. a TFLite Micro variant;
    ``stochastic``: it takes ``(obs, noise)``)."""
    module = PolicyModule(desc, serve, stochastic)
    tf.saved_model.save(module, str(directory), signatures={SIGNATURE: module.serve})


def _replace_dir(src: Path, dst: Path) -> None:
    """Move a finished directory into place; an old one is removed only after the move."""
    backup = None
    if dst.exists():
        backup = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, backup)
    os.replace(src, dst)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def saved_model_runner(path: str | os.PathLike) -> Runner:
    """The runner of a SavedModel directory's ``serving_default`` (inputs by name -> outputs by name)."""
    loaded = tf.saved_model.load(str(path)).signatures[SIGNATURE]

    def run(feeds: Feeds) -> dict:
        return run_in_batches(lambda f: {k: v.numpy() for k, v in loaded(**{n: tf.constant(x) for n, x in f.items()}).items()},
                              feeds)
    return run


def to_saved_model(agent, path: str | os.PathLike, *, verify: bool = True,
                   verify_observations: Optional[Inputs] = None, action_mask: Optional[bool] = None) -> ExportReport:
    """Write a SavedModel directory loadable with ``tf.saved_model.load`` without keras_trpo.

    ``serving_default``: ``obs`` -> ``action`` and distribution parameters; the same inputs and
    outputs as the ONNX file for Dict-observation and recurrent policies (one input per key;
    ``state_in`` / ``state_out``, verified over episodes).
    ``keras_trpo_metadata.json`` in the directory holds the same metadata as the ONNX file.
    ``action_mask``: the ``action_mask`` input after the observations, as ``to_onnx`` (default: a
    masked agent's files have it).
    """
    desc = describe(agent, action_mask)
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ExportError(f"{str(path)!r} exists and is a file; a SavedModel is a directory")
    if path.exists() and any(path.iterdir()) and not (path / "saved_model.pb").exists():
        raise ExportError(f"{str(path)!r} is a non-empty directory that is not a SavedModel; refusing to replace it")
    parent = path.resolve().parent
    if not parent.exists():
        raise ExportError(f"directory {str(parent)!r} does not exist")
    start = time.perf_counter()
    meta = policy_metadata(desc)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=parent))
    try:
        write_saved_model(desc, tmp)
        (tmp / METADATA_FILE).write_text(json.dumps(meta, indent=1))
        _replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    report = ExportReport(str(path), size, 0.0, metadata=meta)
    if verify:
        verify_file(desc, saved_model_runner(path), f"SavedModel {path}", inputs=verify_observations).fill(report)
    report.seconds = time.perf_counter() - start
    return report
