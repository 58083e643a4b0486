"""Where one TRPO iteration's time goes, keras_trpo against sb3-contrib with the same settings.

  python -m benchmarks.profile_iteration [--env Hopper-v5] [--iterations 5] [--warmup 1] [--sb3-python PATH]
                                        [--set NAME=VALUE ...] [--variant LABEL:NAME=VALUE,NAME=VALUE ...]

--variant profiles keras_trpo again with those settings (on top of --set), in the same run, and adds
a table of the policy update per variant against sb3-contrib's (e.g. --variant
"gn+sub4:fisher_product=gauss_newton,fisher_subsample=4").

Milliseconds per iteration, median over --iterations iterations that follow --warmup iterations
(keras_trpo's first iteration traces and XLA-compiles its update functions; it is printed apart).

keras_trpo (in this process, agent.fit with timing wrappers, nothing else changed):
  rollout        history["rollout_s"]: RolloutCollector.collect, env steps and the NumPy actor
  values + GAE   history["update_s"] minus the two updates: policy.rollout_values (the critic over the rollout), GAE,
                 advantage normalisation, minibatch indices, observation statistics, actor sync
  policy update  learner.policy_update: surrogate gradient, CG, line search (one tf.function)
  value update   learner.value_update: the critic's epochs of minibatch Adam (one tf.function)
sb3-contrib (child process, sb3_runner.py --profile; torch on one thread, as in the zoo runs):
  rollout        collect_rollouts; it includes the value predictions and GAE, which sb3 does
                 while collecting (GAE alone: compute_returns_and_advantage, shown in brackets)
  policy update  train() up to its critic loop
  value update   train()'s critic loop, from its first rollout_buffer.get(batch_size) call on
  (same run, so the split is exact; no second run with n_critic_updates=0 is needed)
"total update" is policy + value update for both: train() for sb3-contrib.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.benchutil import module_command
from benchmarks.compare import find_sb3_python, hyperparameter_differences, parse_set, run_child


def keras_trpo_profile(env_id: str, iterations: int, warmup: int, seed: int = 0, overrides: dict | None = None) -> dict:
    import gymnasium as gym

    import keras_trpo

    agent = keras_trpo.TRPO(env_id, seed=seed, **(overrides or {}))
    learner = agent.learner
    spent: dict[str, list[float]] = {"rollout_values": [], "policy_update": [], "value_update": []}

    def wrap(owner, name):
        original = getattr(owner, name)

        def timed(*a, **kw):
            t = time.perf_counter()
            out = original(*a, **kw)
            spent[name].append(time.perf_counter() - t)
            return out

        setattr(owner, name, timed)

    for name in spent:
        wrap(agent.policy if name == "rollout_values" else learner, name)
    per_iteration = agent.config.n_steps * agent.config.n_envs
    h = agent.fit(per_iteration * (warmup + iterations), verbose=0).history
    agent.close()
    n = len(h["rollout_s"])
    if any(len(v) != n for v in spent.values()):
        raise RuntimeError(f"expected one call of each learner method per iteration: {n} iterations, "
                           f"{ {k: len(v) for k, v in spent.items()} }")
    rows = {"rollout": h["rollout_s"], "policy_update": spent["policy_update"], "value_update": spent["value_update"],
            "values_gae": [u - p - c for u, p, c in zip(h["update_s"], spent["policy_update"], spent["value_update"])],
            "values": spent["rollout_values"], "learn": h["update_s"],
            "total_update": [p + c for p, c in zip(spent["policy_update"], spent["value_update"])],
            "iteration": [r + u for r, u in zip(h["rollout_s"], h["update_s"])]}
    ms = {f"{k}_ms": 1000 * statistics.median(v[warmup:]) for k, v in rows.items()}
    space = agent.action_space
    return dict(impl="keras_trpo", env=env_id, iterations=iterations, warmup=warmup, steps_per_iteration=per_iteration,
                first_iteration_ms=1000 * rows["iteration"][0], **ms, config=agent.config.to_dict(),
                action_dim=int(math.prod(space.shape)) if isinstance(space, gym.spaces.Box) else None)


def sb3_profile(python: str, env_id: str, iterations: int, warmup: int, seed: int) -> dict | None:
    cmd = module_command(python, "sb3_runner", "--profile", env_id, str(iterations), str(warmup), str(seed))
    return run_child(cmd, f"sb3-contrib profile of {env_id}")


def table(ours: dict, theirs: dict | None) -> str:
    def cell(d, key):
        return f"{d[key]:.1f}" if d and key in d else "–"

    def ratio(key):
        return f"{ours[key] / theirs[key]:.2f}" if theirs and theirs.get(key) else "–"

    gae = f"(in rollout; GAE {theirs['gae_ms']:.1f})" if theirs else "–"
    rows = [("rollout", cell(ours, "rollout_ms"), cell(theirs, "rollout_ms"), ratio("rollout_ms")),
            ("values + GAE", cell(ours, "values_gae_ms"), gae, "–"),
            ("policy update", cell(ours, "policy_update_ms"), cell(theirs, "policy_update_ms"),
             ratio("policy_update_ms")),
            ("value update", cell(ours, "value_update_ms"), cell(theirs, "value_update_ms"), ratio("value_update_ms")),
            ("total update (policy + value)", cell(ours, "total_update_ms"), cell(theirs, "update_ms"),
             f"{ours['total_update_ms'] / theirs['update_ms']:.2f}" if theirs else "–"),
            ("iteration", cell(ours, "iteration_ms"), cell(theirs, "iteration_ms"), ratio("iteration_ms"))]
    head = (f"{ours['env']}: ms per iteration of {ours['steps_per_iteration']} env steps, median of "
            f"{ours['iterations']} after {ours['warmup']} warm-up")
    lines = [head, "", "| phase | keras_trpo | sb3-contrib | keras_trpo / sb3-contrib |", "|---|--:|--:|--:|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += ["", f"keras_trpo's first iteration (tracing + XLA compilation): {ours['first_iteration_ms']:.0f} ms. "
              "TensorFlow uses all cores; sb3-contrib's torch is limited to one thread (zoo setting)."]
    return "\n".join(lines)


def parse_variant(text: str) -> tuple[str, dict]:
    """``"LABEL:NAME=VALUE,NAME=VALUE"`` -> (label, settings)."""
    label, _, settings = text.partition(":")
    if not label or not settings:
        raise ValueError(f"--variant takes LABEL:NAME=VALUE[,NAME=VALUE...], got {text!r}")
    return label, parse_set(settings.split(","))


def variants_table(base: dict, variants: list[tuple[str, dict]], theirs: dict | None) -> str:
    """Policy and total update per keras_trpo variant, and the policy update as a fraction of sb3-contrib's."""
    lines = ["| keras_trpo variant | policy update (ms) | / sb3-contrib's | total update (ms) | iteration (ms) |",
             "|---|--:|--:|--:|--:|"]
    for label, r in [("as --set", base)] + variants:
        frac = f"{r['policy_update_ms'] / theirs['policy_update_ms']:.2f}" if theirs else "–"
        lines.append(f"| {label} | {r['policy_update_ms']:.1f} | {frac} | {r['total_update_ms']:.1f} | "
                     f"{r['iteration_ms']:.1f} |")
    if theirs:
        lines.append(f"| sb3-contrib | {theirs['policy_update_ms']:.1f} | 1.00 | {theirs['update_ms']:.1f} | "
                     f"{theirs['iteration_ms']:.1f} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--iterations", type=int, default=5, help="measured iterations (after the warm-up)")
    p.add_argument("--warmup", type=int, default=1, help="iterations run first and not measured")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sb3-python", default=None, help="a Python that imports sb3_contrib (as compare.py)")
    p.add_argument("--no-sb3", action="store_true", help="profile keras_trpo only")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="a TRPOConfig setting for keras_trpo, e.g. --set fisher_product=gauss_newton")
    p.add_argument("--variant", action="append", default=[], metavar="LABEL:NAME=VALUE,...",
                   help="profile keras_trpo again with these settings too (same run); repeatable")
    a = p.parse_args()
    if a.iterations < 1 or a.warmup < 1:
        p.error("--iterations and --warmup must be at least 1")
    base_settings = parse_set(a.set)
    try:
        wanted = [parse_variant(v) for v in a.variant]
    except ValueError as e:
        p.error(str(e))
    ours = keras_trpo_profile(a.env, a.iterations, a.warmup, a.seed, base_settings)
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in ours.items()
                      if k not in ("config", "action_dim")}), flush=True)
    variants = []
    for label, settings in wanted:
        r = keras_trpo_profile(a.env, a.iterations, a.warmup, a.seed, {**base_settings, **settings})
        print(json.dumps({"variant": label, **{k: round(v, 2) for k, v in r.items() if k.endswith("_ms")}}), flush=True)
        variants.append((label, r))
    theirs = None
    if not a.no_sb3:
        python, why = find_sb3_python(a.sb3_python)
        if python is None:
            print(f"notice: skipping sb3-contrib: {why}", file=sys.stderr)
        else:
            theirs = sb3_profile(python, a.env, a.iterations, a.warmup, a.seed)
    if theirs:
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in theirs.items()
                          if k != "hyperparameters"}), flush=True)
        _, diffs = hyperparameter_differences(ours, theirs)
        if diffs:
            print(f"notice: hyperparameters differ: {'; '.join(diffs)}", file=sys.stderr)
    print()
    print(table(ours, theirs))
    if variants:
        print()
        print(variants_table(ours, variants, theirs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
