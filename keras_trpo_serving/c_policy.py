"""``CPolicy``: a keras-trpo policy exported as C (``python -m keras_trpo.export AGENT --c DIR``), built
with the host's C compiler into a shared library and run through ctypes. No TensorFlow, no
onnxruntime: numpy and a C compiler.

The same ``act`` / ``distribution_params`` / ``metadata`` as ``OnnxPolicy``
(``keras_trpo_serving.policy.ExportedPolicy``): the input checks, action dtypes and sampling for
``deterministic=False`` are shared; only the run differs. Deterministic actions are the C
library's ``policy_act``; the distribution parameters its ``policy_params``; sampled ones its
``policy_sample_noise`` fed NumPy's noise (the same action as every format for that noise). It exists to run
the C policy on the host in a closed loop (``python -m keras_trpo_serving run --model DIR``) with the very
code a firmware would run.

Recurrent and Dict-observation exports run through the same machinery: ``step(obs, state,
episode_start)``, ``act`` with the policy's own state, ``reset``, ``initial_state``; a Dict
observation as ``{key: ...}``, packed into the library's ``NAME_obs_t`` (sorted-key order).
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Optional

import numpy as np

from keras_trpo_serving.errors import ModelLoadError, check_count
from keras_trpo_serving.files import atomic_target
from keras_trpo_serving.policy import ACTION_MASK, DEFAULT_WARMUP, NOISE, SAMPLED_ACTION, ExportedPolicy
from keras_trpo_serving.spaces import parse_metadata
from keras_trpo_serving.state import STATE_IN, STATE_OUT

CFLAGS = ["-std=c99", "-O2", "-ffp-contract=off", "-shared", "-fPIC"]


def _fma_flags() -> list[str]:
    """``-mfma`` on x86-64 Linux with FMA3: the source's ``fmaf`` calls inline (same results). The same
    rule as ``export.c_build.host_fma_flags``, restated: serving installs without export."""
    import platform
    info = Path("/proc/cpuinfo")
    ok = platform.machine().lower() in ("x86_64", "amd64") and info.is_file() and " fma " in info.read_text(errors="replace")
    return ["-mfma"] if ok else []


_ACTION_TYPES = {"float": np.float32, "int32_t": np.int32, "int8_t": np.int8}


def is_c_export(path: str | os.PathLike, name: str = "policy") -> bool:
    """Whether ``path`` is a directory holding a C export (``NAME.h``, ``NAME.c``)."""
    p = Path(path)
    return p.is_dir() and (p / f"{name}.h").is_file() and (p / f"{name}.c").is_file()


def _build(directory: Path, name: str) -> Path:
    """``lib<name>.so`` built from the directory's files, cached by their content (the build
    directory is private to this user)."""
    files = [directory / f for f in (f"{name}.h", f"{name}.c", f"{name}_weights.h")]
    flags = CFLAGS + _fma_flags()
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files) + " ".join(flags).encode()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"keras_trpo_c_{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    cache.mkdir(mode=0o700, exist_ok=True)
    lib = cache / f"lib{name}-{digest}.so"
    if lib.exists():
        return lib
    cc = shlex.split(os.environ.get("CC", "").strip() or "cc")
    if shutil.which(cc[0]) is None:
        raise ModelLoadError(f"running the C policy in {str(directory)!r} needs a C compiler: {cc[0]!r} is not on "
                             "the PATH (apt-get install gcc, or set CC)")
    # The sources copied first: the build sees one version of them even if the export is rewritten meanwhile.
    with tempfile.TemporaryDirectory(dir=cache) as tmp, atomic_target(lib, ".so") as out:
        for f in files:
            shutil.copy(f, tmp)
        done = subprocess.run(cc + flags + ["-o", str(out), str(Path(tmp) / f"{name}.c"), "-lm"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise ModelLoadError(f"the C policy in {str(directory)!r} does not compile: {done.stderr.strip()[:500]}")
    return lib


class CPolicy(ExportedPolicy):
    """Load a C export directory (or its built ``lib<name>.so``), check inputs against its
    metadata, return actions.

    Args:
      path: the directory ``python -m keras_trpo.export AGENT --c DIR`` wrote (built here with ``$CC`` or
        ``cc``, cached by content), or a shared library built from it.
      name: the C prefix given at export (``--c-name``, default ``policy``).
      seed: seeds the NumPy generator used by ``act(obs, deterministic=False)``: its noise goes
        to the library's ``NAME_sample_noise`` (the C PRNG's ``NAME_sample`` is for the device).
      warmup: batch-1 runs at load (default 3).

    Raises:
      ModelLoadError: no such directory or library, no compiler, a build failure, or a library
        without the export's functions or metadata.
    """

    def __init__(self, path: str | os.PathLike, *, name: str = "policy", seed: Optional[int] = None,
                 warmup: int = DEFAULT_WARMUP):
        self.path = os.fspath(path)
        if isinstance(warmup, bool):
            warmup = DEFAULT_WARMUP if warmup else 0
        check_count("warmup", warmup, 0)
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise ModelLoadError(f"the C name must be a C identifier, got {name!r}")
        if is_c_export(self.path, name):
            lib_path = _build(Path(self.path), name)
        elif os.path.isfile(self.path):
            lib_path = Path(self.path)
        else:
            raise ModelLoadError(f"{self.path!r} is neither a C export directory ({name}.h, {name}.c) nor a library")
        try:
            self._lib = ctypes.CDLL(str(lib_path))
            fns = {fn: getattr(self._lib, f"{name}_{fn}") for fn in ("act", "params", "metadata")}
        except (OSError, AttributeError) as e:
            raise ModelLoadError(f"{self.path!r}: not a keras-trpo C policy library ({e})") from None
        fns["metadata"].restype = ctypes.c_char_p
        for fn in ("act", "params"):
            fns[fn].argtypes, fns[fn].restype = [ctypes.c_void_p, ctypes.c_void_p], None
        self._act_fn, self._params_fn = fns["act"], fns["params"]
        # NAME_sample_noise: C exports since the noise-in contract; older ones sample in NumPy instead.
        self._sample_fn = getattr(self._lib, f"{name}_sample_noise", None)
        if self._sample_fn is not None:
            self._sample_fn.argtypes, self._sample_fn.restype = [ctypes.c_void_p] * 3, None
        try:
            props = json.loads(fns["metadata"]().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise ModelLoadError(f"{self.path!r}: {name}_metadata() is not JSON ({e})") from None
        meta = parse_metadata(props, self.path)
        self.format = "c"
        self._setup(meta, seed)
        # A masked library (its metadata describes the action_mask) takes the mask right after obs.
        self._check_mask_input(-1 if meta.raw.get(ACTION_MASK) else None)
        mask_args = [ctypes.c_void_p] if self.mask_width else []
        # A recurrent library's functions take state_in after obs (and the mask) and write state_out last.
        state_args = [ctypes.c_void_p] * 2 if self.is_recurrent else []
        for fn in (self._act_fn, self._params_fn):
            fn.argtypes = [ctypes.c_void_p] * 2 + mask_args + state_args
        if self._sample_fn is not None:
            self._sample_fn.argtypes = [ctypes.c_void_p] * 3 + mask_args + state_args
        # A Dict observation: the library's NAME_obs_t is the keys' floats side by side in sorted-key
        # order (its header checks there is no padding), so one packed row is passed per call.
        self._keys = sorted(self.obs_keys) if self.obs_keys else None
        space = self.action_space
        self._c_action_dtype = np.float32 if meta.distribution == "diag_gaussian" else (
            np.int8 if meta.distribution == "bernoulli" else np.int32)
        self._action_width = int(np.prod(space.shape)) if space.shape else 1
        self._params_width = {"Discrete": space.n, "MultiBinary": space.n, "Box": 2 * self._action_width,
                              "MultiDiscrete": int(np.sum(space.nvec)) if space.nvec is not None else 0}[space.type]
        self._cast_action = True
        if self._sample_fn is not None:
            self._check_noise_input(True, {SAMPLED_ACTION})
        self._lock = threading.Lock()  # ctypes calls are cheap; keep them in order for the warm-up counts
        self._run = self._call
        self._probe()
        self._warm_up(int(warmup))

    def _packed(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """``[B, obs_size]`` float32 rows: ``obs``, or a Dict's keys side by side in sorted order."""
        if self._keys is None:
            return np.ascontiguousarray(feed["obs"], np.float32).reshape(len(feed["obs"]), -1)
        n = len(feed[self._keys[0]])
        return np.ascontiguousarray(np.concatenate(
            [np.asarray(feed[k], np.float32).reshape(n, -1) for k in self._keys], axis=1))

    def _call(self, names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        """``OnnxPolicy``'s ``session.run(names, feed)``, one C call per row. A recurrent library
        takes each row's ``state_in`` and writes its ``state_out`` (the same from every function:
        the first one called gives it); a masked one each row's ``action_mask`` after ``obs``."""
        x = self._packed(feed)
        n = len(x)
        out: dict[str, np.ndarray] = {}
        if self.mask_width:
            m_in = np.ascontiguousarray(feed[ACTION_MASK], np.float32).reshape(n, self.mask_width)
            masked = lambda i: (x[i].ctypes.data, m_in[i].ctypes.data)  # noqa: E731
        else:
            masked = lambda i: (x[i].ctypes.data,)  # noqa: E731
        if self.is_recurrent:
            s_in = np.ascontiguousarray(feed[STATE_IN], np.float32).reshape(n, self.state_size)
            s_out = np.zeros((n, self.state_size), np.float32)
            state = lambda i: (s_in[i].ctypes.data,)  # noqa: E731
            state_out = lambda i: (s_out[i].ctypes.data,)  # noqa: E731
        else:
            state = state_out = lambda i: ()  # noqa: E731
        if "action" in names:
            a = np.zeros((n, self._action_width), self._c_action_dtype)
            for i in range(n):
                self._act_fn(*masked(i), *state(i), a[i].ctypes.data, *state_out(i))
            out["action"] = a.reshape((n,) + tuple(self.action_space.shape))
        if SAMPLED_ACTION in names:
            z = np.ascontiguousarray(feed[NOISE], np.float32)
            a = np.zeros((n, self._action_width), self._c_action_dtype)
            for i in range(n):
                self._sample_fn(*masked(i), *state(i), z[i].ctypes.data, a[i].ctypes.data, *state_out(i))
            out[SAMPLED_ACTION] = a.reshape((n,) + tuple(self.action_space.shape))
        if any(k in self._param_names for k in names):
            p = np.zeros((n, self._params_width), np.float32)
            for i in range(n):
                self._params_fn(*masked(i), *state(i), p[i].ctypes.data, *state_out(i))
            if self.distribution == "diag_gaussian":
                d = self._params_width // 2
                out["mean"], out["log_std"] = p[:, :d], p[:, d:]
            else:
                out["logits"] = p
        if self.is_recurrent:
            out[STATE_OUT] = s_out
        return [out[k] for k in names]
