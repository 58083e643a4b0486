"""``OnnxPolicy``: an exported keras_trpo policy run by onnxruntime, nothing else."""
from __future__ import annotations

import os
import threading
from typing import Any, Optional

import numpy as np
import onnxruntime as ort

from serving.errors import InvalidObservation, ModelLoadError
from serving.spaces import DISTRIBUTIONS, PARAMS, Space

REQUIRED_METADATA = ("observation_space", "action_space", "distribution")


def low_latency_options(threads: int = 1) -> ort.SessionOptions:
    """One thread, sequential execution, all graph optimisations: a small MLP gains nothing
    from a thread pool on a small CPU, and thread hand-off would dominate its latency."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


class OnnxPolicy:
    """Load an exported policy, check inputs against its metadata, return actions.

    Args:
      path: an ``.onnx`` file written by keras-trpo's ``export``.
      seed: seeds the NumPy generator used for stochastic actions.
      threads: onnxruntime intra-op threads (ignored if ``sess_options`` is given).
      sess_options: your own ``onnxruntime.SessionOptions``.
      providers: onnxruntime execution providers (default CPU).
    """

    def __init__(self, path: str | os.PathLike, *, seed: Optional[int] = None, threads: int = 1,
                 sess_options: Optional[ort.SessionOptions] = None, providers: Optional[list] = None):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise ModelLoadError(f"no model file at {self.path!r}")
        try:
            self.session = ort.InferenceSession(self.path, sess_options or low_latency_options(threads),
                                                providers=providers or ["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - onnxruntime raises several opaque kinds
            raise ModelLoadError(f"{self.path!r} is not a loadable ONNX model: {str(e).splitlines()[0][:300]}") from e
        props = self.session.get_modelmeta().custom_metadata_map
        missing = [k for k in REQUIRED_METADATA if k not in props]
        if missing:
            raise ModelLoadError(f"{self.path!r} lacks metadata {missing}: it was not exported by keras-trpo's export")
        self.observation_space = Space.from_json(props["observation_space"], "observation_space")
        self.action_space = Space.from_json(props["action_space"], "action_space")
        self.distribution = props["distribution"]
        if self.distribution not in DISTRIBUTIONS:
            raise ModelLoadError(f"{self.path!r}: unknown distribution {self.distribution!r}")
        inputs = self.session.get_inputs()
        if [i.name for i in inputs] != ["obs"]:
            raise ModelLoadError(f"{self.path!r} should have one input named 'obs', has {[i.name for i in inputs]}")
        outputs = {o.name for o in self.session.get_outputs()}
        self._param_names = list(PARAMS[self.distribution])
        needed = {"action", *self._param_names} - outputs
        if needed:
            raise ModelLoadError(f"{self.path!r} lacks outputs {sorted(needed)} for a {self.distribution} policy")
        self.metadata: dict[str, Any] = dict(props)
        self.metadata["observation_space"] = self.observation_space.to_dict()
        self.metadata["action_space"] = self.action_space.to_dict()
        self.obs_shape = self.observation_space.policy_input_shape
        self._ndim = len(self.obs_shape)
        self._action_names = ["action"]
        self._run = self.session.run
        self._rng = np.random.default_rng(seed)
        self._rng_lock = threading.Lock()  # a Generator is not safe to share between threads

    # ------------------------------------------------------------------ checks
    def _batch(self, obs: Any) -> tuple[np.ndarray, bool]:
        x = obs if isinstance(obs, np.ndarray) else np.asarray(obs)
        if x.dtype.kind not in "fiub":
            raise InvalidObservation(f"observation has dtype {x.dtype}; expected numbers of shape {self.obs_shape}")
        shape = x.shape
        if shape == self.obs_shape:
            single = True
            x = x.reshape((1,) + shape)
        elif len(shape) == self._ndim + 1 and shape[1:] == self.obs_shape:
            single = False
        else:
            raise InvalidObservation(
                f"observation has shape {shape}; expected {self.obs_shape} for one observation "
                f"or (batch, {', '.join(map(str, self.obs_shape))}) for a batch")
        if x.dtype != np.float32:
            x = x.astype(np.float32)
        if not np.isfinite(x).all():
            raise InvalidObservation(f"observation contains NaN or inf (expected finite values of shape {self.obs_shape})")
        return x, single

    # ------------------------------------------------------------------ acting
    def act(self, obs: Any, deterministic: bool = True) -> Any:
        """One observation -> one action; a batch ``[B, *obs_shape]`` -> ``[B, ...]`` actions.

        Deterministic actions are the exported graph's ``action`` output. Stochastic ones
        are sampled here from the exported distribution parameters.
        """
        x, single = self._batch(obs)
        if deterministic:
            action = self._run(self._action_names, {"obs": x})[0]
        else:
            action = self._sample(dict(zip(self._param_names, self._run(self._param_names, {"obs": x}))))
        return action[0] if single else action

    def distribution_params(self, obs: Any) -> dict[str, np.ndarray]:
        """The exported distribution parameters (``logits`` or ``mean`` and ``log_std``) for a batch."""
        x, _ = self._batch(obs)
        return dict(zip(self._param_names, self._run(self._param_names, {"obs": x})))

    def _sample(self, params: dict[str, np.ndarray]) -> np.ndarray:
        space, dist = self.action_space, self.distribution
        with self._rng_lock:
            if dist == "diag_gaussian":
                mean = params["mean"]
                noise = self._rng.standard_normal(mean.shape)
            else:
                logits = params["logits"]
                u = self._rng.random(logits.shape)
        if dist == "diag_gaussian":
            a = np.clip(mean + np.exp(params["log_std"]) * noise, space.low.reshape(-1), space.high.reshape(-1))
            return a.astype(space.dtype).reshape((-1,) + space.shape)
        if dist == "bernoulli":
            return (u < 1.0 / (1.0 + np.exp(-logits))).astype(space.dtype).reshape((-1,) + space.shape)
        gumbel = -np.log(-np.log(np.clip(u, 1e-20, 1.0)) + 1e-20)
        if dist == "categorical":
            return np.argmax(logits + gumbel, axis=-1).astype(np.int64) + space.start
        # multi_categorical: logits of the sub-spaces concatenated
        out, offset = [], 0
        for n in space.nvec.reshape(-1):
            out.append(np.argmax(logits[:, offset:offset + n] + gumbel[:, offset:offset + n], axis=-1))
            offset += n
        return (np.stack(out, axis=-1).astype(np.int64) + space.start.reshape(-1)).reshape((-1,) + space.shape)

    def __repr__(self) -> str:
        return (f"OnnxPolicy({self.path!r}, env={self.metadata.get('env_id') or '?'}, obs={self.obs_shape}, "
                f"action={self.action_space.type}, distribution={self.distribution})")
