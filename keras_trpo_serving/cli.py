"""``python -m keras_trpo_serving run|http|ros2``: play episodes with an exported policy, serve it over HTTP, or run
it as a ROS 2 node (keras_trpo_serving/ros2/)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
from typing import Any, Optional, Sequence

from keras_trpo_serving.errors import ServingError
from keras_trpo_serving.settings import ServerSettings

DEFAULT_EPISODE_SEED = 10_000  # episode i resets with seed 10000 + i: away from the seeds training uses
MASK_MODES = ("auto", "on", "off")  # --action-masks: the names training's TRPOConfig.action_masks uses


class CliError(Exception):
    """A usage problem: printed as ``error: ...`` with exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m keras_trpo_serving",
                                description="Run a keras-trpo policy exported to ONNX (onnxruntime) or .tflite (ai-edge-litert) "
                                            "(no TensorFlow).")
    sub = p.add_subparsers(dest="command", required=True, metavar="{run,http,ros2}")
    r = sub.add_parser("run", help="play episodes in a gymnasium env and print the mean return as JSON",
                       description="Play episodes in a gymnasium env (pip install gymnasium) and print "
                                   "{mean_return, std_return, episodes, env, returns, invalid_actions} as JSON. "
                                   "A model with an action_mask input is given the env's masks (its action_masks() "
                                   "method, else info[\"action_mask\"]); invalid_actions counts the actions the "
                                   "env's mask forbade (0 with masks), whenever the env gives masks.")
    r.add_argument("--model", required=True,
                   help="an .onnx or .ort file (onnxruntime) or a .tflite file (ai-edge-litert) written by "
                        "keras-trpo's export; the format is recognised by content")
    r.add_argument("--env", default=None, help="gymnasium env id (default: the env id in the model's metadata)")
    r.add_argument("--episodes", type=int, default=10, help="number of episodes (default 10)")
    r.add_argument("--seed", type=int, default=DEFAULT_EPISODE_SEED,
                   help=f"episode i resets with seed SEED + i (default {DEFAULT_EPISODE_SEED}); also seeds "
                        "--stochastic sampling")
    r.add_argument("--stochastic", action="store_true", help="sample actions instead of taking the deterministic one")
    r.add_argument("--action-masks", choices=MASK_MODES, default="auto",
                   help="auto (default): give a model with an action_mask input the env's masks when the env has them; "
                        "on: the same, and an error if the model or the env has none; off: give none (every action "
                        "valid: the unmasked baseline). Invalid actions are counted in every mode")
    r.add_argument("--video", default=None, metavar="PATH.mp4|PATH.gif",
                   help="also write the first episode, rendered with render_mode='rgb_array', as an MP4 or GIF "
                        "(pip install imageio imageio-ffmpeg; headless MuJoCo uses MUJOCO_GL=egl)")

    h = sub.add_parser("http", help="serve POST /v1/act, GET /v1/metadata, /healthz, /metrics, /openapi.json",
                       description="Serve the policy as JSON over HTTP on uvicorn (Starlette app; needs the http "
                                   "extra: pip install 'keras-trpo-serving[http]'): POST /v1/act, GET /v1/metadata, "
                                   "GET /healthz, GET /metrics (Prometheus), GET /openapi.json.")
    h.add_argument("--model", required=True,
                   help="an .onnx or .ort file (onnxruntime) or a .tflite file (ai-edge-litert) written by "
                        "keras-trpo's export; the format is recognised by content")
    d = ServerSettings()
    h.add_argument("--host", default=d.host, help="address to bind (default 127.0.0.1: this machine only)")
    h.add_argument("--port", type=int, default=d.port, help=f"port (default {d.port}; 0 picks a free one)")
    h.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes,
                   help="larger request bodies get 413 (default 1 MiB)")
    h.add_argument("--body-timeout", type=float, default=d.body_timeout,
                   help=f"a request body must arrive within this many seconds, else 408 (default {d.body_timeout:g})")
    h.add_argument("--header-timeout", type=float, default=d.header_timeout,
                   help="a request's line and headers must arrive within this many seconds of its first byte, "
                        f"else 408 and the connection is closed (default {d.header_timeout:g})")
    h.add_argument("--keep-alive-timeout", "--idle-timeout", dest="keep_alive_timeout", type=float,
                   default=d.keep_alive_timeout,
                   help="close a connection idle this many seconds, kept alive or never used "
                        f"(default {d.keep_alive_timeout:g}; uvicorn's timeout_keep_alive)")
    h.add_argument("--max-concurrency", type=int, default=d.max_concurrency,
                   help="with more open connections (or requests in progress) than this, new requests get 503 at "
                        f"once (default {d.max_concurrency}; uvicorn's limit_concurrency, per worker)")
    h.add_argument("--backlog", type=int, default=d.backlog,
                   help=f"listen queue for bursts of new connections (default {d.backlog}; the kernel may cap it)")
    h.add_argument("--max-header-bytes", type=int, default=d.max_header_bytes,
                   help=f"request line and headers larger than this get 400 (default {d.max_header_bytes}; "
                        "h11's max_incomplete_event_size; not enforced with --http httptools)")
    h.add_argument("--http", choices=("h11", "httptools"), default=d.http,
                   help="uvicorn's HTTP/1.1 parser (default h11; httptools is faster, needs `pip install httptools`, "
                        "and does not limit the head's size)")
    h.add_argument("--workers", type=int, default=d.workers,
                   help="processes serving the same socket, each with its own copy of the model (default 1); "
                        "/metrics sums them")
    h.add_argument("--batch-max", type=int, default=d.batch_max,
                   help="dynamic batching: gather up to N concurrent deterministic /v1/act requests into one "
                        "onnxruntime call (default 0: off); each answer is the one the request gets alone")
    h.add_argument("--batch-wait-us", type=int, default=d.batch_wait_us,
                   help="with --batch-max: wait at most this many microseconds after a batch's first request "
                        f"for others (default {d.batch_wait_us})")
    h.add_argument("--graceful-timeout", type=float, default=d.graceful_timeout,
                   help="on SIGTERM/Ctrl-C, stop accepting and give requests in progress this many seconds "
                        f"(default {d.graceful_timeout:g})")
    h.add_argument("--token-file", default=None,
                   help="require 'Authorization: Bearer <token>' on every route but /healthz, the token being this "
                        "file's first line (else the KERAS_TRPO_SERVING_TOKEN environment variable, if set)")
    h.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (or LiteRT interpreter threads) per call (default 1)")
    h.add_argument("--seed", type=int, default=None, help="seed for stochastic actions (\"deterministic\": false)")
    h.add_argument("--access-log", action="store_true", help="log every request to stderr")

    from keras_trpo_serving.ros2.cli import add_parser as add_ros2_parser  # no rclpy until `ros2` runs
    add_ros2_parser(sub)
    return p


def _check_env_fits(policy: Any, env: Any) -> None:
    """Fail before the first step if the env is not the one the policy was exported for: the
    spaces' types, shapes, sizes (Discrete n, MultiDiscrete nvec), starts and Box bounds, naming
    what differs. (A Discrete(3) policy in a Discrete(2) env would otherwise send actions the env
    does not have.)"""
    from keras_trpo_serving.spaces import space_mismatch

    problems = []
    for what, mine, theirs in (("observation", policy.observation_space, env.observation_space),
                               ("action", policy.action_space, env.action_space)):
        why = space_mismatch(mine, theirs)
        if why:
            problems.append(f"the env's {what} space {theirs} does not match the model's "
                            f"{mine.type}{list(mine.shape)}: {why}")
    if problems:
        raise CliError("; ".join(problems))


class _EnvMasks:
    """The env's action mask before each step (``keras_trpo_serving.action_masks.MaskSource``), checked
    by the sampling rule, what the policy is given of it, and the count of actions it forbade."""

    def __init__(self, policy: Any, env: Any, mode: str):
        from keras_trpo_serving.action_masks import MaskSource

        if mode not in MASK_MODES:
            raise CliError(f"--action-masks must be one of {list(MASK_MODES)}, got {mode!r}")
        if mode == "on" and policy.mask_width is None:
            raise CliError("--action-masks on: the model has no action_mask input (it was exported without masks)")
        self.policy, self.mode, self.source = policy, mode, MaskSource(env)
        self.maskable = policy.sampling_rule.mask_width is not None  # Box actions are never masked
        self.feeds = mode != "off" and policy.mask_width is not None  # the policy is given the env's masks
        self.invalid = 0

    def current(self, info: Any, episode: int, t: int) -> Any:
        """The env's mask for the next action, bool ``[1, W]`` (None if the env gives none); a CliError
        naming the episode and step if it is malformed."""
        from keras_trpo_serving.errors import InvalidActionMask

        raw = self.source(info) if self.maskable else None
        if raw is None:
            if self.mode == "on":
                raise CliError("--action-masks on: the env gives no action masks (no action_masks() method, no "
                               'info["action_mask"])')
            return None
        try:
            return self.policy.sampling_rule.check_mask(raw, 1)
        except InvalidActionMask as e:
            raise CliError(f"the env's action mask ({self.source.kind}) at episode {episode}, step {t}: {e}") from None

    def given(self, mask: Any) -> Any:
        """What the policy gets: the env's mask if the model takes one and masks are not off."""
        return mask if self.feeds else None

    def count(self, action: Any, mask: Any) -> None:
        """Count ``action`` if ``mask`` (the env's, bool ``[1, W]``) forbade it."""
        import numpy as np

        from keras_trpo_serving.invalid_actions import forbidden

        if mask is not None:
            self.invalid += int(forbidden(self.policy.action_space, np.asarray(action)[None], mask)[0])


def run_episodes(policy: Any, env_id: str, episodes: int, seed: int = DEFAULT_EPISODE_SEED,
                 deterministic: bool = True, env: Any = None, action_masks: str = "auto") -> dict:
    """Play ``episodes`` episodes (episode i reset with ``seed + i``); returns the JSON summary.

    A recurrent policy's state is reset at each episode start; a Dict env's observations (dicts)
    go to the policy as they are. ``action_masks`` as ``--action-masks``: a model with an
    ``action_mask`` input is given the env's masks (``MaskSource``: the ``action_masks()`` method
    wins over ``info["action_mask"]``) unless it is "off"; ``invalid_actions`` in the summary counts
    the actions the env's mask forbade (None if the env gives no masks)."""
    try:
        import gymnasium as gym  # optional: only this command needs it
    except ImportError:
        raise CliError("`python -m keras_trpo_serving run` needs gymnasium: pip install gymnasium "
                       "(MuJoCo envs: pip install 'gymnasium[mujoco]')") from None
    try:
        env = gym.make(env_id) if env is None else env  # given: a recording env (--video)
    except Exception as e:  # noqa: BLE001 - unknown id, missing extra (mujoco, box2d), ...
        raise CliError(f"cannot make env {env_id!r}: {type(e).__name__}: {e}") from None
    returns, invalid = [], []
    try:
        _check_env_fits(policy, env)
        masks = _EnvMasks(policy, env, action_masks)
        for i in range(episodes):
            obs, info = env.reset(seed=seed + i)
            policy.reset()  # a recurrent policy starts each episode from zeros (a no-op for feed-forward)
            done, total, t, before = False, 0.0, 0, masks.invalid
            while not done:
                mask = masks.current(info, i, t)
                action = policy.act(obs, deterministic=deterministic, action_mask=masks.given(mask))
                masks.count(action, mask)
                obs, reward, terminated, truncated, info = env.step(action)
                total += float(reward)
                done, t = terminated or truncated, t + 1
            returns.append(total)
            invalid.append(masks.invalid - before)
    finally:
        env.close()
    mean = math.fsum(returns) / len(returns)
    std = math.sqrt(math.fsum((r - mean) ** 2 for r in returns) / len(returns))
    seen = masks.source.kind  # where the env's masks came from; None: it gave none
    return {"env": env_id, "episodes": episodes, "mean_return": round(mean, 3), "std_return": round(std, 3),
            "seed": seed, "deterministic": deterministic, "returns": [round(r, 3) for r in returns],
            "action_masks": seen, "masked": seen is not None and masks.feeds,
            "invalid_actions": masks.invalid if seen else None, "invalid_per_episode": invalid if seen else None}


def _run(args: argparse.Namespace) -> int:
    from keras_trpo_serving.load import load_policy

    if args.episodes <= 0:
        raise CliError("--episodes must be positive")
    policy = load_policy(args.model, seed=args.seed)
    env_id = args.env or policy.metadata.get("env_id")
    if not env_id:
        raise CliError("the model's metadata names no env; pass --env")
    if not args.video:
        print(json.dumps(run_episodes(policy, env_id, args.episodes, args.seed, not args.stochastic,
                                      action_masks=args.action_masks)))
        return 0
    from keras_trpo_serving.video import VideoError, record_first_episode

    try:
        result, video = record_first_episode(
            env_id, args.video, lambda env: run_episodes(policy, env_id, args.episodes, args.seed,
                                                         not args.stochastic, env=env, action_masks=args.action_masks))
    except VideoError as e:
        raise CliError(str(e)) from None
    except ImportError as e:  # gymnasium, for the env
        raise CliError(f"`python -m keras_trpo_serving run --video` needs gymnasium and imageio: {e}") from None
    result["video"] = video
    print(json.dumps(result))
    return 0


def _http(args: argparse.Namespace) -> int:
    from keras_trpo_serving.load import load_policy

    try:
        from keras_trpo_serving.auth import load_token
        from keras_trpo_serving.server import make_server, serve_workers
    except ImportError as e:
        raise CliError(f"`python -m keras_trpo_serving http` needs the http extra ({e.name} is missing): "
                       "pip install 'keras-trpo-serving[http]' (or -r keras_trpo_serving/requirements-http.txt)") from None
    if args.threads < 1:
        raise CliError("--threads must be at least 1")
    # The warnings (exposed without a token, a token file others can read) go to stderr.
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    if args.access_log:
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    try:
        token, token_source = load_token(args.token_file)  # the token itself is never printed
        settings = ServerSettings(
            host=args.host, port=args.port, max_body_bytes=args.max_body_bytes, body_timeout=args.body_timeout,
            header_timeout=args.header_timeout, keep_alive_timeout=args.keep_alive_timeout,
            max_concurrency=args.max_concurrency, backlog=args.backlog, max_header_bytes=args.max_header_bytes,
            http=args.http, workers=args.workers, batch_max=args.batch_max, batch_wait_us=args.batch_wait_us,
            graceful_timeout=args.graceful_timeout, access_log=args.access_log, token=token)
    except ValueError as e:
        raise CliError(str(e).replace("_", "-")) from None
    policy = load_policy(args.model, seed=args.seed, threads=args.threads)  # fails here, not in every worker
    auth = f"; bearer token from {token_source}" if token_source else ""
    batching = f"; batching up to {settings.batch_max} requests, {settings.batch_wait_us} us" if settings.batch_max > 1 else ""

    def announce(address: tuple) -> None:
        print(f"serving {policy} on http://{address[0]}:{address[1]} (POST /v1/act, GET /v1/metadata, GET /healthz, "
              f"GET /metrics, GET /openapi.json{auth}{batching}; {settings.workers} worker(s))",
              file=sys.stderr, flush=True)

    try:
        if settings.workers > 1:
            serve_workers(args.model, args.seed, args.threads, settings, on_bound=announce)
            return 0
        server = make_server(policy, **dataclasses.asdict(settings))
    except OSError as e:  # port in use, address not on this machine
        raise CliError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    announce(server.server_address)
    try:
        server.serve_forever()  # uvicorn handles SIGINT/SIGTERM: stops accepting, lets requests finish
    finally:
        server.server_close()
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "ros2":
            from keras_trpo_serving.ros2.cli import run as run_ros2
            return run_ros2(args)
        return _run(args) if args.command == "run" else _http(args)
    except (ServingError, CliError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
