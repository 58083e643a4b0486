"""The C export's templates (keras_trpo/export/c/policy.c, policy.h) as C on their own: compiled
strictly with every set of conditions (and linted with cppcheck when it is installed), the same
library whether the conditions are left to the compiler or resolved by the renderer, the committed
example data current, the one activation table and the C in step. No TensorFlow.

    python tests/test_export_c_template.py   # rewrites keras_trpo/export/c/example/ from EXAMPLE
"""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))

from keras_trpo.export import c_source, c_template  # noqa: E402
from keras_trpo.export.c_build import CLibrary, host_fma_flags  # noqa: E402
from keras_trpo.export.errors import ExportError  # noqa: E402
from keras_trpo.plan import Dense, Normalizer, ObsInput, PolicyPlan, Recurrent  # noqa: E402
from keras_trpo.plan.activations import ACTIVATIONS  # noqa: E402
from keras_trpo_serving.sampling import BernoulliRule, CategoricalRule, GaussianRule, MultiCategoricalRule  # noqa: E402

TEMPLATES = ROOT / "keras_trpo" / "export" / "c"
STRICT = ["-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-pedantic", "-Wshadow", "-Wdouble-promotion",
          "-Werror"]
META = {"keras_trpo_version": "0.1.0", "env_id": "Example-v0", "observation_space": "{}", "action_space": "{}",
        "distribution": "", "obs_normalization": "true", "trained_timesteps": "0", "exported_at": "",
        "recurrent": "", "state_reset": "zeros at an episode start", "format": "c"}


def _normalizer(rng, d):
    var = rng.uniform(0.2, 3.0, d).astype(np.float32)
    return Normalizer(rng.normal(size=d).astype(np.float32), var, 1e-8, 5.0,
                      (1 / np.sqrt(var + np.float32(1e-8))).astype(np.float32))


def plan_of(inputs, family, activations=("tanh",), cell=None, width=6, units=4, seed=0) -> PolicyPlan:
    """A plan with random weights: ``inputs`` as ``(key, size, one_hot, normalised)``, a torso of
    one Dense layer per activation, ``family``'s head (2 actions)."""
    rng = np.random.default_rng(seed)
    obs, start = [], 0
    for key, size, one_hot, normalised in inputs:
        obs.append(ObsInput(key, start, size, one_hot, _normalizer(rng, size) if normalised else None))
        start += size
    n = sum(i.width for i in obs)
    recurrent = None
    if cell:
        g = {"lstm": 4, "gru": 3}[cell] * units
        recurrent = Recurrent(cell, units, rng.normal(size=(n, g)).astype(np.float32),
                              rng.normal(size=(units, g)).astype(np.float32),
                              rng.normal(size=(g,) if cell == "lstm" else (2, g)).astype(np.float32))
        n = units
    layers = []
    for i, a in enumerate(activations):
        layers.append(Dense(rng.normal(size=(n, width)).astype(np.float32), rng.normal(size=width).astype(np.float32),
                            a, f"policy_torso_dense_{i}"))
        n = width
    sizes = {"categorical": 3, "multi_categorical": 5, "bernoulli": 2, "diag_gaussian": 2}
    head = Dense(rng.normal(size=(n, sizes[family])).astype(np.float32), rng.normal(size=sizes[family]).astype(np.float32),
                 "linear", "policy_mean" if family == "diag_gaussian" else "policy_logits")
    log_std = rng.normal(size=2).astype(np.float32) * 0.3 if family == "diag_gaussian" else None
    action = {"categorical": CategoricalRule(3, start=-1),
              "multi_categorical": MultiCategoricalRule([2, 3], [0, 5]),
              "bernoulli": BernoulliRule((2,)),
              "diag_gaussian": GaussianRule(np.array([-1, -np.inf], np.float32), np.array([1, 2], np.float32), (2,))}[family]
    return PolicyPlan(tuple(obs), len(inputs) > 1 or inputs[0][0] != "obs", recurrent, tuple(layers), head,
                      "mean" if family == "diag_gaussian" else "logits", log_std, action)


BOX = [("obs", 4, None, True)]
DICT = [("goal", 1, 3, False), ("pos", 3, None, True), ("raw", 2, None, False)]
PLANS = {
    "box_gaussian_every_activation": dict(inputs=BOX, family="diag_gaussian",
                                          activations=sorted(a for a in ACTIVATIONS if a != "linear")),
    "dict_lstm_multi_categorical": dict(inputs=DICT, family="multi_categorical", cell="lstm", activations=("relu",)),
    "one_hot_gru_bernoulli": dict(inputs=[("obs", 1, 5, False)], family="bernoulli", cell="gru"),
    "dict_categorical": dict(inputs=DICT, family="categorical", activations=("elu", "sigmoid")),
    "raw_box_linear_only": dict(inputs=[("obs", 3, None, False)], family="categorical", activations=()),
    "box_lstm_gaussian": dict(inputs=BOX, family="diag_gaussian", cell="lstm", activations=("tanh", "tanh")),
}
# Rendered with the action_mask argument too (KT_MASKED): every masked family, fed-forward and recurrent, Dict or not.
MASKED = ("dict_lstm_multi_categorical", "one_hot_gru_bernoulli", "dict_categorical", "raw_box_linear_only")
EXAMPLE = "dict_lstm_multi_categorical"  # keras_trpo/export/c/example/: the data the templates open with


def write_example(directory: Path = TEMPLATES / "example") -> None:
    directory.mkdir(exist_ok=True)
    for file, text in c_source.template_data(plan_of(**PLANS[EXAMPLE]), META).items():
        (directory / file).write_text(text)


def _cc(*args, cwd=None):
    done = subprocess.run(["cc", *STRICT, *host_fma_flags(), *args], capture_output=True, text=True, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done


needs_cc = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")


def _library(lib: Path, name: str, plan: PolicyPlan, masked: bool = False) -> CLibrary:
    action = c_source.c_action(plan.action)
    return CLibrary(lib, name, action.family, plan.obs_size, action.size, plan.params_size, plan.state_size,
                    plan.action.mask_width if masked else 0)


def _masks(plan: PolicyPlan, rows: int, rng) -> np.ndarray:
    """Random masks, float 0/1 ``[rows, W]``, with a valid entry in every categorical and bit; every fourth row all ones."""
    rule = plan.action
    masks = rng.random((rows, rule.mask_width)) < 0.5
    if rule.distribution == "bernoulli":
        pairs = masks.reshape(rows, -1, 2)
        pairs[..., 0] |= ~pairs[..., 1]
    else:
        a = 0
        for n in getattr(rule, "nvec", [rule.mask_width]):
            masks[:, a] |= ~masks[:, a:a + n].any(1)
            a += int(n)
    masks[::4] = True
    return rule.check_mask(masks, rows).astype(np.float32)


def _outputs(lib: CLibrary, plan: PolicyPlan, masked: bool = False) -> dict:
    rng = np.random.default_rng(3)
    cols = [rng.integers(-1, i.one_hot + 1, (64, 1)) if i.one_hot else rng.normal(size=(64, i.size)) * 3
            for i in plan.inputs]
    obs = np.concatenate(cols, 1).astype(np.float32)
    noise = (rng.normal(size=(64, plan.noise_size)) if plan.action.distribution == "diag_gaussian"
             else rng.uniform(size=(64, plan.noise_size))).astype(np.float32)
    state = rng.normal(size=(64, plan.state_size)).astype(np.float32) if plan.state_size else None
    mask = _masks(plan, 64, rng) if masked else None
    args = (state,) if plan.state_size else ()
    out = {"params": lib.params(obs, *args, mask=mask), "act": lib.act(obs, *args, mask=mask),
           "noise": lib.sample_noise(obs, noise, *args, mask=mask),
           "sample": lib.sample(obs[:3], 20, 7, state[:3] if state is not None else None,
                                mask[:3] if mask is not None else None)}
    if plan.state_size:  # (output, state_out) pairs
        out.update({f"{k}_state": v[1] for k, v in out.items() if isinstance(v, tuple)})
        out = {k: v[0] if isinstance(v, tuple) else v for k, v in out.items()}
    return out


CASES = sorted(PLANS) + [f"{k}+mask" for k in MASKED]


@needs_cc
@pytest.mark.parametrize("case", CASES)
def test_the_template_compiles_on_its_own_and_equals_the_rendered_files(case, tmp_path):
    """The templates with this plan's data and conditions left to the compiler, and the three files
    the renderer writes (conditions resolved, under another name): both warning-free with strict
    flags, and the same library bit for bit (``+mask``: with the action_mask argument, under random masks)."""
    kind, masked = case.removesuffix("+mask"), case.endswith("+mask")
    plan = plan_of(**PLANS[kind])
    data = tmp_path / "data"
    data.mkdir()
    for file, text in c_source.template_data(plan, META, masked).items():
        (data / file).write_text(text)
    _cc("-shared", "-fPIC", f"-I{data}", "-o", str(tmp_path / "libpolicy.so"), str(TEMPLATES / "policy.c"), "-lm")
    rendered = tmp_path / "rendered"
    rendered.mkdir()
    for file, text in c_source.render(plan, "ctl", META, masked).items():
        (rendered / file).write_text(text)
    _cc("-shared", "-fPIC", "-o", str(tmp_path / "libctl.so"), str(rendered / "ctl.c"), "-lm")
    template_out = _outputs(_library(tmp_path / "libpolicy.so", "policy", plan, masked), plan, masked)
    rendered_out = _outputs(_library(tmp_path / "libctl.so", "ctl", plan, masked), plan, masked)
    for key, value in template_out.items():
        assert np.array_equal(value, rendered_out[key]), key
    for file in ("ctl.h", "ctl.c"):  # only the chosen branches, under the export's name
        text = (rendered / file).read_text()
        assert not re.search(r"^\s*#.*\bKT_", text, re.M) and "policy_" not in text and "POLICY_" not in text
        assert "ctl.h" in text
    header = (rendered / "ctl.h").read_text()
    assert ("STATE_SIZE" in header) == bool(plan.state_size) and ("ctl_obs_t" in header) == plan.dict_obs
    assert ("CTL_MASK_SIZE" in header) == masked and ("action_mask" in (rendered / "ctl.c").read_text()) == masked
    if masked:  # the masked actions are the rule's (keras_trpo_serving/sampling.py) on the unmasked logits
        lib = _library(tmp_path / "libctl.so", "ctl", plan, True)
        rng = np.random.default_rng(5)
        obs = np.concatenate([rng.integers(0, i.one_hot, (64, 1)) if i.one_hot else rng.normal(size=(64, i.size))
                              for i in plan.inputs], 1).astype(np.float32)
        mask = _masks(plan, 64, rng)
        state = (rng.normal(size=(64, plan.state_size)).astype(np.float32),) if plan.state_size else ()
        first = (lambda x: x[0]) if plan.state_size else (lambda x: x)
        logits = first(lib.params(obs, *state))
        rule, valid = plan.action, mask > 0.5
        assert np.array_equal(first(lib.params(obs, *state, mask=mask)), rule.masked_logits(logits, valid))
        act = first(lib.act(obs, *state, mask=mask))
        assert np.array_equal(act.reshape(64, -1), rule.to_env(rule.mode({"logits": logits}, valid)).reshape(64, -1))


@needs_cc
def test_the_committed_example_compiles_and_is_current(tmp_path):
    write_example(tmp_path)
    for file in ("policy_config.h", "policy_weights.h"):
        assert (TEMPLATES / "example" / file).read_text() == (tmp_path / file).read_text(), \
            f"{file} is stale: python tests/test_export_c_template.py"
    _cc("-c", f"-I{TEMPLATES / 'example'}", "-o", str(tmp_path / "policy.o"), str(TEMPLATES / "policy.c"))


@pytest.mark.skipif(shutil.which("cppcheck") is None, reason="cppcheck not installed (apt-get install cppcheck)")
def test_cppcheck_finds_nothing(tmp_path):
    """The template (with the example's data) and the files rendered for every plan above."""
    checks = [(TEMPLATES / "policy.c", TEMPLATES / "example")]
    for case in CASES:
        kind = case.removesuffix("+mask")
        (tmp_path / case).mkdir()
        for file, text in c_source.render(plan_of(**PLANS[kind]), "policy", META, case.endswith("+mask")).items():
            (tmp_path / case / file).write_text(text)
        checks.append((tmp_path / case / "policy.c", tmp_path / case))
    for source, include in checks:
        done = subprocess.run(["cppcheck", "--std=c99", "--enable=warning,style,performance,portability",
                               "--error-exitcode=1", "--inline-suppr", "--quiet", f"-I{include}", str(source)],
                              capture_output=True, text=True)
        assert done.returncode == 0, (source, done.stderr)


def test_the_c_implements_every_activation_of_the_table():
    text = (TEMPLATES / "policy.c").read_text()
    enum = re.search(r"enum activation \{(.*?)\};", text, re.S).group(1)
    assert [e.strip() for e in enum.split(",")] == [f"ACT_{a.upper()}" for a in ACTIVATIONS]
    cases = re.findall(r"case ACT_(\w+):", text)
    assert sorted(cases) == sorted(a.upper() for a in ACTIVATIONS if a != "linear")
    for a in ACTIVATIONS:
        if a != "linear":
            assert f"#if KT_USES_{a.upper()}\n    case ACT_{a.upper()}:" in text


def test_resolve_keeps_the_branches_taken_and_the_compilers_own_conditions():
    text = ("a\n#if KT_X\nb\n#if KT_Y || !KT_X\nc\n#elif KT_Y\nd\n#else\ne\n#endif\n#elif KT_Y\nf\n#else\ng\n#endif\n"
            "#ifdef __cplusplus\nh\n#if KT_Y  // comment\ni\n#endif\n#endif\n")
    assert c_template.resolve(text, {"KT_X": True, "KT_Y": False}) == "a\nb\ne\n#ifdef __cplusplus\nh\n#endif\n"
    assert c_template.resolve(text, {"KT_X": False, "KT_Y": True}) == "a\nf\n#ifdef __cplusplus\nh\ni\n#endif\n"
    with pytest.raises(ExportError, match="use '#if KT_X'"):
        c_template.resolve("#ifdef KT_X\n#endif\n", {"KT_X": True})
    with pytest.raises(ExportError, match="unknown condition KT_Z"):
        c_template.resolve("#if KT_Z\n#endif\n", {"KT_X": True})
    with pytest.raises(ExportError, match="mixes"):
        c_template.resolve("#if KT_X && FOO\n#endif\n", {"KT_X": True})
    with pytest.raises(ExportError, match="without #endif"):
        c_template.resolve("#if KT_X\n", {"KT_X": True})


def test_rename_touches_the_template_names_only():
    text = 'the policy. policy_act(POLICY_OBS_SIZE); #include "policy.h" policy.c policyx_y c/policy.c'
    assert c_template.rename(text, "arm") == 'the policy. arm_act(ARM_OBS_SIZE); #include "arm.h" arm.c policyx_y c/policy.c'


if __name__ == "__main__":
    write_example()
    print("wrote", TEMPLATES / "example")
