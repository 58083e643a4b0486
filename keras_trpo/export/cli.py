"""``python -m keras_trpo.export AGENT.keras --onnx X.onnx --saved-model DIR``."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from keras_trpo.agent_file import AgentFileError, read_agent_state
from keras_trpo.export.errors import ExportError
from keras_trpo.export.opsets import DEFAULT_OPSET, check_opset


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m keras_trpo.export",
        description="Export a trained keras_trpo agent (agent.keras) to ONNX, ORT, .tflite, C99 and/or a TensorFlow "
        "SavedModel. "
        "Each file holds the whole policy (observation normalisation included): input 'obs' float32 "
        "[batch, *obs_shape]; outputs 'action' (deterministic, in the env's dtype) and the distribution "
        "parameters ('logits', or 'mean' and 'log_std'). A Dict-observation policy takes one input per key "
        "instead of 'obs'; a recurrent policy also takes 'state_in' and returns 'state_out' (zeros at an "
        "episode start; every format, --c included: there NAME_act takes state_in and writes state_out). An agent trained "
        "with action masks also takes 'action_mask' float32 [batch, W] after the observations (1 valid, 0 invalid; "
        "--action-mask). Every file is verified against "
        "the agent after it is written (a recurrent one over 10 episodes) unless --no-verify is given.",
    )
    p.add_argument("agent", help="path to an agent file written by agent.save() / `python -m keras_trpo train`")
    p.add_argument("--onnx", metavar="PATH.onnx", help="write an ONNX model here")
    p.add_argument("--saved-model", metavar="DIR", help="write a SavedModel directory here (serving_default signature)")
    p.add_argument("--tflite", metavar="PATH.tflite",
                   help="write a LiteRT flatbuffer here (for ai-edge-litert's interpreter; serving runs it), "
                        "metadata inside")
    p.add_argument("--ort", metavar="PATH.ort",
                   help="write an ORT-format model here (for onnxruntime's minimal and mobile builds) plus "
                        "PATH.required_operators.config, the operator list such a build is made from")
    p.add_argument("--c", metavar="DIR", dest="c_dir",
                   help="write the policy as C99 into DIR: NAME.h, NAME.c, NAME_weights.h (no allocation, libm "
                        "only; for microcontrollers and firmware), built with $CC or cc and verified")
    p.add_argument("--all", metavar="DIR", dest="all_dir",
                   help="write every format into DIR (created if missing), each verified: policy.onnx, policy.ort, "
                        "policy.tflite, saved_model/, c/ (C99), and observations.npz: the observations the files "
                        "were verified on ('obs', and 'action_mask' for a masked policy; a feed-forward policy's "
                        "input for keras_trpo_serving/edge/check_cortex_m4.sh --obs)")
    p.add_argument("--action-mask", choices=["auto", "on", "off"], default="auto",
                   help="the input 'action_mask' float32 [batch, W] after the observations (1 valid, 0 invalid; "
                        "--c: an action_mask argument after the observation): 'auto' (default) if the agent was "
                        "trained with action masks, 'on' also for one trained without, 'off' leaves it out (every "
                        "action valid)")
    p.add_argument("--c-name", default="policy", metavar="NAME",
                   help="prefix of the C files, functions, types and macros (default: policy)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset, 13-18 (default {DEFAULT_OPSET}: runs on onnxruntime >= 1.14)")
    p.add_argument("--quantize", choices=["dynamic-int8", "static-int8", "int8"], default=None,
                   help="with --onnx, also write PATH.dynamic-int8.onnx (weights int8, activations quantised per "
                        "call) or PATH.static-int8.onnx (activations calibrated on 1,000 rollout observations) "
                        "and report its size and the largest action change it causes (with --tflite likewise "
                        "PATH.dynamic-int8.tflite or PATH.static-int8.tflite); 'int8' is dynamic-int8. "
                        "See keras_trpo/export/README.md for which to use (usually none: float32 is faster for small MLPs)")
    p.add_argument("--stochastic", action="store_true",
                   help="with --onnx, --ort and --tflite: add the input 'noise' float32 [batch, width] (uniforms in "
                        "[0, 1) for Discrete, MultiDiscrete and MultiBinary actions, standard normals for Box) and the "
                        "output 'sampled_action', the agent's own sample for that noise, so a device can sample and "
                        "replay (keras_trpo/export/README.md). The C export always has NAME_sample_noise")
    p.add_argument("--no-verify", action="store_true",
                   help="skip running the written files against the agent (on by default: fails if any "
                        "discrete action differs or a float output differs by more than 1e-5 + 1e-5 x the largest value of that "
                        "output for that observation)")
    return p


def save_observations(agent, action_mask, path: str) -> None:
    """``path`` (.npz): what a file of ``agent`` is verified on (keras_trpo/export/observations.py's
    ``default_inputs``) as ``obs`` (packed, ``[N, *obs_shape]``; ``[T, L, ...]`` with ``episode_start`` for
    a recurrent policy) and, for a masked policy, ``action_mask`` (0/1 float32, one row per observation)."""
    import numpy as np

    from keras_trpo.export.description import describe
    from keras_trpo.export.observations import Episodes, MaskedObservations, default_inputs

    desc = describe(agent, action_mask)
    inputs = default_inputs(desc)
    if isinstance(inputs, Episodes):
        arrays = {"obs": inputs.observations, "episode_start": inputs.starts}
        if inputs.masks is not None:
            arrays["action_mask"] = inputs.masks.astype(np.float32)
    elif isinstance(inputs, MaskedObservations):
        arrays = {"obs": inputs.observations, "action_mask": inputs.masks.astype(np.float32)}
    else:
        arrays = {"obs": np.asarray(inputs, np.float32)}
    np.savez(path, **arrays)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.all_dir:
        if args.onnx or args.saved_model or args.ort or args.tflite or args.c_dir:
            parser.error("--all writes every format: give it alone, or the formats one by one")
        args.onnx, args.ort, args.tflite = (os.path.join(args.all_dir, f"policy.{x}") for x in ("onnx", "ort", "tflite"))
        args.saved_model, args.c_dir = os.path.join(args.all_dir, "saved_model"), os.path.join(args.all_dir, "c")
    if not args.onnx and not args.saved_model and not args.ort and not args.tflite and not args.c_dir:
        parser.error("nothing to do: give --onnx PATH.onnx, --ort PATH.ort, --tflite PATH.tflite, --c DIR, "
                     "--saved-model DIR and/or --all DIR")
    if args.quantize and not (args.onnx or args.tflite):
        parser.error("--quantize needs --onnx PATH.onnx or --tflite PATH.tflite (the quantised copy is written "
                     "next to it)")
    if args.stochastic and args.quantize:
        parser.error("--stochastic and --quantize cannot be combined: export the quantised copy without --stochastic")
    if args.stochastic and not (args.onnx or args.ort or args.tflite):
        parser.error("--stochastic needs --onnx, --ort or --tflite (the C export always has NAME_sample_noise)")
    mask = {"auto": None, "on": True, "off": False}[args.action_mask]
    try:
        if args.onnx or args.ort:  # what can be refused without TensorFlow (its import takes seconds) first
            check_opset(args.opset)
        read_agent_state(args.agent)
        from keras_trpo.quiet import quiet_tensorflow_import

        quiet_tensorflow_import(0)  # before anything imports TensorFlow: keep its C++ start-up lines off stderr
        import keras_trpo
        from keras_trpo.export import to_c, to_onnx, to_ort, to_saved_model, to_tflite

        agent = keras_trpo.load(args.agent)
        if args.all_dir:
            os.makedirs(args.all_dir, exist_ok=True)
        reports = []
        if args.onnx:
            reports.append(to_onnx(agent, args.onnx, opset=args.opset, verify=not args.no_verify, quantize=args.quantize,
                                   stochastic=args.stochastic, action_mask=mask))
        if args.tflite:
            reports.append(to_tflite(agent, args.tflite, verify=not args.no_verify, quantize=args.quantize,
                                     stochastic=args.stochastic, action_mask=mask))
        if args.ort:
            reports.append(to_ort(agent, args.ort, opset=args.opset, verify=not args.no_verify,
                                  stochastic=args.stochastic, action_mask=mask))
        if args.saved_model:
            reports.append(to_saved_model(agent, args.saved_model, verify=not args.no_verify, action_mask=mask))
        if args.c_dir:
            reports.append(to_c(agent, args.c_dir, name=args.c_name, verify=not args.no_verify, action_mask=mask))
        if args.all_dir:
            save_observations(agent, mask, os.path.join(args.all_dir, "observations.npz"))
    except (ExportError, AgentFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in reports:
        d = dataclasses.asdict(r)
        d.pop("metadata")
        print(json.dumps({k: v for k, v in d.items() if v is not None}))
    return 0
