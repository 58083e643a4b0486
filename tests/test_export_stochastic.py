"""Stochastic exports (stochastic=True; the C export always): noise in, sampled_action out.

Checked here against computations independent of export/: the agent's own rollout sampler
(keras_trpo_serving.sampling's rule) fed the same noise, a NumPy Gumbel-max / Bernoulli / Gaussian written out in
this file, SciPy's chi-square and Kolmogorov-Smirnov tests on the files' draws, and deliberately
wrong samplers that the export's checks must reject."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
from scipy import stats

from keras_trpo import export
import keras_trpo
from keras_trpo.export import ExportError, ExportVerificationError
from keras_trpo.export.noise import agent_sampled_action
from keras_trpo.export.verify import check_distribution
from tests.envs import EXPORT_ACTION_SPACES as SPACES, EXPORT_OBS as OBS, ToyEnv

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="pip install ai-edge-litert (requirements.txt)")
HAVE_CC = shutil.which(os.environ.get("CC", "cc").split()[0]) is not None
WIDTH = {"discrete": 4, "multidiscrete": 10, "multibinary": 4, "box": 3}


def _trained(action_space):
    agent = keras_trpo.TRPO(lambda: ToyEnv(OBS, action_space, episode_length=20), seed=3, n_envs=1, n_steps=64,
                            value_epochs=1, jit_compile=False)
    agent.fit(128, verbose=0)  # moves weights and normaliser statistics off their initial values
    return agent


def _reference(kind: str, params: dict, noise: np.ndarray) -> np.ndarray:
    """The noise contract from first principles, in float64 (not keras_trpo/export/noise.py's code)."""
    u = noise.astype(np.float64)
    if kind == "box":
        space = SPACES["box"]
        x = params["mean"].astype(np.float64) + np.exp(params["log_std"].astype(np.float64)) * u
        return np.clip(x, space.low, space.high)
    logits = params["logits"].astype(np.float64)
    if kind == "multibinary":
        return (u < 1 / (1 + np.exp(-logits))).astype(np.int8)
    gumbel = -np.log(-np.log(u + 1e-20) + 1e-20)
    z = logits + gumbel
    if kind == "discrete":
        return np.argmax(z, axis=-1) + SPACES["discrete"].start
    return np.stack([np.argmax(part, -1) for part in np.split(z, [3, 5], axis=-1)], -1)  # nvec [3, 2, 5]


@pytest.fixture(scope="module", params=sorted(SPACES))
def exported(request, tmp_path_factory):
    kind = request.param
    agent = _trained(SPACES[kind])
    d = tmp_path_factory.mktemp(kind)
    reports = {"onnx": export.to_onnx(agent, d / "p.onnx", stochastic=True),
               "ort": export.to_ort(agent, d / "p.ort", stochastic=True),
               "tflite": export.to_tflite(agent, d / "p.tflite", stochastic=True)}
    if HAVE_CC:
        reports["c"] = export.to_c(agent, d / "c")
    return kind, agent, d, reports


def _run(fmt: str, d, obs: np.ndarray, noise: np.ndarray) -> dict:
    """The written file in its runtime, called directly (not through export's runners)."""
    if fmt in ("onnx", "ort"):
        s = ort.InferenceSession(str(d / f"p.{fmt}"), providers=["CPUExecutionProvider"])
        names = [o.name for o in s.get_outputs()]
        return dict(zip(names, s.run(names, {"obs": obs, "noise": noise})))
    runner = litert.Interpreter(model_path=str(d / "p.tflite")).get_signature_runner("serving_default")
    return runner(obs=obs, noise=noise)


def test_reports_and_the_file_contract(exported):
    kind, agent, d, reports = exported
    for fmt, r in reports.items():
        assert r.stochastic and r.verified_observations == 1000, fmt
        assert r.worst_difference <= 1e-5 and r.sampled_worst_difference <= (1e-5 if kind == "box" else 0.0), fmt
        assert r.sampler_draws == 2000 and r.sampler_min_p_value >= 1e-3 / r.sampler_tests, fmt
        meta = r.metadata
        assert json.loads(meta["noise"]) == {"distribution": "normal" if kind == "box" else "uniform",
                                             "shape": [WIDTH[kind]], "dtype": "float32"}
        assert meta["outputs"].endswith(",sampled_action")
    # re-checking a written file recognises a stochastic one and checks its sampler too
    obs = np.random.default_rng(4).normal(size=(300, 5)).astype(np.float32)
    assert export.verify_ort(agent, d / "p.ort", obs) <= 1e-5
    assert export.verify_tflite(agent, d / "p.tflite", obs) <= 1e-5
    s = ort.InferenceSession(str(d / "p.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type, i.shape[1:]) for i in s.get_inputs()] == [
        ("obs", "tensor(float)", [5]), ("noise", "tensor(float)", [WIDTH[kind]])]
    assert "sampled_action" in [o.name for o in s.get_outputs()]
    tfl = reports["tflite"]
    if tfl.micro_skipped is None:  # tflite-micro installed: the sampler ran there too
        assert tfl.micro_sampled_worst_difference <= (1e-5 if kind == "box" else 0.0)
        assert tfl.micro_sampler_min_p_value >= 1e-3 / tfl.micro_sampler_tests
        assert "LOG" in tfl.micro_operators or kind == "box"


@pytest.mark.parametrize("fmt", ["onnx", "ort", "tflite"])
def test_same_noise_same_action_as_the_agent(exported, fmt):
    kind, agent, d, _ = exported
    rng = np.random.default_rng(42)
    obs = (rng.normal(size=(3000, 5)) * 3).astype(np.float32)
    noise = (rng.standard_normal((3000, WIDTH[kind])) if kind == "box" else rng.random((3000, WIDTH[kind])))
    noise = noise.astype(np.float32)
    out = _run(fmt, d, obs, noise)
    params = {k: v.numpy() for k, v in agent.policy_model(obs, training=False).items()}
    got = np.asarray(out["sampled_action"])
    agents = agent_sampled_action(agent, params, noise)  # keras_trpo's sampler, fed this noise
    mine = _reference(kind, params, noise)
    if kind == "box":
        np.testing.assert_allclose(got, agents, atol=1e-5)
        np.testing.assert_allclose(got, mine, atol=1e-5)
        assert np.any(got == SPACES["box"].low) or np.any(got == SPACES["box"].high)  # clipping was exercised
    else:
        np.testing.assert_array_equal(got.reshape(agents.shape), agents)
        np.testing.assert_array_equal(got.reshape(mine.shape), mine)
        assert len(np.unique(got)) > 1  # not a constant
    deterministic = agent.predict(obs, deterministic=True)  # the deterministic output is unchanged by the noise
    if kind == "box":
        np.testing.assert_allclose(out["action"], deterministic, atol=1e-5)
    else:
        np.testing.assert_array_equal(np.asarray(out["action"]).reshape(deterministic.shape), deterministic)


@pytest.mark.skipif(not HAVE_CC, reason="no C compiler")
def test_c_sample_noise_equals_the_onnx_file(exported):
    """Every format shares the contract: the C library and the ONNX file, same noise, same action."""
    from keras_trpo.export.c_build import CLibrary

    kind, agent, d, reports = exported
    lib_path = d / "libp.so"
    subprocess.run(["cc", "-std=c99", "-O2", "-ffp-contract=off", "-shared", "-fPIC", "-o", str(lib_path),
                    str(d / "c" / "policy.c"), "-lm"], check=True)
    size = int(np.prod(SPACES[kind].shape or (1,)))
    lib = CLibrary(lib_path, "policy", agent.family.name, 5, size, sum(agent.family.head_sizes.values()))
    rng = np.random.default_rng(8)
    obs = rng.normal(size=(500, 5)).astype(np.float32)
    noise = (rng.standard_normal((500, WIDTH[kind])) if kind == "box" else rng.random((500, WIDTH[kind])))
    noise = noise.astype(np.float32)
    c = lib.sample_noise(obs, noise).reshape(500, -1)
    o = np.asarray(_run("onnx", d, obs, noise)["sampled_action"]).reshape(500, -1)
    np.testing.assert_allclose(c.astype(np.float64), o.astype(np.float64), atol=1e-5 if kind == "box" else 0)
    assert f"#define POLICY_NOISE_SIZE {WIDTH[kind]}\n" in (d / "c" / "policy.h").read_text()


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_draws_pass_scipys_tests(exported, fmt):
    kind, agent, d, _ = exported
    obs = np.repeat(np.random.default_rng(3).normal(size=(1, 5)).astype(np.float32), 4000, axis=0)
    rng = np.random.default_rng(17)
    noise = (rng.standard_normal((4000, WIDTH[kind])) if kind == "box" else rng.random((4000, WIDTH[kind])))
    draws = np.asarray(_run(fmt, d, obs, noise.astype(np.float32))["sampled_action"]).reshape(4000, -1)
    params = {k: v.numpy()[0].astype(np.float64) for k, v in agent.policy_model(obs[:1], training=False).items()}
    if kind == "box":
        low, high = SPACES["box"].low.astype(np.float64), SPACES["box"].high.astype(np.float64)
        for j in range(3):
            dist = stats.norm(params["mean"][j], np.exp(params["log_std"][j]))
            inside = (draws[:, j] > low[j]) & (draws[:, j] < high[j])
            # the clipped mass sits on the bounds: compare it, then the interior's shape (truncated normal)
            assert stats.binomtest(int(np.sum(draws[:, j] <= low[j])), 4000, dist.cdf(low[j])).pvalue > 1e-4
            lo, hi = dist.cdf(low[j]), dist.cdf(high[j])
            u = (dist.cdf(draws[inside, j]) - lo) / (hi - lo)
            assert stats.kstest(u, "uniform").pvalue > 1e-4
        return
    logits = params["logits"]
    if kind == "multibinary":
        for j in range(4):
            assert stats.binomtest(int(draws[:, j].sum()), 4000, 1 / (1 + np.exp(-logits[j]))).pvalue > 1e-4
        return
    nvec, starts = ([4], [2]) if kind == "discrete" else ([3, 2, 5], [0, 0, 0])
    offset = 0
    for j, (n, s) in enumerate(zip(nvec, starts)):
        p = np.exp(logits[offset:offset + n] - logits[offset:offset + n].max())
        counts = np.bincount(draws[:, j].astype(np.int64) - s, minlength=n)
        assert len(counts) == n
        assert stats.chisquare(counts, 4000 * p / p.sum()).pvalue > 1e-4
        offset += n


def _synthetic_params(kind: str, rng: np.random.Generator) -> dict:
    """Distribution parameters for 4 observations, far enough from uniform that a wrong sampler shows."""
    if kind == "box":
        return {"mean": rng.normal(size=(4, 3)) * 0.3, "log_std": np.full((4, 3), -0.5)}
    return {"logits": rng.normal(size=(4, WIDTH[kind])) * 1.5}


def _runner(params: dict, draws: int, fn):
    """A stand-in for a file: ``sampled_action = fn(params of the row's observation, noise)``."""
    rows = {k: np.repeat(v, draws, axis=0) for k, v in params.items()}
    return lambda feeds: {"sampled_action": fn(rows, feeds["noise"])}


def _split_argmax(z):
    return np.stack([np.argmax(part, -1) for part in np.split(z, [3, 5], axis=-1)], -1)


WRONG = {  # plausible bugs that keep the shapes and the support right
    "discrete": lambda p, u: np.argmax(p["logits"] + u, -1) + 2,  # uniforms added, not Gumbel noise
    "multidiscrete": lambda p, u: _split_argmax(p["logits"] + u),
    "multibinary": lambda p, u: (u < 1 / (1 + np.exp(-p["logits"] / 2))).astype(np.int8),  # a temperature of 2
    "box": lambda p, u: np.clip(p["mean"] + 1.5 * np.exp(p["log_std"]) * u, SPACES["box"].low, SPACES["box"].high),
}


@pytest.mark.parametrize("kind", sorted(SPACES))
def test_a_wrong_sampler_fails_the_statistical_check(kind):
    """The export's distribution test (2,000 draws on each of 4 observations, Bonferroni at 1e-3) rejects
    each wrong sampler and passes the right one (the agent's own sampler) on the same parameters."""
    agent = keras_trpo.TRPO(lambda: ToyEnv(OBS, SPACES[kind]), seed=0, n_envs=1, n_steps=8, jit_compile=False)
    params = _synthetic_params(kind, np.random.default_rng(1))
    desc = export.describe(agent)
    feeds = desc.feeds(np.zeros((4, 5), np.float32))
    with pytest.raises(ExportVerificationError, match="do not follow the agent's distribution") as e:
        check_distribution(desc, _runner(params, 2000, WRONG[kind]), f"wrong {kind}", feeds, params)
    print(e.value)
    right = check_distribution(desc, _runner(params, 2000, lambda p, u: agent_sampled_action(agent, p, u)),
                               f"right {kind}", feeds, params)
    print(kind, "right sampler: min p", right.min_p_value, "over", right.tests, "tests")
    assert right.min_p_value >= 1e-3 / right.tests


def test_a_wrong_sampler_in_the_file_fails_the_export(tmp_path, monkeypatch):
    """The whole export path: a graph whose sampler ignores the Gumbel transform is refused at export time."""
    import keras_trpo.export.graph as graph

    agent = _trained(SPACES["discrete"])
    real = graph.sampled_action_function

    def broken(desc, as_integer):
        import tensorflow as tf

        return lambda p, u: as_integer(tf.argmax(p["logits"] + u, axis=-1, output_type=tf.int32) + 2)

    monkeypatch.setattr(graph, "sampled_action_function", broken)
    with pytest.raises(ExportVerificationError, match="discrete sampled actions differ from the agent's"):
        export.to_onnx(agent, tmp_path / "bad.onnx", stochastic=True)
    monkeypatch.setattr(graph, "sampled_action_function", real)
    assert export.verify_onnx(agent, export.to_onnx(agent, tmp_path / "good.onnx", stochastic=True).path) <= 1e-5


def test_deterministic_exports_are_unchanged_and_options_are_checked(tmp_path):
    agent = _trained(SPACES["discrete"])
    export.to_onnx(agent, tmp_path / "d.onnx")
    s = ort.InferenceSession(str(tmp_path / "d.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in s.get_inputs()] == ["obs"] and "sampled_action" not in [o.name for o in s.get_outputs()]
    assert "noise" not in s.get_modelmeta().custom_metadata_map
    with pytest.raises(ExportError, match="quantize and stochastic cannot be combined"):
        export.to_onnx(agent, tmp_path / "q.onnx", stochastic=True, quantize="dynamic-int8")
    with pytest.raises(ExportError, match="quantize and stochastic cannot be combined"):
        export.to_tflite(agent, tmp_path / "q.tflite", stochastic=True, quantize="dynamic-int8")
    agent.save(str(tmp_path / "agent.keras"))
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    out = subprocess.run([sys.executable, "-m", "keras_trpo.export", str(tmp_path / "agent.keras"), "--onnx",
                          str(tmp_path / "s.onnx"), "--stochastic"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert line["stochastic"] and line["sampler_tests"] == 4 and line["sampled_worst_difference"] == 0
    out = subprocess.run([sys.executable, "-m", "keras_trpo.export", str(tmp_path / "agent.keras"), "--c", str(tmp_path / "c"),
                          "--stochastic"], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and "--stochastic needs --onnx, --ort or --tflite" in out.stderr
