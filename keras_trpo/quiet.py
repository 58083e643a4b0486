"""Keep TensorFlow's C++ start-up chatter off the terminal of the command-line tools.

On a CPU machine, importing TensorFlow 2.21 prints absl's "log messages before
absl::InitializeLog()" preamble, the oneDNN round-off notice, "Could not find cuda drivers"
and, at the first device query, "failed call to cuInit". They come from C++ before Python's
logging exists and ``TF_CPP_MIN_LOG_LEVEL`` does not stop them all, so the only place to
catch them is file descriptor 2 itself: ``quiet_tensorflow_import`` points it at a temporary
file while TensorFlow is imported and its devices listed, then replays every line except
those start-up records. Nothing else is hidden, and nothing at all when the user asks for
TensorFlow's messages (``--verbose 2``, or ``TF_CPP_MIN_LOG_LEVEL`` set to 0 or 1).
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from typing import Iterator

# An absl/glog record: severity letter, date, time, thread id, file:line] message.
_ABSL_RECORD = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\] ")
_START_UP = re.compile(r"cuInit|CUDA|cuda|cuDNN|cuFFT|cuBLAS|TensorRT|oneDNN|cpu_feature_guard|GPU will not be used")
_START_UP_LINES = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "To enable the following instructions:",  # second line of cpu_feature_guard's record
)


def is_start_up_noise(line: str) -> bool:
    """Whether a stderr line is one of TensorFlow's start-up records (CUDA probing, oneDNN, absl)."""
    if line.startswith(_START_UP_LINES):
        return True
    if _ABSL_RECORD.match(line):
        severity = line[0]
        return severity in "IW" or bool(_START_UP.search(line))  # keep real errors that are not CUDA probing
    return False


def wants_tensorflow_logs(verbose: int) -> bool:
    """--verbose 2, or TF_CPP_MIN_LOG_LEVEL set to 0/1 by the user, shows TensorFlow's own messages."""
    return verbose >= 2 or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() in ("0", "1")


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Send fd 2 to a temporary file for the block, then replay it without the start-up noise."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to filter
        yield
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode(errors="replace").splitlines(keepends=True)
                    if not is_start_up_noise(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def quiet_tensorflow_import(verbose: int = 1) -> None:
    """Import TensorFlow (and list its devices, which probes CUDA) without the start-up chatter.

    Call it before anything else imports TensorFlow. With ``wants_tensorflow_logs(verbose)``
    it only lowers ``TF_CPP_MIN_LOG_LEVEL`` to 1 (warnings and errors) unless the user set it.
    """
    if "tensorflow" in sys.modules:
        return
    if wants_tensorflow_logs(verbose):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
        import tensorflow  # noqa: F401

        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with filtered_stderr():
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
    if not gpus and _nvidia_device_present():
        print("note: an NVIDIA GPU is present but TensorFlow found none; run with --verbose 2 to see CUDA's messages",
              file=sys.stderr)


def _nvidia_device_present() -> bool:
    return os.path.exists("/dev/nvidia0") or os.path.exists("/proc/driver/nvidia/version")
