"""Which seeds leave a plateau, and when: training return at chosen steps, from seeds.py records.

  python -m benchmarks.plateau DIR [DIR ...] --env Swimmer-v5 [--at 2e5 3e5 1e6] [--past 200] [--late 3e5]

DIR holds seeds.py results (DIR/IMPL/ENV/seed_N.json); with several DIRs each impl of each DIR is an arm of its
own. For every stored run of ENV the table gives its training return (the record's ``curve``: mean of the last
100 episodes) at each ``--at`` step, then per arm how many runs are past ``--past`` at each step. ``--late STEP`` counts the late climbers: runs still at or under the threshold at
STEP that are past it at the last ``--at`` step. With two arms, Fisher's exact test compares their late-climb
rates (two-sided).

Made for Swimmer-v5's ~140 plateau (issue 28): whether a run leaves it shows by 200-300k on keras_trpo, while two of
sb3-contrib's seeds climbed after 300k (benchmarks/results/ahead/swimmer/README.md).
"""
from __future__ import annotations

import argparse
import bisect
import math
import sys
from collections.abc import Sequence

from benchmarks.seedstore import load_records


def return_at(timesteps: Sequence[float], returns: Sequence[float | None], step: float) -> float:
    """The training return last logged at or before ``step``; NaN if nothing was logged by then.

    ``timesteps`` ``[T]`` increasing, ``returns`` ``[T]`` (``None`` where no episode had ended yet).
    """
    i = bisect.bisect_right(list(timesteps), step) - 1
    while i >= 0 and returns[i] is None:
        i -= 1
    return float(returns[i]) if i >= 0 else math.nan


def late_climbers(rows: dict[int, list[float]], late_index: int, threshold: float) -> tuple[int, int]:
    """Of the runs at or under ``threshold`` at column ``late_index``, how many are past it in the last column.

    ``rows`` maps seed -> returns at the ``--at`` steps. Returns (climbed, at the plateau then).
    """
    low = [r for r in rows.values() if r[late_index] <= threshold]
    return sum(r[-1] > threshold for r in low), len(low)


def fisher_exact_p(a: tuple[int, int], b: tuple[int, int]) -> float:
    """Two-sided Fisher's exact test of two rates given as (successes, trials)."""
    # scipy is in requirements.txt; imported here because only this summary line needs it
    from scipy.stats import fisher_exact

    return float(fisher_exact([[a[0], a[1] - a[0]], [b[0], b[1] - b[0]]])[1])


def table(arms: list[tuple[str, dict]], env: str, at: Sequence[float], past: float, late: float | None) -> str:
    """The per-seed table and the counts, as Markdown. ``arms`` pairs each record with the arm it counts in."""
    steps = sorted(set(at) | ({late} if late is not None else set()))
    by_impl: dict[str, dict[int, list[float]]] = {}
    for arm, rec in arms:
        if rec["env"] != env:
            continue
        curve = rec["curve"]
        by_impl.setdefault(arm, {})[rec["seed"]] = [return_at(curve["timesteps"], curve["return"], s) for s in steps]
    if not by_impl:
        raise SystemExit(f"no stored run of {env} in these folders")
    heads = [f"{s / 1000:g}k" for s in steps]
    lines = ["| impl | seed | " + " | ".join(heads) + " |", "|---|--:|" + "--:|" * len(steps)]
    for impl, rows in by_impl.items():
        for seed, vals in sorted(rows.items()):
            lines.append(f"| {impl} | {seed} | " + " | ".join(f"{v:.0f}" for v in vals) + " |")
    lines += ["", f"Runs past {past:g}:", ""]
    climbs = {}
    for impl, rows in by_impl.items():
        counts = ", ".join(f"{h} {sum(r[i] > past for r in rows.values())} of {len(rows)}" for i, h in enumerate(heads))
        line = f"- {impl}: {counts}"
        if late is not None:
            climbs[impl] = late_climbers(rows, steps.index(late), past)
            line += (f"; late climbers (at or under {past:g} at {late / 1000:g}k, past it at {heads[-1]}): "
                     f"{climbs[impl][0]} of {climbs[impl][1]}")
        lines.append(line)
    if len(climbs) == 2 and all(n for _, n in climbs.values()):
        (a, ca), (b, cb) = climbs.items()
        lines.append(f"- late climbers, {a} against {b}: Fisher's exact test p = {fisher_exact_p(ca, cb):.3f}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.plateau", description=__doc__.split("\n\n")[0])
    p.add_argument("dirs", nargs="+", help="folders of seeds.py results (DIR/IMPL/ENV/seed_N.json)")
    p.add_argument("--env", required=True)
    p.add_argument("--at", nargs="+", type=float, default=[2e5, 3e5, 1e6], help="steps to read the curve at")
    p.add_argument("--past", type=float, default=200.0, help="the plateau's threshold (Swimmer: 200)")
    p.add_argument("--late", type=float, default=None, help="count runs that pass the threshold after this step")
    a = p.parse_args(argv)
    if a.late is not None and a.late >= max(a.at):
        p.error(f"--late {a.late:g} must come before the last --at step ({max(a.at):g})")
    # one arm per impl; with several folders, per folder and impl (two folders may hold the same impl's seeds)
    arms = [(rec["impl"] if len(a.dirs) == 1 else f"{rec['impl']} ({d})", rec) for d in a.dirs for rec in load_records(d)]
    print(table(arms, a.env, a.at, a.past, a.late))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
