"""``python -m export AGENT.keras --onnx X.onnx --saved-model DIR``."""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from export.onnx_export import DEFAULT_OPSET


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m export",
        description="Export a trained keras_trpo agent (agent.keras) to ONNX and/or a TensorFlow SavedModel. "
        "Each file holds the whole policy (observation normalisation included): input 'obs' float32 "
        "[batch, *obs_shape]; outputs 'action' (deterministic, in the env's dtype) and the distribution "
        "parameters ('logits', or 'mean' and 'log_std'). Every file is verified against the agent after "
        "it is written unless --no-verify is given.",
    )
    p.add_argument("agent", help="path to an agent file written by agent.save() / `python -m keras_trpo train`")
    p.add_argument("--onnx", metavar="PATH.onnx", help="write an ONNX model here")
    p.add_argument("--saved-model", metavar="DIR", help="write a SavedModel directory here (serving_default signature)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset, 13-18 (default {DEFAULT_OPSET}: runs on onnxruntime >= 1.14)")
    p.add_argument("--quantize", choices=["int8"], default=None,
                   help="also write PATH.int8.onnx with onnxruntime dynamic int8 quantisation and report its "
                        "size and the largest action change it causes")
    p.add_argument("--no-verify", action="store_true",
                   help="skip running the written files against the agent (on by default: fails if any "
                        "discrete action differs or a continuous output differs by more than 1e-5)")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.onnx and not args.saved_model:
        parser.error("nothing to do: give --onnx PATH.onnx and/or --saved-model DIR")
    import keras_trpo
    from export import ExportError, to_onnx, to_saved_model

    try:
        agent = keras_trpo.load(args.agent)
        reports = []
        if args.onnx:
            reports.append(to_onnx(agent, args.onnx, opset=args.opset, verify=not args.no_verify, quantize=args.quantize))
        if args.saved_model:
            reports.append(to_saved_model(agent, args.saved_model, verify=not args.no_verify))
    except (ExportError, keras_trpo.AgentFileError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for r in reports:
        d = dataclasses.asdict(r)
        d.pop("metadata")
        print(json.dumps({k: v for k, v in d.items() if v is not None}))
    return 0
