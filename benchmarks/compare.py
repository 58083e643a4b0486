"""keras_trpo against sb3-contrib's TRPO, same hyperparameters and seeds, one after the other.

  python benchmarks/compare.py ENV --timesteps N --seeds 0 1 2 [--impl keras_trpo sb3] [--out benchmarks/results]
  python benchmarks/compare.py table [--out benchmarks/results]      # Markdown table for the README
  python benchmarks/compare.py plot ENV [--out benchmarks/results]   # redraw OUT/compare_ENV.png

Each training runs in its own subprocess (so peak memory is per run). Writes
OUT/curves_ENV.csv (impl, env, seed, timesteps, wall_s, return: mean of the last 100
training episodes), OUT/summary.csv (final 10-episode deterministic evaluation on seeds
10000-10009 with normalisation frozen, wall time, steps/s, rollout vs update time, peak
memory, date, machine, command) and OUT/compare_ENV.png.
sb3-contrib runs with the Python in $SB3_PYTHON (default /work/sb3venv/bin/python, or
.venv-sb3/bin/python) if it can import sb3_contrib; otherwise it is skipped with a notice.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import io
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
IMPL_NAMES = {"keras_trpo": "keras_trpo", "sb3": "sb3-contrib"}
SUMMARY_FIELDS = ["impl", "env", "seed", "timesteps", "eval_mean", "eval_std", "wall_s", "steps_per_s", "rollout_s",
                  "update_s", "peak_mem_mb", "date", "machine", "command"]


def atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def machine() -> str:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu}".strip(", ")


# ---------------------------------------------------------------- children
def keras_trpo_child(env_id: str, steps: int, seed: int) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, ROOT)
    import keras

    import keras_trpo

    curve = []

    class Curve(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            curve.append((int(logs["timesteps"]), time.perf_counter() - start, float(logs["mean_return"])))

    agent = keras_trpo.TRPO(env_id, seed=seed)
    start = time.perf_counter()
    history = agent.fit(steps, callbacks=[Curve()], verbose=0)
    wall = time.perf_counter() - start
    mean, std = agent.evaluate(episodes=10, seed=10_000)
    h = history.history
    return dict(impl="keras_trpo", env=env_id, seed=seed, timesteps=agent.num_timesteps, wall_s=wall,
                steps_per_s=agent.num_timesteps / wall, eval_mean=mean, eval_std=std, rollout_s=sum(h["rollout_s"]),
                update_s=wall - sum(h["rollout_s"]), peak_mem_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                curve=curve)


def sb3_python(explicit: str | None) -> str | None:
    candidates = [explicit, os.environ.get("SB3_PYTHON"), "/work/sb3venv/bin/python", os.path.join(ROOT, ".venv-sb3/bin/python")]
    for c in candidates:
        if c and os.path.exists(c):
            ok = subprocess.run([c, "-c", "import sb3_contrib"], capture_output=True).returncode == 0
            if ok:
                return c
    return None


def run_child(impl: str, env_id: str, steps: int, seed: int, sb3_py: str | None) -> dict:
    if impl == "keras_trpo":
        cmd = [sys.executable, os.path.abspath(__file__), "--child", env_id, str(steps), str(seed)]
    else:
        cmd = [sb3_py, os.path.join(HERE, "sb3_runner.py"), env_id, str(steps), str(seed)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{impl} run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


# ---------------------------------------------------------------- files
def read_csv(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_csv(path: str, rows: list[dict], fields: list[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write(path, buf.getvalue())


def record(out: str, result: dict, command: str) -> None:
    key = (result["impl"], result["env"], str(result["seed"]))
    curves_path = os.path.join(out, f"curves_{result['env']}.csv")
    curves = [r for r in read_csv(curves_path) if (r["impl"], r["env"], r["seed"]) != key]
    curves += [dict(impl=result["impl"], env=result["env"], seed=result["seed"], timesteps=t, wall_s=round(w, 3),
                    **{"return": round(r, 3)}) for t, w, r in result["curve"]]
    write_csv(curves_path, curves, ["impl", "env", "seed", "timesteps", "wall_s", "return"])
    summary_path = os.path.join(out, "summary.csv")
    rows = [r for r in read_csv(summary_path) if (r["impl"], r["env"], r["seed"]) != key]
    row = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in result.items() if k != "curve"}
    row.update(date=datetime.date.today().isoformat(), machine=machine(), command=command)
    rows.append(row)
    write_csv(summary_path, rows, SUMMARY_FIELDS)


# ---------------------------------------------------------------- plot and table
def plot(out: str, env_id: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = read_csv(os.path.join(out, f"curves_{env_id}.csv"))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for impl, color in (("keras_trpo", "tab:blue"), ("sb3-contrib", "tab:orange")):
        by_seed: dict[str, list] = {}
        for r in rows:
            if r["impl"] == impl and r["return"] not in ("", "nan"):
                by_seed.setdefault(r["seed"], []).append((float(r["timesteps"]), float(r["wall_s"]), float(r["return"])))
        if not by_seed:
            continue
        for ax, col, label in ((axes[0], 0, "timesteps"), (axes[1], 1, "wall-clock seconds")):
            series = [np.array(sorted(v)) for v in by_seed.values()]
            series = [s[np.argsort(s[:, col])] for s in series]
            lo = max(s[0, col] for s in series)
            hi = min(s[-1, col] for s in series)
            grid = np.linspace(lo, hi, 200)
            ys = np.stack([np.interp(grid, s[:, col], s[:, 2]) for s in series])
            ax.plot(grid, ys.mean(0), color=color, label=f"{impl} ({len(series)} seeds)")
            ax.fill_between(grid, ys.min(0), ys.max(0), color=color, alpha=0.2)
            ax.set_xlabel(label)
    axes[0].set_ylabel("mean return, last 100 training episodes")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle(f"TRPO on {env_id}: mean and min-max over seeds")
    fig.tight_layout()
    path = os.path.join(out, f"compare_{env_id}.png")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(buf.getvalue())
    os.replace(tmp, path)
    return path


def table(out: str) -> str:
    import statistics as st

    rows = read_csv(os.path.join(out, "summary.csv"))
    envs = list(dict.fromkeys(r["env"] for r in rows))
    lines = ["| env | timesteps | seeds | keras_trpo return | sb3-contrib return | keras_trpo steps/s | sb3-contrib steps/s | speed ratio |",
             "|---|---|---|---|---|---|---|---|"]

    def agg(env, impl):
        rs = [r for r in rows if r["env"] == env and r["impl"] == impl]
        if not rs:
            return None
        evals = [float(r["eval_mean"]) for r in rs]
        sps = [float(r["steps_per_s"]) for r in rs]
        return dict(n=len(rs), mean=st.mean(evals), std=st.pstdev(evals), sps=st.mean(sps), steps=rs[0]["timesteps"],
                    seeds=sorted(int(r["seed"]) for r in rs))

    for env in envs:
        k, s = agg(env, "keras_trpo"), agg(env, "sb3-contrib")
        ret = lambda a: f"{a['mean']:.0f} ± {a['std']:.0f}" if a else "–"  # noqa: E731
        sps = lambda a: f"{a['sps']:,.0f}" if a else "–"  # noqa: E731
        ratio = f"{k['sps'] / s['sps']:.2f}×" if k and s else "–"
        first = k or s
        lines.append(f"| {env} | {int(first['steps']):,} | {','.join(map(str, first['seeds']))} | {ret(k)} | {ret(s)} | "
                     f"{sps(k)} | {sps(s)} | {ratio} |")
    dates = sorted({r["date"] for r in rows})
    machines = sorted({r["machine"] for r in rows})
    commands = list(dict.fromkeys(r["command"] for r in rows))
    lines += ["", f"Return: 10 deterministic evaluation episodes (seeds 10000-10009) at the end of training, mean ± std over "
              f"training seeds. Measured {', '.join(dates)} on {'; '.join(machines)}, each run alone, one after the other.",
              "Commands:", ""] + [f"    {c}" for c in commands]
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(keras_trpo_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] in ("table", "plot"):
        p = argparse.ArgumentParser(prog=f"compare.py {sys.argv[1]}")
        if sys.argv[1] == "plot":
            p.add_argument("env")
        p.add_argument("--out", default=os.path.join(HERE, "results"))
        a = p.parse_args(sys.argv[2:])
        print(table(a.out) if sys.argv[1] == "table" else plot(a.out, a.env))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("env")
    p.add_argument("--timesteps", type=float, required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--impl", nargs="+", choices=sorted(IMPL_NAMES), default=["keras_trpo", "sb3"])
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    p.add_argument("--sb3-python", default=None)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    sb3_py = sb3_python(a.sb3_python) if "sb3" in a.impl else None
    impls = list(a.impl)
    if "sb3" in impls and sb3_py is None:
        print("notice: no Python with sb3_contrib found (set SB3_PYTHON); running keras_trpo only", file=sys.stderr)
        impls.remove("sb3")
    command = "python benchmarks/compare.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    for seed in a.seeds:
        for impl in impls:
            result = run_child(impl, a.env, int(a.timesteps), seed, sb3_py)
            record(a.out, result, command)
            print(json.dumps({k: (round(v, 1) if isinstance(v, float) else v) for k, v in result.items() if k != "curve"}),
                  flush=True)
    print(plot(a.out, a.env))
    print(table(a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
