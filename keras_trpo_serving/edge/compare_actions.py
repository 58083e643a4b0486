"""Compare a policy's actions on this machine with reference actions computed on another one.

    python -m keras_trpo_serving.edge.compare_actions --model cartpole.onnx --reference cartpole.npz

The reference is an ``.npz`` written by ``tests/make_serving_fixtures.py`` on the training (x86)
machine: ``obs`` [N, *obs_shape], the TF agent's deterministic ``action`` [N, *action_shape] and
its distribution parameters (``logits``, or ``mean`` and ``log_std``). This runs the same
observations through ``OnnxPolicy`` here, prints one JSON line (machine, onnxruntime version,
largest differences) and exits 1 if an action differs by more than ``--atol`` or a parameter by
more than ``atol + rtol * |reference|`` (the tolerances serving's own tests use), 2 on bad input.
Needs numpy and onnxruntime only, so it runs on the device itself too.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from typing import Any, Optional, Sequence

import numpy as np

DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-5
PARAM_NAMES = ("logits", "mean", "log_std")


def load_reference(path: str) -> dict[str, np.ndarray]:
    """The arrays of a reference ``.npz``; raises ValueError naming a missing ``obs``/``action``."""
    with np.load(path, allow_pickle=False) as z:
        ref = {k: z[k] for k in z.files}
    missing = [k for k in ("obs", "action") if k not in ref]
    if missing:
        raise ValueError(f"{path} has no {' or '.join(missing)} array (found: {sorted(ref)}); "
                         "write it with tests/make_serving_fixtures.py")
    if len(ref["obs"]) != len(ref["action"]):
        raise ValueError(f"{path}: {len(ref['obs'])} observations but {len(ref['action'])} actions")
    return ref


def max_abs_diff(got: np.ndarray, want: np.ndarray) -> float:
    """Largest |got - want| over all elements, in float64 (0.0 for empty arrays).

    Shapes must match exactly: broadcasting would hide a wrong batch or action shape."""
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape:
        raise ValueError(f"shape {got.shape} here, {want.shape} in the reference")
    if got.size == 0:
        return 0.0
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))))


def compare(policy: Any, reference: dict[str, np.ndarray], atol: float = DEFAULT_ATOL,
            rtol: float = DEFAULT_RTOL) -> dict:
    """Run ``reference["obs"]`` [N, ...] through ``policy`` and measure it against the reference.

    Returns ``{"observations", "max_abs_action_diff", "actions_differing", "actions_ok",
    "params": {name: {"max_abs_diff", "ok"}}, "ok"}``: actions within ``atol``; each
    distribution parameter the reference holds within ``atol + rtol * |reference|``.
    """
    obs = reference["obs"]
    actions = np.asarray(policy.act(obs, deterministic=True))
    want = reference["action"]
    action_diff = max_abs_diff(actions, want)
    diff = np.abs(actions.astype(np.float64) - want.astype(np.float64))
    per_obs = diff.reshape(len(diff), int(np.prod(diff.shape[1:])))  # not -1: N may be 0
    differing = int(np.count_nonzero(per_obs.max(axis=1, initial=0.0) > atol))
    params = {}
    got_params = policy.distribution_params(obs)
    for name in PARAM_NAMES:
        if name in reference and name in got_params:
            value, ref = np.asarray(got_params[name]), reference[name]
            diff = max_abs_diff(value, ref)
            params[name] = {"max_abs_diff": diff, "ok": bool(np.allclose(value, ref, atol=atol, rtol=rtol))}
    actions_ok = action_diff <= atol
    return {"observations": int(len(obs)), "max_abs_action_diff": action_diff, "actions_differing": differing,
            "actions_ok": actions_ok, "params": params,
            "ok": actions_ok and all(p["ok"] for p in params.values())}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m keras_trpo_serving.edge.compare_actions",
                                description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="the exported .onnx (or .ort) policy")
    p.add_argument("--reference", required=True, help=".npz with obs, action and the distribution parameters")
    p.add_argument("--atol", type=float, default=DEFAULT_ATOL, help=f"default {DEFAULT_ATOL}")
    p.add_argument("--rtol", type=float, default=DEFAULT_RTOL,
                   help=f"for distribution parameters only (default {DEFAULT_RTOL})")
    args = p.parse_args(argv)

    import onnxruntime as ort

    from keras_trpo_serving import OnnxPolicy
    from keras_trpo_serving.errors import ServingError

    try:
        reference = load_reference(args.reference)
        result = compare(OnnxPolicy(args.model), reference, args.atol, args.rtol)
    except (OSError, ValueError, ServingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = {"machine": platform.machine(), "python": platform.python_version(),
              "onnxruntime": ort.__version__, "numpy": np.__version__, "atol": args.atol, "rtol": args.rtol,
              **result}
    print(json.dumps(report))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
