"""``--portable-numerics``: the same numbers on any x86-64 machine with AVX2, at some speed.

TensorFlow's matrix products go through oneDNN's sgemm (also with ``TF_ENABLE_ONEDNN_OPTS=0``,
which only turns off its graph rewrites), and oneDNN picks its kernel from the CPU's instruction
sets; TensorFlow also splits work across as many threads as there are cores, and a sum split
differently rounds differently. Measured on one machine by emulating others
(benchmarks/reproducibility.py): capping oneDNN to AVX2, or running on one core instead of two,
changes a Pendulum run's history; capping XLA's code generator, OpenBLAS or NumPy's SIMD
dispatch does not. Pinning both makes the emulated machines agree bit for bit. It must be set
before TensorFlow is imported, hence environment variables.
"""
from __future__ import annotations

import os
import sys

PORTABLE_ENV = {
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # every x86-64 CPU since 2013 (Haswell, Zen) has it
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
}


def use_portable_numerics() -> None:
    """Set ``PORTABLE_ENV`` (values the user set win); an error if TensorFlow is already imported."""
    if "tensorflow" in sys.modules:
        raise RuntimeError("portable numerics must be chosen before TensorFlow is imported: set "
                           + " ".join(f"{k}={v}" for k, v in PORTABLE_ENV.items()) + " in the environment")
    for key, value in PORTABLE_ENV.items():
        os.environ.setdefault(key, value)
