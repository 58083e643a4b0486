"""Rollout backends side by side: steps/s and where an iteration's time goes, and a cost model.

  PYTHONPATH=. python -m benchmarks.scaling [--envs Hopper-v5 CartPole-v1] [--iterations 20] [--out DIR]
  PYTHONPATH=. python -m benchmarks.scaling model [--out DIR]      # the cost model from stored results

For each env, each configuration runs in a fresh child process (so Ray and TensorFlow start
clean) with the env's preset hyperparameters (2 envs), for ``--warmup`` iterations that are not
timed (XLA compilation, worker start-up) and then ``--iterations`` timed ones:

  inline 1        the envs in the training process
  process 1 / 2   local worker processes
  ray 1 / 2       Ray actors on a local Ray started by keras_trpo
  ray 2 (2 nodes) Ray actors on a two-node cluster simulated on this machine
                  (``ray.cluster_utils.Cluster``, one CPU per node, one actor per node)

Per iteration, in milliseconds (medians): ``rollout`` (history["rollout_s"]: from asking the
workers for fragments to a merged, reward-scaled batch), ``step`` (the slowest worker's own
stepping), ``broadcast`` (making the policy available to workers: ``ray.put`` or one pickling),
``transfer`` (wait for the fragments minus the slowest worker's stepping: dispatch, result
transfer and unpickling), ``overhead`` (rollout minus step: broadcast + transfer + merge),
``update`` (values, GAE, policy and critic updates). steps/s is timed steps over the timed
iterations' wall time.

A second sweep measures the trainer-side cost of N workers: CartPole with one env per worker and
8 steps per fragment, so stepping is next to nothing and what remains is what the trainer pays
per worker (on this 2-core machine the workers also wait for a core, so this is an upper bound).

``model`` fits per-iteration cost = update(batch) + overhead(N) + fragment stepping time from
the stored results and projects steps/s for 8, 32 and 128 workers (one env per worker, 1,024
steps per fragment, one core per worker). Results go to ``--out``/scaling.json (rewritten
after every finished configuration; a rerun skips what is stored unless --force).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from benchmarks.benchutil import RESULTS, child_env, module_command
from keras_trpo_serving.files import atomic_write_text

CONFIGS = [("inline", 1, 1), ("process", 1, 1), ("process", 2, 1), ("ray", 1, 1), ("ray", 2, 1), ("ray", 2, 2)]
SWEEP = [1, 2, 4, 8, 16]
PROJECT = [8, 32, 128]


def key(env: str, backend: str, workers: int, nodes: int, n_envs: int | None = None) -> str:
    return f"{env}|{backend}|{workers}w|{nodes}n" + (f"|{n_envs}e" if n_envs else "")


# ----------------------------------------------------------------------------- child
def child(env: str, backend: str, workers: int, nodes: int, warmup: int, iterations: int,
          n_envs: int | None, n_steps: int | None) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cluster = None
    if nodes > 1:
        import ray
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, include_dashboard=False, logging_level="WARNING",
                 runtime_env={"env_vars": {"PYTHONPATH": child_env()["PYTHONPATH"]}})
    import keras

    import keras_trpo

    hp = dict(rollout_backend=backend, rollout_workers=workers)
    if n_envs:
        hp["n_envs"] = n_envs
    if n_steps:
        hp["n_steps"] = n_steps
    agent = keras_trpo.TRPO(env, seed=0, **hp)
    rows: list[dict] = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, iteration, logs=None):
            rows.append(dict(time=time.perf_counter(), rollout_s=logs["rollout_s"], update_s=logs["update_s"],
                             **agent.rollout_stats))

    per_iteration = agent.config.n_envs * agent.config.n_steps
    start = time.perf_counter()
    agent.fit((warmup + iterations) * per_iteration, callbacks=[Record()], verbose=0)
    timed = rows[warmup:]
    wall = timed[-1]["time"] - rows[warmup - 1]["time"] if warmup else timed[-1]["time"] - start
    med = lambda k: 1000 * statistics.median(r[k] for r in timed)  # noqa: E731
    agent.close()
    if cluster is not None:
        import ray

        ray.shutdown()
        cluster.shutdown()
    return dict(env=env, backend=backend, workers=workers, nodes=nodes, n_envs=agent.config.n_envs,
                n_steps=agent.config.n_steps, iterations=iterations, steps_per_s=iterations * per_iteration / wall,
                rollout_ms=med("rollout_s"), step_ms=med("step_s"), broadcast_ms=med("broadcast_s"),
                transfer_ms=1000 * statistics.median(r["wait_s"] - r["step_s"] for r in timed),
                overhead_ms=1000 * statistics.median(r["rollout_s"] - r["step_s"] for r in timed),
                update_ms=med("update_s"), cpu=os.cpu_count())


def run_child(args: list[str]) -> dict | None:
    cmd = module_command(sys.executable, "scaling", "--child", *args)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    print(f"  failed ({' '.join(args)}): exit {proc.returncode}\n{proc.stderr[-2000:]}", file=sys.stderr)
    return None


# ----------------------------------------------------------------------------- tables and the model
def table(results: dict, env: str) -> str:
    head = ("| backend | workers | nodes | steps/s | × inline | rollout | step | broadcast | transfer | overhead "
            "| update |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    base = results.get(key(env, "inline", 1, 1))
    lines = [head]
    for backend, workers, nodes in CONFIGS:
        r = results.get(key(env, backend, workers, nodes))
        if r is None:
            continue
        ratio = f"{r['steps_per_s'] / base['steps_per_s']:.2f}×" if base else "–"
        lines.append(f"| {backend} | {workers} | {nodes} | {r['steps_per_s']:,.0f} | {ratio} | {r['rollout_ms']:.1f} | "
                     f"{r['step_ms']:.1f} | {r['broadcast_ms']:.2f} | {r['transfer_ms']:.2f} | {r['overhead_ms']:.2f} | "
                     f"{r['update_ms']:.1f} |")
    return "\n".join(lines)


def sweep_table(results: dict) -> str:
    lines = ["| backend | workers | broadcast ms | transfer ms | overhead ms | overhead per worker ms |",
             "|---|--:|--:|--:|--:|--:|"]
    for backend in ("process", "ray"):
        for n in SWEEP:
            r = results.get(key("CartPole-v1", backend, n, 1, n))
            if r:
                lines.append(f"| {backend} | {n} | {r['broadcast_ms']:.2f} | {r['transfer_ms']:.2f} | "
                             f"{r['overhead_ms']:.2f} | {r['overhead_ms'] / n:.2f} |")
    return "\n".join(lines)


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares ``y = a + b x``."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - b * mx, b


def model(results: dict, env: str = "Hopper-v5", steps_per_fragment: int = 1024) -> str:
    """Projected steps/s for N workers from the measured pieces (see the module docstring)."""
    inline = results.get(key(env, "inline", 1, 1))
    if inline is None:
        return f"(no {env} results yet)"
    env_step_ms = inline["step_ms"] / (inline["n_envs"] * inline["n_steps"])  # one env step + the actor's share
    update_per_sample_ms = inline["update_ms"] / (inline["n_envs"] * inline["n_steps"])
    lines = [f"{env}: one env step {1000 * env_step_ms:.1f} µs (actor included), update "
             f"{1000 * update_per_sample_ms:.2f} µs per sample (measured at {inline['n_envs'] * inline['n_steps']:,}); "
             f"{steps_per_fragment:,} steps per fragment, one env per worker, one core per worker.",
             "", "| backend | workers | batch | fragment ms | overhead ms | update ms | projected steps/s | rollout share |",
             "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for backend in ("process", "ray"):
        pts = [(n, results[k]["overhead_ms"]) for n in SWEEP if (k := key("CartPole-v1", backend, n, 1, n)) in results]
        if len(pts) < 2:
            continue
        a, b = fit_line([p[0] for p in pts], [p[1] for p in pts])
        for n in PROJECT:
            batch = n * steps_per_fragment
            fragment = steps_per_fragment * env_step_ms
            overhead = a + b * n
            update = update_per_sample_ms * batch
            total = fragment + overhead + update
            lines.append(f"| {backend} | {n} | {batch:,} | {fragment:.0f} | {overhead:.1f} | {update:.0f} | "
                         f"{batch / total * 1000:,.0f} | {(fragment + overhead) / total:.0%} |")
        lines.append(f"| {backend} | (fit) | | | {a:.2f} + {b:.3f}·N | | | |")
    return "\n".join(lines)


def report(results: dict) -> str:
    parts = []
    for env in sorted({r["env"] for r in results.values() if r["n_envs"] == 2}):
        parts += [f"### {env}", "", table(results, env), ""]
    parts += ["### Trainer-side cost of N workers (CartPole, 1 env × 8 steps per worker)", "", sweep_table(results), "",
              "### Cost model", "", model(results), ""]
    return "\n".join(parts)


# ----------------------------------------------------------------------------- main
def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", nargs="?", default="run", choices=["run", "model"])
    p.add_argument("--envs", nargs="+", default=["Hopper-v5", "CartPole-v1"])
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--no-sweep", action="store_true")
    p.add_argument("--force", action="store_true", help="run configurations that are already stored again")
    p.add_argument("--out", default=RESULTS)
    p.add_argument("--child", nargs=8, metavar="ARG", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        env, backend, workers, nodes, warmup, iterations, n_envs, n_steps = a.child
        r = child(env, backend, int(workers), int(nodes), int(warmup), int(iterations), int(n_envs) or None,
                  int(n_steps) or None)
        print("RESULT " + json.dumps(r), flush=True)
        return 0
    path = os.path.join(a.out, "scaling.json")
    results = json.load(open(path)) if os.path.exists(path) else {}
    if a.what == "run":
        jobs = [(env, b, w, n, 0, 0) for env in a.envs for b, w, n in CONFIGS]
        if not a.no_sweep:
            jobs += [("CartPole-v1", b, n, 1, n, 8) for b in ("process", "ray") for n in SWEEP]
        for env, backend, workers, nodes, n_envs, n_steps in jobs:
            k = key(env, backend, workers, nodes, n_envs or None)
            if k in results and not a.force:
                continue
            print(f"{k} ...", file=sys.stderr, flush=True)
            load = os.getloadavg()[0]
            r = run_child([env, backend, str(workers), str(nodes), str(a.warmup), str(a.iterations), str(n_envs),
                           str(n_steps)])
            if r is None:
                continue
            r.update(load_before=round(load, 2), measured=time.strftime("%Y-%m-%d %H:%M"))
            results[k] = r
            os.makedirs(a.out, exist_ok=True)
            atomic_write_text(path, json.dumps(results, indent=1) + "\n")
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
