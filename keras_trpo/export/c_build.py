"""Build the generated C with the host's compiler and run it through ctypes, for verification.

The compiler is ``$CC`` if set, else ``cc`` on the PATH. It is built as a shared library with
``-std=c99 -O2 -ffp-contract=off`` (the compiler fuses no multiply-add of its own: the only
fused ones are the source's explicit ``fmaf`` calls, which round as onnxruntime does) and the warnings a C99 compiler gives with ``-Wall -Wextra -pedantic``
are kept in the report's build log.
"""
from __future__ import annotations

import ctypes
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from keras_trpo.export.c_source import ACTION_TYPES
from keras_trpo.export.errors import ExportError

CFLAGS = ["-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-pedantic"]


def host_fma_flags() -> list[str]:
    """``-mfma`` on an x86-64 Linux host whose CPU has FMA3: the source's ``fmaf`` calls become
    one instruction each instead of libm calls (4x faster here); results are the same either way."""
    import platform
    cpuinfo = Path("/proc/cpuinfo")
    x86 = platform.machine().lower() in ("x86_64", "amd64") and cpuinfo.is_file()
    return ["-mfma"] if x86 and " fma " in cpuinfo.read_text(errors="replace") else []
_CTYPES = {"int32_t": (ctypes.c_int32, np.int32), "int8_t": (ctypes.c_int8, np.int8), "float": (ctypes.c_float, np.float32)}


def compiler() -> list[str]:
    """The host C compiler as an argv prefix, or ``ExportError`` saying how to get one."""
    cc = os.environ.get("CC", "").strip()
    argv = shlex.split(cc) if cc else ["cc"]
    if shutil.which(argv[0]) is None:
        raise ExportError(f"no C compiler to verify the C export with: {argv[0]!r} is not on the PATH. Install "
                          "one (apt-get install gcc), set CC, or skip verification explicitly (--no-verify, "
                          "verify=False)")
    return argv


def compiler_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv + ["--version"], capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return argv[0]


def build_shared(source: Path, out: Path) -> str:
    """Compile ``source`` (and the headers beside it) into the shared library ``out``; returns
    the compiler's warnings (empty if none), ``ExportError`` with its errors if it fails."""
    argv = compiler()
    flags = ["-shared", "-fPIC"] + (["-undefined", "dynamic_lookup"] if sys.platform == "darwin" else [])
    cmd = argv + CFLAGS + host_fma_flags() + flags + ["-o", str(out), str(source), "-lm"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=source.parent)
    except (OSError, subprocess.SubprocessError) as e:
        raise ExportError(f"running the C compiler failed: {' '.join(cmd)}: {e}") from None
    if done.returncode != 0:
        raise ExportError(f"the generated C did not compile ({' '.join(cmd)}):\n{done.stderr.strip()[:2000]}")
    return done.stderr.strip()


@dataclass
class CLibrary:
    """A built policy library: ``act``, ``params``, ``sample_noise`` and ``sample`` on batches,
    through ctypes, one C call per row.

    ``obs [N, obs_size]`` float32 (a Dict policy's packed observation: its ``NAME_obs_t`` is those
    floats, keys in sorted order) -> ``[N, action_size]`` actions in the C action type,
    ``[N, params_size]`` float32 parameters. A recurrent library (``state_size`` > 0) also takes
    ``state [N, state_size]`` (each row's ``state_in``) and returns ``(out, state_out [N, state_size])``.
    A masked library (``mask_size`` > 0) takes ``mask [N, mask_size]`` (0/1 floats or booleans; all ones
    when None), passed right after each observation.
    """

    path: Path
    name: str
    family: str
    obs_size: int
    action_size: int
    params_size: int
    state_size: int = 0
    mask_size: int = 0

    def __post_init__(self) -> None:
        self._lib = ctypes.CDLL(str(self.path))
        self._action_ctype, self.action_dtype = _CTYPES[ACTION_TYPES[self.family]]
        ptr = ctypes.c_void_p
        state = [ptr, ptr] if self.state_size else []  # state_in after obs (and mask), state_out last
        mask = [ptr] if self.mask_size else []  # the action mask right after obs
        for fn, args in (("act", [ptr, ptr]), ("params", [ptr, ptr]), ("sample", [ptr, ptr, ptr]),
                         ("sample_noise", [ptr, ptr, ptr]), ("seed", [ptr, ctypes.c_uint64])):
            f = getattr(self._lib, f"{self.name}_{fn}")
            f.argtypes, f.restype = (args if fn == "seed" else args[:1] + mask + args[1:] + state), None
        getattr(self._lib, f"{self.name}_metadata").restype = ctypes.c_char_p

    def metadata(self) -> str:
        return getattr(self._lib, f"{self.name}_metadata")().decode("utf-8")

    def _rows(self, obs: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(obs, np.float32).reshape(len(obs), self.obs_size))

    def _states(self, state: Optional[np.ndarray], n: int) -> np.ndarray:
        if not self.state_size:
            if state is not None:
                raise ValueError(f"{self.name} is not recurrent: it takes no state")
            return np.zeros((n, 0), np.float32)
        if state is None:
            raise ValueError(f"{self.name} is recurrent: pass state [N, {self.state_size}] (zeros at episode starts)")
        return np.ascontiguousarray(np.asarray(state, np.float32).reshape(n, self.state_size))

    def _masks(self, mask: Optional[np.ndarray], n: int) -> Optional[np.ndarray]:
        if not self.mask_size:
            if mask is not None:
                raise ValueError(f"{self.name} is not masked: it takes no action mask")
            return None
        if mask is None:
            return np.ones((n, self.mask_size), np.float32)
        return np.ascontiguousarray(np.asarray(mask, np.float32).reshape(n, self.mask_size))

    def _per_row(self, function: str, obs: np.ndarray, size: int, dtype, state: Optional[np.ndarray],
                 noise: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None):
        """``NAME_function(obs[, mask][, state_in][, noise], out[, state_out])`` on each row."""
        x = self._rows(obs)
        m = self._masks(mask, len(x))
        s_in = self._states(state, len(x))
        s_out = np.zeros_like(s_in)
        z = None if noise is None else np.ascontiguousarray(np.asarray(noise, np.float32).reshape(len(x), -1))
        out = np.zeros((len(x), size), dtype)
        f = getattr(self._lib, f"{self.name}_{function}")
        for i in range(len(x)):
            args = [x[i].ctypes.data] + ([m[i].ctypes.data] if m is not None else [])
            args += [s_in[i].ctypes.data] if self.state_size else []
            args += ([z[i].ctypes.data] if z is not None else []) + [out[i].ctypes.data]
            f(*args, *([s_out[i].ctypes.data] if self.state_size else []))
        return (out, s_out) if self.state_size else out

    def act(self, obs: np.ndarray, state: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None):
        return self._per_row("act", obs, self.action_size, self.action_dtype, state, mask=mask)

    def params(self, obs: np.ndarray, state: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None):
        return self._per_row("params", obs, self.params_size, np.float32, state, mask=mask)

    def sample_noise(self, obs: np.ndarray, noise: np.ndarray, state: Optional[np.ndarray] = None,
                     mask: Optional[np.ndarray] = None):
        """``NAME_sample_noise`` on each row: ``obs [B, obs]``, ``noise [B, noise_size]`` -> ``[B, action_size]``."""
        return self._per_row("sample_noise", obs, self.action_size, self.action_dtype, state, noise, mask)

    def sample(self, obs: np.ndarray, draws: int, seed: int, state: Optional[np.ndarray] = None,
               mask: Optional[np.ndarray] = None) -> np.ndarray:
        """``draws`` actions for each observation (each from its row of ``state``, recurrent; under its
        row of ``mask``, masked) from one generator seeded with ``seed``: ``[N, draws, action_size]``."""
        x = self._rows(obs)
        m = self._masks(mask, len(x))
        s_in = self._states(state, len(x))
        s_out = np.zeros(max(self.state_size, 1), np.float32)
        out = np.zeros((len(x), draws, self.action_size), self.action_dtype)
        rng = (ctypes.c_uint32 * 4)()
        getattr(self._lib, f"{self.name}_seed")(ctypes.addressof(rng), seed)
        f = getattr(self._lib, f"{self.name}_sample")
        for i in range(len(x)):
            head = [x[i].ctypes.data] + ([m[i].ctypes.data] if m is not None else [])
            for k in range(draws):
                if self.state_size:
                    f(*head, s_in[i].ctypes.data, ctypes.addressof(rng), out[i, k].ctypes.data, s_out.ctypes.data)
                else:
                    f(*head, ctypes.addressof(rng), out[i, k].ctypes.data)
        return out
