"""Agent -> ORT-format model (what onnxruntime's minimal and mobile builds load), with the
operator config a reduced build is made from, verified by onnxruntime loading the .ort file.

The conversion is onnxruntime's own (``onnxruntime.tools.convert_onnx_models_to_ort``), run on
the ONNX file ``to_onnx`` writes: graph optimisations are applied once, here, and saved
("Fixed" style at level "all", without the x86-only NCHWc layout, so the file runs on ARM too).
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


from keras_trpo.export.description import describe
from keras_trpo.export.errors import ExportError, ExportVerificationError
from keras_trpo.export.observations import Inputs
from keras_trpo.export.onnx_export import has_mask_input, has_noise_input, onnx_runner, write_onnx
from keras_trpo.export.opsets import DEFAULT_OPSET
from keras_trpo.export.report import ExportReport
from keras_trpo.export.targets import check_target
from keras_trpo.export.verify import verify_file

CONFIG_SUFFIX = ".required_operators.config"  # the name onnxruntime's converter gives it


@dataclass
class OrtExportReport(ExportReport):
    operators_config_path: Optional[str] = None  # for a reduced build: --include_ops_by_config
    ort_format_version: Optional[str] = None  # onnxruntime >= 1.16 loads v6
    onnxruntime_version: Optional[str] = None  # the converter's


def operators_config_path(path: str | os.PathLike) -> Path:
    """``policy.ort`` -> ``policy.required_operators.config``."""
    path = Path(path)
    return path.with_name(path.stem + CONFIG_SUFFIX)


def ort_format_version(path: str | os.PathLike) -> str:
    """The ORT format version stored in a .ort file (``"6"`` from onnxruntime 1.16 on)."""
    from onnxruntime.tools.ort_format_model.ort_flatbuffers_py.fbs import InferenceSession

    data = Path(path).read_bytes()
    version = InferenceSession.InferenceSession.GetRootAsInferenceSession(data, 0).OrtVersion()
    return version.decode() if isinstance(version, bytes) else str(version)


def _convert(onnx_path: Path, out_dir: Path) -> tuple[Path, Path]:
    """onnxruntime's converter on one file, its progress prints and log lines kept out of our output."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    logger = logging.getLogger("ort_format_model.utils")
    level = logger.level
    logger.setLevel(logging.WARNING)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            convert_onnx_models_to_ort(onnx_path, output_dir=out_dir, optimization_styles=[OptimizationStyle.Fixed])
    except Exception as e:  # noqa: BLE001 - the converter raises whatever onnxruntime raises
        tail = printed.getvalue().strip().splitlines()[-3:]
        raise ExportError(f"onnxruntime could not convert the policy to ORT format: {e} {' '.join(tail)}") from e
    finally:
        logger.setLevel(level)
    ort_file = out_dir / (onnx_path.stem + ".ort")
    config = out_dir / (onnx_path.stem + CONFIG_SUFFIX)
    if not ort_file.exists() or not config.exists():
        raise ExportError(f"onnxruntime's converter wrote {sorted(p.name for p in out_dir.iterdir())}, "
                          f"not {ort_file.name} and {config.name}")
    return ort_file, config


def _check_metadata(path: Path, expected: dict[str, str]) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.add_session_config_entry("session.load_model_format", "ORT")
    got = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).get_modelmeta()
    lost = {k: v for k, v in expected.items() if got.custom_metadata_map.get(k) != v}
    if lost:
        raise ExportVerificationError(f"ORT-format file {path} lost or changed metadata {sorted(lost)}")


def verify_ort(agent, path: str | os.PathLike, observations: Optional[Inputs] = None) -> float:
    """Run a .ort file with onnxruntime and compare it with ``agent``, like ``verify_onnx``; returns
    the worst float difference or raises ``ExportVerificationError``."""
    return verify_file(describe(agent, has_mask_input(path)), onnx_runner(path), f"ORT-format {path}",
                       stochastic=has_noise_input(path), inputs=observations).worst_difference


def to_ort(agent, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET, verify: bool = True,
           verify_observations: Optional[Inputs] = None, stochastic: bool = False,
           action_mask: Optional[bool] = None) -> OrtExportReport:
    """Write the agent's policy as an ORT-format model plus ``<name>.required_operators.config``.

    The graph is the ONNX export's (input ``obs``, outputs ``action`` and the distribution
    parameters, metadata included), optimised and serialised by onnxruntime. With ``verify``
    (default) the .ort file is loaded by onnxruntime, its metadata compared with the export's,
    and its outputs with the agent's on the same observations as ``to_onnx``, before it
    replaces anything at ``path``: ``ExportVerificationError`` if they differ.
    ``stochastic=True``: the ``noise`` input and ``sampled_action`` output, checked as ``to_onnx`` does.
    Dict-observation and recurrent policies as ``to_onnx`` (one input per key; ``state_in`` /
    ``state_out``, verified over episodes). ``action_mask``: the ``action_mask`` input as ``to_onnx``
    (default: a masked agent's files have it).
    """
    import onnxruntime as ort

    desc = describe(agent, action_mask)
    path = check_target(path, ".ort", "ORT-format")
    config_target = operators_config_path(path)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as d:
        onnx_path = Path(d) / f"{path.stem}.onnx"
        meta = write_onnx(desc, onnx_path, opset, stochastic)
        ort_file, config = _convert(onnx_path, Path(d) / "out")
        report = OrtExportReport(str(path), ort_file.stat().st_size, 0.0, opset=opset, metadata=meta,
                                 operators_config_path=str(config_target),
                                 ort_format_version=ort_format_version(ort_file),
                                 onnxruntime_version=ort.__version__, stochastic=stochastic)
        if verify:
            _check_metadata(ort_file, meta)
            verify_file(desc, onnx_runner(ort_file), f"ORT-format {path}", stochastic=stochastic,
                        inputs=verify_observations).fill(report)
        # The config names the models it came from; name the final file, not the temporary one.
        config.write_text(config.read_text().replace(str(ort_file), str(path.resolve())))
        os.replace(config, config_target)
        os.replace(ort_file, path)
    report.seconds = time.perf_counter() - start
    return report
