"""A training run's directory (``train --out``): its files, and putting them back in step for ``--resume``.

``agent.keras`` is the checkpoint (written atomically: a temporary ``.agent.keras.*.tmp`` and a
rename), ``metrics.csv`` has one row per finished iteration, numbered in its ``epoch`` column.
A run killed at any moment leaves a checkpoint of ``k`` whole iterations and a CSV with rows for
``k`` or more; resuming drops the rows past ``k`` (those iterations are trained again) and any
temporary file the kill left behind. Standard library only: no TensorFlow.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional

AGENT, METRICS, CURVE, SUMMARY = "agent.keras", "metrics.csv", "learning_curve.png", "summary.json"
RUN_FILES = (AGENT, METRICS, CURVE, SUMMARY)


class RunDirError(Exception):
    """The run directory cannot be used as asked (printed as ``error: ...``)."""


def existing_run_files(out: Path) -> list[str]:
    return [name for name in RUN_FILES if (out / name).exists()]


def is_finished(out: Path) -> bool:
    """Whether the run in ``out`` ended normally (its summary.json says "finished")."""
    import json

    try:
        return json.loads((out / SUMMARY).read_text()).get("status", "finished") == "finished"
    except (OSError, ValueError, AttributeError):
        return False


def remove_stale_temp_files(out: Path) -> list[str]:
    """Delete the temporary files an atomic write leaves when the process is killed mid-write."""
    removed = []
    for name in RUN_FILES:
        for tmp in out.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp.name)
    return sorted(removed)


def _complete_rows(text: str) -> tuple[list[str], list[list[str]]]:
    """Header and the rows that were written whole (a kill can cut the last line short)."""
    lines = text.splitlines(keepends=True)
    if not lines or not lines[0].endswith("\n"):
        return [], []
    header = next(csv.reader([lines[0]]))
    rows = []
    for line in lines[1:]:
        if not line.endswith("\n"):
            break
        row = next(csv.reader([line]), [])
        if len(row) != len(header):
            break
        rows.append(row)
    return header, rows


def truncate_metrics(path: Path, iterations: int) -> int:
    """Keep the CSV rows of iterations ``0 .. iterations-1`` (the checkpoint's) and drop the rest.

    Rewrites the file atomically and returns how many rows were kept. Raises ``RunDirError`` if
    rows the checkpoint needs are missing or out of order, rather than leave a CSV with gaps.
    """
    from keras_trpo_serving.files import atomic_write_bytes

    if not path.exists():
        if iterations:
            raise RunDirError(f"{path} is missing but the checkpoint has {iterations} iterations; "
                              "the learning curve of the resumed run would have a gap")
        return 0
    header, rows = _complete_rows(path.read_text())
    if not header or header[0] != "epoch":
        raise RunDirError(f"{path} is not a keras_trpo metrics file (no 'epoch' column)")
    kept = [r for r in rows if int(float(r[0])) < iterations]
    if [int(float(r[0])) for r in kept] != list(range(iterations)):
        raise RunDirError(f"{path} does not hold iterations 0..{iterations - 1} in order, which the checkpoint "
                          f"has; found {len(kept)} of them")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")  # the Keras CSVLogger's (csv.excel) line ending
    writer.writerow(header)
    writer.writerows(kept)
    atomic_write_bytes(path, buf.getvalue().encode())
    return len(kept)


def read_metrics(path: Path) -> dict[str, list[float]]:
    """The metrics CSV as columns of floats (``NA`` and blanks as NaN), whole rows only."""
    header, rows = _complete_rows(path.read_text()) if path.exists() else ([], [])
    columns: dict[str, list[float]] = {name: [] for name in header}
    for row in rows:
        for name, value in zip(header, row):
            try:
                columns[name].append(float(value))
            except ValueError:
                columns[name].append(float("nan"))
    return columns


def check_same_run(what: str, given: Optional[object], saved: object) -> None:
    if given is not None and given != saved:
        raise RunDirError(f"--{what} {given} differs from the run's {what} {saved}; a resumed run keeps its own")
