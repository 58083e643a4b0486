"""``python -m serving run|http``."""
from __future__ import annotations

import argparse
import json
import sys

from serving.errors import ServingError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m serving",
                                description="Run a keras-trpo policy exported to ONNX with onnxruntime alone.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="play episodes in a gymnasium env and print the mean return as JSON")
    r.add_argument("--model", required=True, help="an .onnx file written by keras-trpo's export")
    r.add_argument("--env", default=None, help="gymnasium env id (default: the env id in the model's metadata)")
    r.add_argument("--episodes", type=int, default=10)
    r.add_argument("--seed", type=int, default=10_000, help="episode i resets with seed + i (default 10000)")
    r.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the deterministic one")
    h = sub.add_parser("http", help="serve POST /v1/act, GET /v1/metadata, GET /healthz")
    h.add_argument("--model", required=True)
    h.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    h.add_argument("--port", type=int, default=8000)
    h.add_argument("--max-body-bytes", type=int, default=1 << 20, help="larger requests get 413 (default 1 MiB)")
    h.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads per call (default 1)")
    h.add_argument("--seed", type=int, default=None, help="seed for stochastic actions")
    h.add_argument("--access-log", action="store_true", help="log every request to stderr")
    return p


def run_episodes(policy, env_id: str, episodes: int, seed: int, deterministic: bool) -> dict:
    try:
        import gymnasium as gym
    except ImportError:
        raise SystemExit("`python -m serving run` needs gymnasium: pip install gymnasium (or 'gymnasium[mujoco]')")
    env = gym.make(env_id)
    returns = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            done, total = False, 0.0
            while not done:
                obs, reward, terminated, truncated, _ = env.step(policy.act(obs, deterministic=deterministic))
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    mean = sum(returns) / len(returns)
    std = (sum((r - mean) ** 2 for r in returns) / len(returns)) ** 0.5
    return {"env": env_id, "episodes": episodes, "mean_return": round(mean, 3), "std_return": round(std, 3),
            "returns": [round(r, 3) for r in returns]}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from serving.policy import OnnxPolicy

    try:
        if args.command == "run":
            if args.episodes <= 0:
                raise SystemExit("--episodes must be positive")
            policy = OnnxPolicy(args.model)
            env_id = args.env or policy.metadata.get("env_id")
            if not env_id:
                raise SystemExit("the model's metadata names no env; pass --env")
            print(json.dumps(run_episodes(policy, env_id, args.episodes, args.seed, not args.stochastic)))
            return 0
        from serving.server import make_server

        policy = OnnxPolicy(args.model, seed=args.seed, threads=args.threads)
        server = make_server(policy, args.host, args.port, max_body_bytes=args.max_body_bytes, access_log=args.access_log)
    except ServingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    print(f"serving {policy} on http://{host}:{port} (POST /v1/act, GET /v1/metadata, GET /healthz)", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
