"""``python -m benchmarks.sb3_update_parity``: the command line of ``dump``, ``check``, ``cgstart`` and ``hybrid``."""
from __future__ import annotations

import argparse
import json
import os
import sys

from benchmarks.sb3_update_parity import __doc__ as DOC
from benchmarks.sb3_update_parity.cgstart import cg_start
from benchmarks.sb3_update_parity.check import check
from benchmarks.sb3_update_parity.dump import dump
from benchmarks.sb3_update_parity.hybrid import hybrid

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results", "ahead", "swimmer",
                           "parity")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="sb3-contrib's side (its Python)")
    d.add_argument("env")
    d.add_argument("seed", type=int)
    d.add_argument("--at", type=int, nargs="+", required=True, help="training iterations to store (1 = the first)")
    d.add_argument("--out", default=DEFAULT_OUT)
    c = sub.add_parser("check", help="keras_trpo's side")
    c.add_argument("files", nargs="+")
    s = sub.add_parser("cgstart", help="keras_trpo's CG from 0, from sb3-contrib's random starts, and converged")
    s.add_argument("files", nargs="+")
    h = sub.add_parser("hybrid", help="sb3-contrib's loop with keras_trpo's learner (torch and TensorFlow in one "
                                      "process)")
    h.add_argument("env")
    h.add_argument("steps", type=float)
    h.add_argument("seeds", type=int, nargs="+")
    h.add_argument("--out", default=os.path.join(os.path.dirname(DEFAULT_OUT), "hybrid"))
    a = p.parse_args(argv)
    if a.command == "hybrid":
        for seed in a.seeds:
            if os.path.exists(os.path.join(a.out, f"seed_{seed}.json")):
                continue
            rows = hybrid(a.env, seed, int(a.steps), a.out)["rows"]
            print(f"seed {seed}: mean return {rows[-1]['mean_return']:.1f} at {rows[-1]['timesteps']} steps", flush=True)
        return 0
    if a.command == "dump":
        dump(a.env, a.seed, sorted(set(a.at)), a.out)
        return 0
    report = check if a.command == "check" else cg_start
    for path in a.files:
        print(json.dumps(report(path), indent=1), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
