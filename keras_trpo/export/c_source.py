"""``PolicyPlan`` -> the C export's three files: ``NAME.h`` (sizes, metadata, functions),
``NAME.c`` (the code) and ``NAME_weights.h`` (the numbers, included by ``NAME.c`` only).

The code is C written once, in real files a compiler and a linter read on their own
(``keras_trpo/export/c_template.py``): ``keras_trpo/export/c/policy.c`` (the runtime: affine kernel,
activations, LSTM/GRU step, Dict observation packing, PRNG and the four families' samplers) and
``c/policy.h`` (the API). Rendering

1. resolves their ``#if KT_...`` conditions for the plan (``config_flags``: the policy's inputs,
   cell, activations and action family), so the written files hold only the code this policy runs;
2. replaces the templates' name ``policy`` / ``POLICY`` by the export's;
3. writes the data: the public sizes, metadata, action type and Dict struct into ``NAME.h`` (in
   place of ``#include "policy_config.h"``), and ``NAME_weights.h``: every array as
   ``static const``, the plan's input and layer tables, the private sizes, the metadata JSON.

PRNG: xoshiro128** 1.1 (Blackman and Vigna, 2018: 128-bit state, four uint32_t, 32-bit
operations only, so it is cheap on a Cortex-M), seeded by SplitMix64 from a uint64_t. Uniforms
are ``((next >> 9) + 0.5) / 2^23``, never 0 or 1. Gaussians come from Box-Muller (both values of
each pair used), so they are bounded at about 5.8 standard deviations. ``NAME_sample`` fills a
noise vector from the PRNG and calls ``NAME_sample_noise``, which computes keras_trpo/export/noise.py's
contract, like every other format.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Optional

import numpy as np

from keras_trpo.export.c_template import TEMPLATE_NAME, rename, resolve, template
from keras_trpo.export.errors import ExportError
from keras_trpo.plan.activations import ACTIVATIONS
from keras_trpo.plan.description import ObsInput, PolicyPlan
from keras_trpo_serving.sampling import SamplingRule

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ACTION_TYPES = {"categorical": "int32_t", "multi_categorical": "int32_t", "bernoulli": "int8_t",
                "diag_gaussian": "float"}
CONFIG_INCLUDE = '#include "policy_config.h"\n'  # c/policy.h's line that the public data replaces


@dataclass(frozen=True, eq=False)
class CAction:
    """The action as the C export stores it: ``size`` elements of ``ACTION_TYPES[family]``; the
    categoricals' ``nvec [m]`` and ``starts [m]`` (int64, empty otherwise); a Gaussian's Box bounds
    ``low [d]``, ``high [d]`` float32 (+-inf where unbounded)."""

    family: str
    size: int
    nvec: np.ndarray
    starts: np.ndarray
    low: Optional[np.ndarray] = None
    high: Optional[np.ndarray] = None


def c_action(rule: SamplingRule) -> CAction:
    """The action family's sampling rule as the C export's arrays."""
    family, none = rule.distribution, np.zeros(0, np.int64)
    if family == "categorical":
        return CAction(family, 1, np.array([rule.n], np.int64), np.array([rule.start], np.int64))
    if family == "multi_categorical":
        starts = np.broadcast_to(np.asarray(rule.start, np.int64), rule.nvec.shape).copy()
        return CAction(family, len(rule.nvec), rule.nvec.astype(np.int64), starts)
    if family == "diag_gaussian":
        return CAction(family, rule.dim, none, none, np.asarray(rule.low, np.float32), np.asarray(rule.high, np.float32))
    return CAction(family, rule.noise_width, none, none)


def config_flags(p: PolicyPlan, masked: bool = False) -> dict[str, bool]:
    """The templates' ``KT_...`` conditions for this plan (``masked``: its functions take the action
    mask): every one, true or false."""
    family, core = p.action.distribution, p.recurrent
    flags = {
        "KT_DICT_OBS": p.dict_obs,
        "KT_RECURRENT": core is not None,
        "KT_LSTM": core is not None and core.cell == "lstm",
        "KT_GRU": core is not None and core.cell == "gru",
        "KT_CATEGORICAL": family in ("categorical", "multi_categorical"),
        "KT_MULTI_CATEGORICAL": family == "multi_categorical",
        "KT_BERNOULLI": family == "bernoulli",
        "KT_GAUSSIAN": family == "diag_gaussian",
        "KT_MASKED": masked,
    }
    used = {d.activation for d in p.layers + (p.head,)}
    for name in ACTIVATIONS:
        if name != "linear":
            flags[f"KT_USES_{name.upper()}"] = name in used
    return flags


def c_float(v: float) -> str:
    """A float32 value as a C literal that reads back to the same float (9 significant digits)."""
    v = float(np.float32(v))
    if np.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    text = f"{v:.9g}"
    if not any(c in text for c in ".en"):
        text += ".0"
    return text + "f"


def c_string(text: str) -> str:
    """A C string literal (ASCII JSON: only quotes and backslashes need escaping)."""
    return '"' + text.encode("ascii", "backslashreplace").decode().replace("\\", "\\\\").replace('"', '\\"') + '"'


def _array(ctype: str, name: str, values: np.ndarray, fmt, comment: str) -> str:
    items = [fmt(v) for v in np.asarray(values).reshape(-1)]
    lines = [", ".join(items[i: i + 8]) for i in range(0, len(items), 8)] or ["0"]
    body = ",\n    ".join(lines)
    return f"// {comment}\nstatic const {ctype} {name}[{max(len(items), 1)}] = {{\n    {body}\n}};\n"


def _floats(name: str, values: np.ndarray, comment: str) -> str:
    return _array("float", name, values, c_float, comment)


def _ints(name: str, values: np.ndarray, comment: str) -> str:
    return _array("int32_t", name, values, lambda v: str(int(v)), comment)


def max_width(p: PolicyPlan) -> int:
    """Floats of each of ``forward``'s two buffers: the widest of the observation, its features,
    the core's output and every layer's."""
    core = [p.recurrent.units] if p.recurrent is not None else []
    return max([p.obs_size, p.features] + core + [d.n_out for d in p.layers] + [p.head.n_out])


def stack_floats(p: PolicyPlan) -> int:
    """Floats on the stack of the deepest call (NAME_sample): two buffers of the widest layer,
    params and noise, a recurrent core's gates and new state, a Dict's packed observation."""
    core = 0
    if p.recurrent is not None:
        r = p.recurrent
        core = r.state_size + (r.gates * r.units if r.cell == "lstm" else 2 * r.gates * r.units)
    return 2 * max_width(p) + p.params_size + p.noise_size + core + (p.obs_size if p.dict_obs else 0)


def _normalizer_arrays(p: PolicyPlan, name: str, inp: ObsInput) -> tuple[str, str]:
    """The names of an input's normaliser arrays (mean, 1 / std)."""
    stem = f"{name}_obs_{inp.key}" if p.dict_obs else f"{name}_obs"
    return f"{stem}_mean", f"{stem}_inv_std"


def config_header(p: PolicyPlan, name: str, metadata: dict[str, str], masked: bool = False) -> str:
    """The public data of ``NAME.h``: sizes, metadata, the Dict observation struct, the action type
    (``masked``: and the action mask's size and layout)."""
    up = name.upper()
    lines = ["// Sizes", f"#define {up}_OBS_SIZE {p.obs_size}"]
    if p.dict_obs:
        for i in p.inputs:
            lines.append(f"#define {up}_OBS_{i.key.upper()}_SIZE {i.size}" +
                         (f"  // a Discrete({i.one_hot}) index" if i.one_hot else ""))
            if i.one_hot:
                lines.append(f"#define {up}_OBS_{i.key.upper()}_N {i.one_hot}")
    r = p.recurrent
    if r is not None:
        layout = f"[h, c]: h then c, {r.units} floats each" if r.cell == "lstm" else f"h, {r.units} floats"
        lines.append(f"#define {up}_STATE_SIZE {p.state_size}  // the {r.cell.upper()}'s state {layout}")
    action = c_action(p.action)
    if masked:
        lines.append(f"#define {up}_MASK_SIZE {p.action.mask_width}  // the action_mask: {p.action.mask_layout}")
    lines += [f"#define {up}_ACTION_SIZE {action.size}",
              f"#define {up}_PARAMS_SIZE {p.params_size}",
              f"#define {up}_NOISE_SIZE {p.noise_size}",
              f"#define {up}_STACK_FLOATS {stack_floats(p)}"]
    if action.family == "categorical":
        lines += [f"#define {up}_ACTION_N {int(action.nvec[0])}", f"#define {up}_ACTION_START {int(action.starts[0])}"]
    if action.family == "multi_categorical":
        lines.append(f"#define {up}_ACTION_CATEGORICALS {len(action.nvec)}")
    meta = metadata
    lines += [
        "",
        f"// Metadata: the ONNX export's metadata_props ({name}_metadata() returns them as JSON)",
        f"#define {up}_KERAS_TRPO_VERSION {c_string(meta['keras_trpo_version'])}",
        f"#define {up}_ENV_ID {c_string(meta['env_id'])}",
        f"#define {up}_OBSERVATION_SPACE {c_string(meta['observation_space'])}",
        f"#define {up}_ACTION_SPACE {c_string(meta['action_space'])}",
        f"#define {up}_DISTRIBUTION {c_string(meta['distribution'])}",
        f"#define {up}_OBS_NORMALIZATION {1 if meta['obs_normalization'] == 'true' else 0}",
        f"#define {up}_TRAINED_TIMESTEPS {int(meta['trained_timesteps'])}",
        f"#define {up}_EXPORTED_AT {c_string(meta['exported_at'])}",
    ]
    if r is not None:
        lines += [f"#define {up}_RECURRENT {c_string(meta['recurrent'])}",
                  f"#define {up}_STATE_RESET {c_string(meta['state_reset'])}"]
    lines.append("")
    if p.dict_obs:
        lines += ["// One field per Dict key, in sorted-key order (a Discrete key: its index as a float).", "typedef struct {"]
        for i in p.inputs:
            lines.append(f"    float {i.key};  // Discrete({i.one_hot}) index" if i.one_hot else
                         f"    float {i.key}[{up}_OBS_{i.key.upper()}_SIZE];")
        lines += [f"}} {name}_obs_t;", ""]
    lines += [f"typedef {ACTION_TYPES[action.family]} {name}_action_t;", ""]
    return "\n".join(lines)


def weights_header(p: PolicyPlan, name: str, metadata: dict[str, str]) -> str:
    """``NAME_weights.h``: the private sizes, the metadata JSON, every array ``NAME.c`` reads
    (kernels stored one row per output, ``[n_out][n_in]``, so the inner loop reads memory in
    order) and the lists of inputs and layers as X-macros (``NAME_INPUTS(X)``, ``NAME_LAYERS(X)``:
    the code expands them into calls whose sizes are constants, as unrolled code would have)."""
    up, action = name.upper(), c_action(p.action)
    layers = p.layers + (p.head,)
    out = [f"// {name}_weights.h: the numbers of {name}.c, generated by keras_trpo's export; do not edit.\n"
           f"// Included by {name}.c only: every array is static. Kernels are [outputs][inputs].\n",
           f"#define {up}_FEATURES {p.features}\n#define {up}_N_LAYERS {len(layers)}  // the head last\n"
           f"#define {up}_MAX_WIDTH {max_width(p)}\n"]
    r = p.recurrent
    if r is not None:
        out.append(f"#define {up}_RNN_UNITS {r.units}\n#define {up}_RNN_FEATURES {r.n_in}\n")
    out.append(f"static const char {name}_metadata_json[] = {c_string(json.dumps(metadata, sort_keys=True))};\n")
    rows, at = [], 0
    for inp in p.inputs:
        what = "observation" if not p.dict_obs else f"key {inp.key!r}"
        mean = inv_std = "NULL"
        if inp.normalizer is not None:
            mean, inv_std = _normalizer_arrays(p, name, inp)
            out.append(_floats(mean, inp.normalizer.mean, f"{what} normaliser: running mean"))
            out.append(_floats(inv_std, inp.normalizer.inv_std, f"{what} normaliser: 1 / sqrt(var + eps), in float32"))
        clip = c_float(inp.normalizer.clip) if inp.normalizer is not None else "0.0f"
        kind = f"Discrete({inp.one_hot}) index" if inp.one_hot else f"[{inp.size}]"
        rows.append(f"    X({inp.start}, {inp.size}, {at}, {inp.one_hot or 0}, {mean}, {inv_std}, {clip}) /* {what} {kind} */")
        at += inp.width
    if r is not None:
        g = "i, f, c, o" if r.cell == "lstm" else "z, r, h"
        out.append(_floats(f"{name}_rnn_kernel", r.kernel.T,
                           f"{r.cell.upper()} input kernel [{r.gates * r.units}][{r.n_in}], gates {g} of {r.units} each"))
        out.append(_floats(f"{name}_rnn_recurrent_kernel", r.recurrent_kernel.T,
                           f"{r.cell.upper()} recurrent kernel [{r.gates * r.units}][{r.units}]"))
        if r.cell == "lstm":
            out.append(_floats(f"{name}_rnn_bias", r.bias, f"LSTM bias [{r.gates * r.units}]"))
        else:
            out.append(_floats(f"{name}_rnn_bias", r.bias[0], f"GRU input bias [{r.gates * r.units}]"))
            out.append(_floats(f"{name}_rnn_recurrent_bias", r.bias[1],
                               f"GRU recurrent bias [{r.gates * r.units}] (reset_after: inside r * (h W + b))"))
    table = []
    for i, d in enumerate(layers):
        tag = "head" if d is p.head else f"layer {i}"
        out.append(_floats(f"{name}_w{i}", d.kernel.T, f"{tag} ({d.name}): kernel [{d.n_out}][{d.n_in}], {d.activation}"))
        out.append(_floats(f"{name}_b{i}", d.bias, f"{tag} ({d.name}): bias [{d.n_out}]"))
        table.append(f"    X({i}, {d.n_in}, {d.n_out}, ACT_{d.activation.upper()}) /* {d.name} */")
    if p.log_std is not None:
        out.append(_floats(f"{name}_log_std", p.log_std, "state-independent log standard deviation"))
        out.append(_floats(f"{name}_action_low", action.low, "Box lower bounds (-INFINITY: unbounded)"))
        out.append(_floats(f"{name}_action_high", action.high, "Box upper bounds (INFINITY: unbounded)"))
    if len(action.nvec):
        out.append(_ints(f"{name}_nvec", action.nvec, "categories of each categorical action"))
        out.append(_ints(f"{name}_start", action.starts, "value of each categorical action's first category"))
    out.append("// The observation inputs, X(offset, size, features offset, one-hot n, normaliser mean, 1 / std, clip)\n"
               "// each: the floats x[offset .. offset + size) give the features from a[features offset].\n"
               f"#define {up}_INPUTS(X) \\\n" + " \\\n".join(rows) + "\n")
    out.append(f"// The layers, the head last, X(index, inputs, outputs, activation) each: kernel {name}_w<index>,\n"
               f"// bias {name}_b<index>.\n#define {up}_LAYERS(X) \\\n" + " \\\n".join(table) + "\n")
    return "\n".join(out)


def check_name(name: str) -> str:
    """The C prefix: an identifier (it names the files, functions, types and macros)."""
    if not isinstance(name, str) or not IDENTIFIER.match(name) or len(name) > 40:
        raise ExportError(f"the C name must be a C identifier of at most 40 characters (letters, digits, _), "
                          f"got {name!r}")
    return name


def render(p: PolicyPlan, name: str, metadata: dict[str, str], masked: bool = False) -> dict[str, str]:
    """File name -> text of the three files (``masked``: every function takes the action mask after the
    observation; without it the files are what they were before masks existed, byte for byte)."""
    flags = config_flags(p, masked)
    header = rename(resolve(template("policy.h"), flags), name)
    include = rename(CONFIG_INCLUDE, name)
    if header.count(include) != 1:
        raise ExportError("C template policy.h must include policy_config.h once, on a line of its own")
    return {f"{name}.h": header.replace(include, config_header(p, name, metadata, masked)),
            f"{name}.c": rename(resolve(template("policy.c"), flags), name),
            f"{name}_weights.h": weights_header(p, name, metadata)}


def template_data(p: PolicyPlan, metadata: dict[str, str], masked: bool = False) -> dict[str, str]:
    """``policy_config.h`` and ``policy_weights.h`` for compiling the templates themselves (with
    ``-I`` on their directory): this plan's data, and its ``KT_`` conditions as macros."""
    flags = "".join(f"#define {k} {int(v)}\n" for k, v in config_flags(p, masked).items())
    return {"policy_config.h": f"// The templates' conditions for this policy, then its public data.\n{flags}\n"
                               + config_header(p, TEMPLATE_NAME, metadata, masked),
            "policy_weights.h": weights_header(p, TEMPLATE_NAME, metadata)}


__all__ = ["ACTION_TYPES", "CAction", "c_action", "c_float", "check_name", "render", "template_data"]
