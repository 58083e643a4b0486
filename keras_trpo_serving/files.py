"""Writing files atomically: a reader sees the old file or the whole new one, never half of it, and a
crash leaves no half-written file under the real name.

The one way the whole tree writes a file (keras_trpo, its export, keras_trpo_serving and the
benchmarks): the data goes to a temporary file in the target's folder, is flushed to disk, gets
the permissions a plain ``open(path, "w")`` would give, and is renamed over the target
(``os.replace``, atomic on POSIX and Windows within one file system).

Temporary files are named ``.NAME.XXXXXXXX.tmp`` (``NAME`` the target's name): a process killed
mid-write leaves one such hidden file, which keras_trpo/run_dir.py finds by that pattern and
removes when a run resumes.

Standard library only, and this package imports no TensorFlow: it is the lowest layer, importable
by keras_trpo and by the benchmarks under another project's Python (benchmarks/sb3_runner.py).
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]


def _default_mode() -> int:
    """The permissions ``open(path, "w")`` gives a new file under this process's umask (mkstemp makes 0600)."""
    umask = os.umask(0)  # the only way to read it portably; set back at once
    os.umask(umask)
    return 0o666 & ~umask


def _temporary(path: Path, suffix: str) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.chmod(tmp, _default_mode())
    return fd, tmp


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (folders created as needed)."""
    path = Path(path)
    fd, tmp = _temporary(path, ".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically as UTF-8, line endings as given (no translation)."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_target(path: PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary file's path beside ``path``, for a writer that takes a file name (matplotlib's
    ``savefig``, an encoder, a compiler): when the block ends without an error the file replaces
    ``path``; on an error it is deleted and ``path`` is untouched. ``suffix`` is for writers that
    pick the format by the name's ending (``".png"``)."""
    path = Path(path)
    fd, tmp = _temporary(path, suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
