"""``python -m keras_trpo train|evaluate``."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SystemExit(f"--set takes KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = _parse_value(value)
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m keras_trpo", description="Train and evaluate TRPO agents.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train an agent and write agent.keras, metrics.csv, learning_curve.png, summary.json")
    t.add_argument("--env", required=True, help="gymnasium env id, e.g. CartPole-v1 or Hopper-v5")
    t.add_argument("--timesteps", type=float, required=True, help="environment steps to train for (1e6 is fine)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=None, help="output directory (default runs/ENV-sSEED)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="override a TRPOConfig hyperparameter, e.g. --set max_kl=0.02 --set n_envs=4")
    t.add_argument("--vectorization", choices=["sync", "async"], default=None, help="vector env type")
    t.add_argument("--rollout-backend", choices=["inline", "process", "ray"], default=None,
                   help="where the environments run: in this process, in local worker processes, or on Ray actors "
                        "(the same results whichever; default: the env's preset)")
    t.add_argument("--rollout-workers", type=int, default=None, metavar="N",
                   help="workers the n_envs environments are split across (process and ray backends)")
    t.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="Ray cluster to join ('auto' or host:port); default: start a local Ray")
    t.add_argument("--eval-episodes", type=int, default=10, help="deterministic evaluation episodes at the end")
    t.add_argument("--checkpoint-every", type=int, default=0, metavar="N",
                   help="also save agent.keras every N iterations (0: only at the end)")
    t.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="0 silent, 1 progress bar, 2 one line per run")
    e = sub.add_parser("evaluate", help="evaluate a saved agent")
    e.add_argument("model", help="path to agent.keras")
    e.add_argument("--env", default=None, help="env id (default: the one it was trained on)")
    e.add_argument("--episodes", type=int, default=10)
    e.add_argument("--seed", type=int, default=10_000)
    return p


def train(args) -> dict:
    import keras

    import keras_trpo
    from keras_trpo.callbacks import MetricsCSVLogger
    from keras_trpo.plotting import plot_learning_curve
    from keras_trpo.serialization import atomic_write_bytes

    out = Path(args.out or f"runs/{args.env}-s{args.seed}")
    out.mkdir(parents=True, exist_ok=True)
    overrides = _overrides(args.set)
    for name in ("vectorization", "rollout_backend", "rollout_workers", "ray_address"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    agent = keras_trpo.TRPO(args.env, seed=args.seed, **overrides)
    callbacks = [MetricsCSVLogger(str(out / "metrics.csv"))]
    if args.checkpoint_every:
        callbacks.append(keras.callbacks.ModelCheckpoint(str(out / "agent.keras"), save_freq="epoch"))
    start = time.perf_counter()
    history = agent.fit(int(args.timesteps), callbacks=callbacks, verbose=args.verbose)
    wall = time.perf_counter() - start
    agent.save(str(out / "agent.keras"))
    plot_learning_curve(history.history, str(out / "learning_curve.png"), title=f"TRPO {args.env} seed {args.seed}")
    mean, std = agent.evaluate(episodes=args.eval_episodes, seed=10_000)
    summary = {
        "env": args.env, "timesteps": agent.num_timesteps, "seed": args.seed, "wall_s": round(wall, 2),
        "steps_per_s": round(agent.num_timesteps / wall, 1), "eval_mean": round(mean, 2), "eval_std": round(std, 2),
        "rollout_s": round(float(sum(history.history["rollout_s"])), 2),
        "update_s": round(float(sum(history.history["update_s"])), 2),
        "config": agent.config.to_dict(),
    }
    atomic_write_bytes(out / "summary.json", (json.dumps(summary, indent=1) + "\n").encode())
    agent.close()
    return summary


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        summary = train(args)
        print(json.dumps({k: v for k, v in summary.items() if k != "config"}))
    else:
        import keras_trpo

        agent = keras_trpo.load(args.model)
        mean, std = agent.evaluate(episodes=args.episodes, seed=args.seed, env=args.env)
        print(json.dumps({"env": args.env or agent.env_id, "eval_mean": round(mean, 2), "eval_std": round(std, 2),
                          "episodes": args.episodes}))
    return 0
