"""``keras-trpo train|evaluate|export|serve|presets|tune`` (also ``python -m keras_trpo ...``).

Nothing here imports TensorFlow at module level, so ``--help`` answers at once; the commands
that need it import it through ``keras_trpo.quiet`` to keep its C++ start-up lines off stderr.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

if TYPE_CHECKING:  # annotations only: importing keras_trpo.config here would slow `--help`
    from keras_trpo.config import TRPOConfig

PROG = "keras-trpo"
FORWARDED = {  # subcommands that are other tools' command lines, passed their arguments untouched
    "export": ("keras_trpo.export.cli", "export a trained agent to ONNX / SavedModel (keras-trpo export --help)"),
    "serve": ("keras_trpo_serving.cli", "run an exported ONNX policy with onnxruntime alone: serve run|http "
                             "(keras-trpo serve --help)"),
}
ROLLOUT_FLAGS = ("vectorization", "rollout_backend", "rollout_workers", "ray_address")  # where it runs, not how it learns


class CliError(Exception):
    """A usage problem: printed as ``error: ...`` with exit status 2."""


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise CliError(f"--set takes KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = _parse_value(value)
    return out


def _timesteps(text: str) -> int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of steps, got {text!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Train, evaluate, export and serve TRPO agents "
                                "(TensorFlow/Keras). Each command has its own --help.")
    from keras_trpo import __version__

    p.add_argument("--version", action="version", version=f"keras-trpo {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="{train,evaluate,export,serve,presets,tune}")
    t = sub.add_parser("train", help="train an agent: agent.keras, metrics.csv, learning_curve.png, summary.json",
                       description="Train an agent. OUT gets agent.keras (also the checkpoint), metrics.csv (one row "
                                   "per iteration), learning_curve.png and summary.json. Ctrl-C or SIGTERM stops at the "
                                   "end of the current iteration, saves, writes summary.json and exits 130 / 143; "
                                   "`--resume` continues a stopped or killed run.")
    t.add_argument("--env", default=None, help="gymnasium env id, e.g. CartPole-v1 or Hopper-v5 (with --resume: "
                                               "taken from the checkpoint)")
    t.add_argument("--timesteps", type=_timesteps, default=None,
                   help="total environment steps of the run (1e6 is fine); with --resume the same total again "
                        "(needed unless --config gives timesteps:)")
    t.add_argument("--config", default=None, metavar="FILE",
                   help="a hyperparameter file (YAML or JSON, e.g. `keras-trpo tune`'s best.yaml): its config: "
                        "settings replace the env's preset, --set overrides them; its env: and timesteps: are "
                        "the defaults of --env and --timesteps")
    t.add_argument("--seed", type=int, default=None, help="seed (default 0; with --resume: the run's)")
    t.add_argument("--out", default=None, help="run directory (default runs/ENV-sSEED)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in OUT from its last checkpoint up to --timesteps in total; metrics.csv "
                        "goes on from the checkpoint's iteration (without a checkpoint: start afresh)")
    t.add_argument("--overwrite", action="store_true",
                   help="start afresh even if OUT holds an unfinished run (a finished one is replaced anyway)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="override a TRPOConfig hyperparameter, e.g. --set max_kl=0.02 --set n_envs=4 "
                        "(`keras-trpo presets ENV` shows the env's preset and where each value comes from)")
    t.add_argument("--presets", choices=["keras-trpo", "zoo"], default="keras-trpo",
                   help="the env's default hyperparameters: keras-trpo (default: rl-baselines3-zoo's TRPO entry with "
                        "keras-trpo's own preset for the env on top, where one was adopted) or zoo (the zoo's entry "
                        "alone: sb3-contrib's hyperparameters); `keras-trpo presets ENV` shows both")
    t.add_argument("--action-masks", choices=["auto", "on", "off"], default=None,
                   help="invalid-action masking (Discrete, MultiDiscrete, MultiBinary actions): auto (default) masks "
                        "when the env gives masks (an action_masks() method, or info['action_mask']), on requires "
                        "them, off ignores them (the unmasked baseline)")
    t.add_argument("--vectorization", choices=["sync", "async"], default=None, help="vector env type")
    t.add_argument("--rollout-backend", choices=["inline", "process", "ray"], default=None,
                   help="where the environments run: in this process, in local worker processes, or on Ray actors "
                        "(the same results whichever; default: the env's preset)")
    t.add_argument("--rollout-workers", type=int, default=None, metavar="N",
                   help="workers the n_envs environments are split across (process and ray backends)")
    t.add_argument("--ray-address", default=None, metavar="ADDR",
                   help="Ray cluster to join ('auto' or host:port); default: start a local Ray")
    t.add_argument("--eval-episodes", type=int, default=10, help="deterministic evaluation episodes at the end")
    t.add_argument("--checkpoint-every", type=int, default=10, metavar="N",
                   help="save agent.keras every N iterations, so a killed run loses at most N (default 10; "
                        "0: only at the end)")
    t.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2],
                   help="0: the summary line only; 1: progress (a bar in a terminal, plain lines in a log); "
                        "2: one progress line per run, plus TensorFlow's own start-up messages")
    t.add_argument("--portable-numerics", action="store_true",
                   help="the same numbers on any x86-64 machine with AVX2: pins oneDNN's kernels to AVX2 and "
                        "TensorFlow to one thread (README: Reproducibility; costs speed on several cores)")
    e = sub.add_parser("evaluate", help="evaluate a saved agent (optionally writing a video of the first episode)")
    e.add_argument("model", help="path to agent.keras")
    e.add_argument("--env", default=None, help="env id (default: the one it was trained on)")
    e.add_argument("--episodes", type=int, default=10)
    e.add_argument("--seed", type=int, default=10_000, help="episode i resets with seed SEED + i (default 10000)")
    e.add_argument("--video", default=None, metavar="PATH.mp4|PATH.gif",
                   help="write the first episode, rendered with render_mode='rgb_array', to an MP4 or GIF "
                        "(needs imageio; MP4 also imageio-ffmpeg; headless MuJoCo uses MUJOCO_GL=egl)")
    e.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2],
                   help="2 also shows TensorFlow's start-up messages")
    for name, (_, text) in FORWARDED.items():
        sub.add_parser(name, help=text, add_help=False)
    pr = sub.add_parser("presets", help="list the rl-baselines3-zoo presets, or show one env's and where each value "
                                        "comes from")
    pr.add_argument("env", nargs="?", default=None, help="env id (default: the table of every zoo env)")
    pr.add_argument("--presets", choices=["keras-trpo", "zoo"], default="keras-trpo",
                    help="with ENV: the zoo's entry with keras-trpo's own preset on top (default), or the zoo's alone")
    pr.add_argument("--markdown", action="store_true",
                    help="print the table as Markdown, settings that differ from sb3-contrib's defaults only "
                         "(the README's)")
    from keras_trpo.tune.cli import add_tune_parser

    add_tune_parser(sub, _timesteps)
    return p


# ----------------------------------------------------------------------------------- train
def _run_dir(args) -> Path:
    if args.out:
        return Path(args.out)
    if not args.env:
        raise CliError("--out is needed to find the run to resume (or give --env and --seed for runs/ENV-sSEED)")
    return Path(f"runs/{args.env}-s{0 if args.seed is None else args.seed}")


def _start_agent(args: argparse.Namespace, out: Path, config: Optional[TRPOConfig]):
    """The agent to train, a fresh one with ``config`` (``_fresh_config``'s) or the run's checkpoint; and whether
    it was resumed."""
    import keras_trpo
    from keras_trpo import run_dir

    ckpt = out / run_dir.AGENT
    if args.resume and ckpt.exists():  # _check_run_request has compared the request with the checkpoint
        agent = keras_trpo.load(str(ckpt))
        where = {name: getattr(args, name) for name in ROLLOUT_FLAGS if getattr(args, name) is not None}
        if where:  # where the envs run may change between machines; how the agent learns may not
            agent.config = agent.config.replace(**where)
        run_dir.truncate_metrics(out / run_dir.METRICS, agent.iterations)
        return agent, True
    existing = run_dir.existing_run_files(out)
    if existing and not (args.resume or args.overwrite) and args.verbose:
        print(f"note: replacing the finished run in {out}", file=sys.stderr)
    if args.resume and args.verbose:
        print(f"no checkpoint in {out}: starting afresh", file=sys.stderr)
    for name in existing:  # a fresh run never mixes with an old one's files
        (out / name).unlink()
    return keras_trpo.TRPO(args.env, seed=0 if args.seed is None else args.seed, config=config), False


def _fresh_config(args: argparse.Namespace) -> TRPOConfig:
    """The TRPOConfig a fresh run of ``args`` trains with (``TRPO`` takes it as given), built without
    TensorFlow so that an unknown env or a bad ``--set`` is refused at once: the env's preset (or ``--presets
    zoo``'s, or the ``--config`` file's settings), then ``--set``, the rollout flags and ``--action-masks``."""
    from keras_trpo.config_file import agent_config
    from keras_trpo.envs import probe_spaces

    action_space = probe_spaces(args.env)[1]
    config = None
    if getattr(args, "config_file", None) is not None:
        from keras_trpo.config_file import config_from_settings

        config = config_from_settings(args.config_file.settings, args.env, presets=args.presets)
    elif args.presets != "keras-trpo":
        from keras_trpo.config import default_config

        config = default_config(args.env, action_space, presets=args.presets)
    overrides = {**_overrides(args.set),
                 **{name: getattr(args, name) for name in ROLLOUT_FLAGS if getattr(args, name) is not None}}
    if getattr(args, "action_masks", None) is not None:
        overrides["action_masks"] = args.action_masks
    return agent_config(config, args.env, args.env, action_space, overrides)


def _check_run_request(args: argparse.Namespace, out: Path) -> Optional[TRPOConfig]:
    """What ``train`` can refuse from its arguments and the run folder alone, before TensorFlow is imported
    (a second or more): with ``--resume`` of a checkpoint, settings, another env, seed or action-mask mode
    (read from the checkpoint's state); a missing ``--env``, an unfinished run, an env that cannot be made or
    settings the config refuses. Returns a fresh run's config (None when the checkpoint is resumed)."""
    from keras_trpo import run_dir
    from keras_trpo.agent_file import read_agent_state

    if args.resume and (out / run_dir.AGENT).exists():
        if getattr(args, "config", None):
            raise CliError("--config cannot be combined with --resume of a checkpoint: the run keeps its own "
                           "hyperparameters")
        if args.set:
            raise CliError("--set cannot be combined with --resume: the run's hyperparameters come from its "
                           "checkpoint (optimizer state included); start a new run to change them")
        from keras_trpo.config import TRPOConfig

        state = read_agent_state(out / run_dir.AGENT)
        masks, saved_masks = getattr(args, "action_masks", None), TRPOConfig.from_dict(state["config"]).action_masks
        if masks is not None and masks != saved_masks:
            raise CliError(f"--action-masks {masks} cannot change a resumed run's (its checkpoint has "
                           f"{saved_masks!r}); start a new run to change it")
        run_dir.check_same_run("env", args.env, state.get("env_id"))
        run_dir.check_same_run("seed", args.seed, int(state["seed"]))
        return None
    if not args.env:
        raise CliError(f"--env is needed: {out} has no checkpoint to resume" if args.resume else "--env is needed")
    existing = run_dir.existing_run_files(out)
    if existing and not (args.resume or args.overwrite) and not run_dir.is_finished(out):
        # killed or stopped: starting over would throw its progress away
        raise CliError(f"{out} holds an unfinished run ({', '.join(existing)}); pass --resume to continue it "
                       "or --overwrite to start afresh")
    return _fresh_config(args)


def train(args) -> tuple[dict, int]:
    """Train (or resume) a run; returns its summary and the exit status (0, or 128 + signal)."""
    from keras_trpo import run_dir
    from keras_trpo.quiet import quiet_tensorflow_import

    _apply_config_file(args)
    out = _run_dir(args)
    if args.checkpoint_every < 0:
        raise CliError("--checkpoint-every must be >= 0")
    if args.portable_numerics:  # first: making the env to check the request may import TensorFlow (a user's env)
        from keras_trpo.portable import use_portable_numerics

        use_portable_numerics()
    config = _check_run_request(args, out)
    quiet_tensorflow_import(args.verbose)
    from keras_trpo.callbacks import MetricsCSVLogger, PeriodicCheckpoint, StopWhen
    from keras_trpo.interrupt import GracefulStop
    from keras_trpo.plotting import plot_learning_curve
    from keras_trpo_serving.files import atomic_write_bytes

    if out.is_dir():
        run_dir.remove_stale_temp_files(out)
    agent, resumed = _start_agent(args, out, config)
    out.mkdir(parents=True, exist_ok=True)
    start_timesteps, start_iterations = agent.num_timesteps, agent.iterations
    if resumed and args.verbose:
        print(f"resuming {out} at iteration {agent.iterations}, {agent.num_timesteps} of {args.timesteps} steps",
              file=sys.stderr)
    callbacks = [MetricsCSVLogger(str(out / run_dir.METRICS), append=resumed)]
    if args.checkpoint_every:
        callbacks.append(PeriodicCheckpoint(str(out / run_dir.AGENT), args.checkpoint_every))
    start = time.perf_counter()
    with GracefulStop() as stop:
        callbacks.append(StopWhen(lambda: stop.requested))
        remaining = args.timesteps - agent.num_timesteps
        if remaining > 0:
            agent.fit(remaining, callbacks=callbacks, verbose=args.verbose)
        elif args.verbose:
            print(f"{out} already has {agent.num_timesteps} >= {args.timesteps} steps: nothing to train",
                  file=sys.stderr)
        wall = time.perf_counter() - start
        agent.save(str(out / run_dir.AGENT))
    metrics = run_dir.read_metrics(out / run_dir.METRICS)
    plot_learning_curve(metrics, str(out / run_dir.CURVE), title=f"TRPO {agent.env_id} seed {agent.seed}")
    summary = {
        "env": agent.env_id, "timesteps": agent.num_timesteps, "seed": agent.seed, "iterations": agent.iterations,
        "status": "interrupted" if stop.requested else "finished",
        "wall_s": round(wall, 2),
        "steps_per_s": round((agent.num_timesteps - start_timesteps) / wall, 1) if wall > 0 else None,
        "eval_mean": None, "eval_std": None,
        "rollout_s": round(float(sum(metrics.get("rollout_s", []))), 2),
        "update_s": round(float(sum(metrics.get("update_s", []))), 2),
    }
    if resumed:
        summary["resumed_from"] = {"timesteps": start_timesteps, "iterations": start_iterations}
    status = stop.exit_code
    if not stop.requested:  # a stop request wants the process to end now, not after evaluation
        try:
            mean, std, invalid = agent.evaluate(episodes=args.eval_episodes, seed=10_000, return_invalid_actions=True)
            summary.update(eval_mean=round(mean, 2), eval_std=round(std, 2))
            if invalid is not None:  # the env gives action masks: the actions they forbade (0 for a masked agent)
                summary["eval_invalid_actions"] = invalid
        except KeyboardInterrupt:  # the agent is saved; say so in the summary rather than lose it
            summary["status"], status = "interrupted", 130
    summary["config"] = agent.config.to_dict()
    atomic_write_bytes(out / run_dir.SUMMARY, (json.dumps(summary, indent=1) + "\n").encode())
    agent.close()
    return summary, status


def _apply_config_file(args) -> None:
    """``--config FILE``: read it (names checked), and take its env and timesteps where none were given."""
    args.config_file = None
    if getattr(args, "config", None):
        from keras_trpo.config_file import read_config_file

        args.config_file = read_config_file(args.config)
        args.env = args.env or args.config_file.env
        args.timesteps = args.timesteps or args.config_file.timesteps
    if args.timesteps is None:
        raise CliError("--timesteps is needed (or a --config file with timesteps:)")


# ----------------------------------------------------------------------------------- evaluate
def evaluate(args) -> dict:
    video_path = None
    if args.video:
        from keras_trpo_serving.video import check_video_path, headless_rendering_defaults

        video_path = check_video_path(args.video)
        headless_rendering_defaults()  # before MuJoCo is imported
    from keras_trpo.agent_file import read_agent_state
    from keras_trpo.quiet import quiet_tensorflow_import

    if args.episodes <= 0:
        raise CliError("--episodes must be positive")
    read_agent_state(args.model)  # a missing or foreign file is named before TensorFlow's import
    quiet_tensorflow_import(args.verbose)
    import keras_trpo

    agent = keras_trpo.load(args.model)
    env_id = args.env or agent.env_id
    result = {"env": env_id, "episodes": args.episodes, "seed": args.seed}
    invalid = None
    if video_path is None:
        mean, std, invalid = agent.evaluate(episodes=args.episodes, seed=args.seed, env=args.env,
                                            return_invalid_actions=True)
    else:
        from keras_trpo_serving.video import record_first_episode

        # isolate: rendered by a TensorFlow-free subprocess replaying the episode (Mesa + TF crash together)
        (mean, std), video = record_first_episode(
            env_id, str(video_path), lambda env: agent.evaluate(episodes=args.episodes, seed=args.seed, env=env),
            isolate=True, **agent.env_kwargs)
        result["video"] = video
    result.update(eval_mean=round(mean, 2), eval_std=round(std, 2))
    if invalid is not None:  # the env gives action masks: the actions they forbade (0 for a masked agent)
        result["invalid_actions"] = invalid
    return result


# ----------------------------------------------------------------------------------- presets
def presets(args) -> str:
    from keras_trpo.presets import KERAS_TRPO_PRESETS, ZOO_TRPO, own_preset, preset

    if args.env:
        from keras_trpo.config import explain_config

        p = preset(args.env)
        try:
            from keras_trpo.envs import action_space_of

            action_space = action_space_of(args.env)
        except Exception:  # noqa: BLE001 - not registered here (PyBullet), missing extra: show the zoo's numbers
            action_space = None
        lines = [f"{args.env}: {p.source}", f"recommended --timesteps {p.n_timesteps}"]
        own = own_preset(args.env, args.presets)
        if own is not None:
            lines.insert(1, f"keras-trpo preset on top: {', '.join(own.settings)} (study {own.study} trial {own.trial}; "
                            f"ten seeds in {own.seeds}; {own.summary}); `--presets zoo` leaves it out")
        lines += [f"  {name} = {value!r}  ({where})"
                  for name, value, where in explain_config(args.env, action_space, args.presets)]
        lines += [f"  not used: {key} = {why}" for key, why in p.dropped.items()]
        if action_space is None:
            lines.append("  (the env could not be made here, so Box actions' per-dimension scaling is not applied)")
        return "\n".join(lines)
    from keras_trpo.config import TRPOConfig

    defaults, rows = TRPOConfig(), []
    for env_id in ZOO_TRPO:
        p = preset(env_id)
        shown = {k: v for k, v in p.settings.items() if not args.markdown or v != getattr(defaults, k)}
        settings = ", ".join(f"{k}={v}" for k, v in shown.items())
        dropped = ", ".join(p.dropped) or "–"
        rows.append((env_id, p.status or "–", f"{p.n_timesteps:,}", settings, dropped))
    own = [(env_id, ", ".join(f"{k}={v}" for k, v in o.settings.items()), f"{o.study} trial {o.trial}; {o.summary}")
           for env_id, o in KERAS_TRPO_PRESETS.items()]
    if args.markdown:
        head = ("| zoo env | zoo status | budget | settings that differ from sb3-contrib's defaults (keras_trpo names) "
                "| not used |\n|---|---|--:|---|---|")
        own_head = "| env | keras-trpo preset (on top of the zoo's entry) | found by, adopted by |\n|---|---|---|"
        return (head + "\n" + "\n".join("| " + " | ".join(r) + " |" for r in rows) + "\n\n" + own_head + "\n"
                + "\n".join("| " + " | ".join(r) + " |" for r in own))
    return ("\n".join(f"{r[0]:<38} {r[1]:<12} {r[2]:>11}  {r[3]}" + (f"  [not used: {r[4]}]" if r[4] != "–" else "")
                      for r in rows)
            + "\n\nkeras-trpo's own presets, on top of the zoo's entry (`--presets zoo` leaves them out):\n"
            + "\n".join(f"{r[0]:<38} {r[1]}\n{'':<38} ({r[2]})" for r in own))


# ----------------------------------------------------------------------------------- entry point
def _forward(command: str, argv: Sequence[str]) -> int:
    import importlib

    module_name = FORWARDED[command][0]  # export's main imports TensorFlow, quietly, once its input is checked
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        print(f"error: `{PROG} {command}` needs {module_name.split('.')[0]} ({e}); "
              "install keras-trpo with pip, or run from the repository", file=sys.stderr)
        return 2
    return module.main(list(argv))


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in FORWARDED:
        return _forward(argv[0], argv[1:])
    if argv and argv[0] == "tune-worker":  # a process of `tune --jobs`, not a user command
        from keras_trpo.tune.driver import run_worker_cli

        return run_worker_cli(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            summary, status = train(args)
            print(json.dumps({k: v for k, v in summary.items() if k != "config"}))
            return status
        if args.command == "evaluate":
            print(json.dumps(evaluate(args)))
            return 0
        if args.command == "tune":
            from keras_trpo.tune.cli import run_tune

            return run_tune(args, _overrides(args.set))
        print(presets(args))
        return 0
    except CliError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the library's own errors, named, without a trace from deep inside
        from keras_trpo.run_dir import RunDirError

        known = (RunDirError,) + _library_errors()
        if isinstance(e, known):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise


def _library_errors() -> tuple:
    errors = []
    for module, name in (("keras_trpo.config", "ConfigError"), ("keras_trpo.agent_file", "AgentFileError"),
                         ("keras_trpo.spaces", "UnsupportedSpaceError"), ("keras_trpo_serving.video", "VideoError"),
                         ("keras_trpo.tune.study", "TuneError"), ("keras_trpo.envs", "EnvMakeError"),
                         ("gymnasium.error", "Error")):  # an unknown env id, a missing extra (box2d, mujoco)
        mod = sys.modules.get(module)
        if mod is not None:
            errors.append(getattr(mod, name))
    return tuple(errors)
