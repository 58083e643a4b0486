"""Sampled actions through serving: the noise-in contract on ONNX, LiteRT and C files.

The fixtures stochastic_NAME.{onnx,tflite,_c/} were exported with the noise input by
tests/make_serving_fixtures.py --stochastic, one agent per action family; stochastic_NAME.npz holds
observations, noise and the agent's own sampled actions for them (keras_trpo's rollout sampler fed
that noise). Here: the same noise gives those actions on every format; a NumPy sampler written in
this file from first principles agrees; draws pass goodness-of-fit tests that a wrong sampler fails;
bad noise is refused with errors that name the problem; the HTTP server takes noise or a seed.
"""
import math
import os
import shutil

import numpy as np
import pytest

from keras_trpo_serving import InvalidNoise, InvalidObservation, ModelLoadError, OnnxPolicy, load_policy
from keras_trpo_serving.tests.conftest import FIXTURES, fixture_path
from keras_trpo_serving.tests.test_server import request, running

HAVE_CC = shutil.which(os.environ.get("CC", "cc").split()[0]) is not None
FAMILIES = ("discrete", "gaussian", "multidiscrete", "multibinary")
FORMATS = ["onnx", "tflite"] + (["c"] if HAVE_CC else [])
WIDTH = {"discrete": 3, "gaussian": 2, "multidiscrete": 5, "multibinary": 3}


def _path(name: str, fmt: str) -> str:
    return os.path.join(FIXTURES, f"stochastic_{name}_c" if fmt == "c" else f"stochastic_{name}.{fmt}")


def _ref(name: str) -> dict:
    with np.load(os.path.join(FIXTURES, f"stochastic_{name}.npz"), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _numpy_sample(name: str, params: dict, u: np.ndarray) -> np.ndarray:
    """The contract from first principles, float64."""
    u = u.astype(np.float64)
    if name == "gaussian":
        x = params["mean"].astype(np.float64) + np.exp(params["log_std"].astype(np.float64)) * u
        return np.clip(x, [-1, -0.5], [1, 2])
    logits = params["logits"].astype(np.float64)
    if name == "multibinary":
        return (u < 1 / (1 + np.exp(-logits))).astype(np.int8)
    z = logits - np.log(-np.log(u + 1e-20) + 1e-20)
    if name == "discrete":
        return np.argmax(z, -1) + 1  # Discrete(3, start=1)
    return np.stack([np.argmax(z[:, :3], -1), np.argmax(z[:, 3:], -1)], -1)  # MultiDiscrete([3, 2])


@pytest.fixture(scope="module", params=[(n, f) for n in FAMILIES for f in FORMATS], ids=lambda p: f"{p[0]}-{p[1]}")
def loaded(request):
    name, fmt = request.param
    return name, fmt, load_policy(_path(name, fmt), seed=0), _ref(name)


def test_same_noise_gives_the_agents_action(loaded):
    name, fmt, policy, ref = loaded
    assert policy.samples_in_graph and policy.noise_shape == (WIDTH[name],)
    assert policy.noise_kind == ("normal" if name == "gaussian" else "uniform")
    got = policy.act(ref["obs"], deterministic=False, noise=ref["noise"])
    assert got.dtype == ref["sampled_action"].dtype or name != "gaussian"
    if name == "gaussian":
        np.testing.assert_allclose(got, ref["sampled_action"], atol=1e-5)
    else:
        np.testing.assert_array_equal(got, ref["sampled_action"])
        assert got.dtype == (np.int8 if name == "multibinary" else np.int64)
    one = policy.act(ref["obs"][3], deterministic=False, noise=ref["noise"][3])  # one observation, [width] noise
    np.testing.assert_allclose(np.asarray(one, np.float64), ref["sampled_action"][3].astype(np.float64), atol=1e-5)
    # the deterministic action is unchanged by the noise input
    det = policy.act(ref["obs"])
    if name == "gaussian":
        np.testing.assert_allclose(det, ref["action"], atol=1e-5)
    else:
        np.testing.assert_array_equal(det, ref["action"])


def test_graph_sampler_equals_numpy_sampler_and_first_principles(loaded):
    """serving's NumPy path (for files without the noise input) computes the same function as the graph."""
    name, fmt, policy, ref = loaded
    rng = np.random.default_rng(11)
    obs = np.repeat(ref["obs"], 20, axis=0)
    noise = (rng.standard_normal((len(obs), WIDTH[name])) if name == "gaussian" else rng.random((len(obs), WIDTH[name])))
    noise = noise.astype(np.float32)
    graph = policy.act(obs, deterministic=False, noise=noise)
    params = policy.distribution_params(obs)
    mine = _numpy_sample(name, params, noise)
    numpy_path = policy.sampling_rule.contract_action(params, noise)  # keras_trpo_serving/sampling.py
    if name == "gaussian":
        np.testing.assert_allclose(graph, numpy_path, atol=1e-5)
        np.testing.assert_allclose(graph, mine, atol=1e-5)
    else:
        np.testing.assert_array_equal(graph, numpy_path)
        np.testing.assert_array_equal(graph.reshape(mine.shape), mine)


def test_rng_and_seed_make_draws_reproducible(loaded):
    name, fmt, policy, ref = loaded
    obs = ref["obs"]
    a = policy.act(obs, deterministic=False, rng=np.random.default_rng(3))
    b = policy.act(obs, deterministic=False, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    n = len(obs)
    z = np.random.default_rng(3).standard_normal((n, WIDTH[name]), dtype=np.float32) if name == "gaussian" else \
        np.random.default_rng(3).random((n, WIDTH[name]), dtype=np.float32)
    np.testing.assert_array_equal(a, policy.act(obs, deterministic=False, noise=z))  # rng draws float32 noise
    first = load_policy(_path(name, fmt), seed=9).act(obs, deterministic=False)
    np.testing.assert_array_equal(first, load_policy(_path(name, fmt), seed=9).act(obs, deterministic=False))


# ---------------------------------------------------------------- goodness of fit (NumPy only: no SciPy here)
def _chi2_critical(dof: int, z: float = 3.719) -> float:
    """Wilson-Hilferty: the chi-square quantile at one-sided normal quantile z (3.719: p = 1e-4)."""
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3


def _fits_categorical(draws: np.ndarray, probs: np.ndarray) -> bool:
    counts = np.bincount(draws, minlength=len(probs))
    if len(counts) != len(probs):
        return False
    expected = len(draws) * probs
    return float(np.sum((counts - expected) ** 2 / expected)) < _chi2_critical(len(probs) - 1)


def _ks_fits(u: np.ndarray) -> bool:
    """Kolmogorov-Smirnov against Uniform(0, 1) at p = 1e-4 (asymptotic critical value)."""
    u = np.sort(u)
    n = len(u)
    i = np.arange(1, n + 1)
    d = max(np.max(i / n - u), np.max(u - (i - 1) / n))
    return d < math.sqrt(-math.log(1e-4 / 2) / (2 * n))


def _fits(name: str, params: dict, draws: np.ndarray) -> bool:
    """Whether 20,000 draws for one observation fit the distribution its parameters define."""
    if name == "gaussian":
        mean, std = params["mean"][0].astype(np.float64), np.exp(params["log_std"][0].astype(np.float64))
        ok = True
        for j, (lo, hi) in enumerate(((-1, 1), (-0.5, 2))):
            inside = draws[(draws[:, j] > lo) & (draws[:, j] < hi), j].astype(np.float64)
            cdf = lambda x: 0.5 * (1 + np.vectorize(math.erf)((x - mean[j]) / (std[j] * math.sqrt(2))))  # noqa: E731
            a, b = cdf(np.float64(lo)), cdf(np.float64(hi))
            ok &= _fits_categorical(np.where(draws[:, j] <= lo, 0, np.where(draws[:, j] >= hi, 2, 1)),
                                    np.array([a, b - a, 1 - b]))  # the clipped mass on each bound
            ok &= _ks_fits((cdf(inside) - a) / (b - a))  # the interior: a truncated normal
        return bool(ok)
    logits = params["logits"][0].astype(np.float64)
    if name == "multibinary":
        p1 = 1 / (1 + np.exp(-logits))
        return all(_fits_categorical(draws[:, j].astype(np.int64), np.array([1 - p1[j], p1[j]])) for j in range(3))
    groups = [(0, 3, 1)] if name == "discrete" else [(0, 3, 0), (3, 5, 0)]
    ok = True
    for j, (a, b, start) in enumerate(groups):
        p = np.exp(logits[a:b] - logits[a:b].max())
        column = draws if draws.ndim == 1 else draws[:, j]
        ok &= _fits_categorical(column.astype(np.int64) - start, p / p.sum())
    return bool(ok)


WRONG = {  # plausible bugs: uniforms instead of Gumbel noise, a Bernoulli temperature of 2, a 1.5x Gaussian scale
    "discrete": lambda p, u: np.argmax(p["logits"] + u, -1) + 1,
    "multidiscrete": lambda p, u: np.stack([np.argmax(p["logits"][:, :3] + u[:, :3], -1),
                                            np.argmax(p["logits"][:, 3:] + u[:, 3:], -1)], -1),
    "multibinary": lambda p, u: (u < 1 / (1 + np.exp(-p["logits"] / 2))).astype(np.int8),
    "gaussian": lambda p, u: np.clip(p["mean"] + 1.5 * np.exp(p["log_std"]) * u, [-1, -0.5], [1, 2]),
}


# The C library is called row by row through ctypes: its Gaussian sampler is tested here, its categorical
# ones (the same code as the Gaussian's around them) in tests/test_export_stochastic.py at export.
@pytest.mark.parametrize("name, fmt", [(n, f) for n in FAMILIES for f in FORMATS if f != "c" or n == "gaussian"])
def test_draws_follow_the_distribution_and_a_wrong_sampler_does_not(name, fmt):
    policy, ref = load_policy(_path(name, fmt), seed=0), _ref(name)
    # the observation whose parameters are furthest from uniform (a wrong sampler then shows most)
    params_all = policy.distribution_params(ref["obs"])
    key = "mean" if name == "gaussian" else "logits"
    k = int(np.argmax(np.ptp(params_all[key], axis=1)))
    obs = np.repeat(ref["obs"][k:k + 1], 20_000, axis=0)
    params = {n: v[k:k + 1] for n, v in params_all.items()}
    draws = policy.act(obs, deterministic=False, rng=np.random.default_rng(2024))
    assert _fits(name, params, draws.reshape(20_000, -1) if name != "discrete" else draws)
    u = (np.random.default_rng(2024).standard_normal((20_000, WIDTH[name])) if name == "gaussian"
         else np.random.default_rng(2024).random((20_000, WIDTH[name])))
    wrong = WRONG[name]({n: np.repeat(v, 20_000, axis=0) for n, v in params.items()}, u)
    assert not _fits(name, params, wrong)


# ---------------------------------------------------------------- errors
def test_bad_noise_is_refused_with_the_problem_named():
    policy = OnnxPolicy(_path("discrete", "onnx"))
    obs = _ref("discrete")["obs"][:2]
    cases = [
        (np.zeros((2, 4), np.float32), r"noise has shape \(2, 4\); expected \(2, 3\) \(one per logit\)"),
        (np.zeros(3, np.float32), r"noise has shape \(3,\); expected \(2, 3\)"),
        ([["a", "b", "c"]] * 2, "noise has dtype <U1; expected float32 numbers"),
        ([[0.1, 0.2], [0.3]], "not a rectangular array"),
        (np.full((2, 3), np.nan, np.float32), "NaN or inf"),
        (np.full((2, 3), 1.0, np.float32), r"uniform noise must lie in \[0, 1\); got values from 1 to 1"),
        (np.full((2, 3), -0.1), r"must lie in \[0, 1\)"),
        (np.ones((2, 3), bool), "dtype bool"),
    ]
    for noise, message in cases:
        with pytest.raises(InvalidNoise, match=message):
            policy.act(obs, deterministic=False, noise=noise)
    with pytest.raises(InvalidNoise, match="pass deterministic=False"):
        policy.act(obs, noise=np.zeros((2, 3), np.float32))
    with pytest.raises(InvalidNoise, match="noise or rng, not both"):
        policy.act(obs, deterministic=False, noise=np.zeros((2, 3), np.float32), rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        policy.act(obs, deterministic=False, rng=np.random.RandomState(0))
    assert issubclass(InvalidNoise, InvalidObservation)
    gaussian = OnnxPolicy(_path("gaussian", "onnx"))  # normals may be any finite number
    assert gaussian.act(np.zeros(3, np.float32), deterministic=False, noise=[50.0, -50.0]).tolist() == [1.0, -0.5]


@pytest.mark.parametrize("name, message", [
    ("no_noise_metadata", "has a 'noise' input but no 'noise' metadata"),
    ("wrong_noise", r"its metadata says \('normal', 3\); a categorical policy for this action space takes \('uniform', 3\)"),
])
def test_stochastic_files_that_break_the_contract_are_refused(name, message):
    with pytest.raises(ModelLoadError, match=message):
        OnnxPolicy(os.path.join(FIXTURES, f"broken_stochastic_{name}.onnx"))


def test_files_without_the_noise_input_sample_the_same_function_in_numpy():
    """A deterministic-only export (discrete.onnx): act(noise=...) computes the contract from its logits."""
    policy = OnnxPolicy(fixture_path("discrete"))
    assert not policy.samples_in_graph
    obs = np.random.default_rng(1).normal(size=(500, 4)).astype(np.float32)
    u = np.random.default_rng(2).random((500, 3)).astype(np.float32)
    np.testing.assert_array_equal(policy.act(obs, deterministic=False, noise=u),
                                  _numpy_sample("discrete", policy.distribution_params(obs), u))


# ---------------------------------------------------------------- HTTP
def test_http_noise_and_seed(tmp_path):
    policy = OnnxPolicy(_path("gaussian", "onnx"), seed=0)
    ref = _ref("gaussian")
    obs = ref["obs"][5].tolist()
    with running(__import__("keras_trpo_serving.server", fromlist=["make_server"]).make_server(policy, "127.0.0.1", 0)) as srv:
        status, body = request(srv, "POST", "/v1/act", {"obs": obs, "deterministic": False,
                                                        "noise": ref["noise"][5].tolist()})
        assert status == 200
        np.testing.assert_allclose(body["action"], ref["sampled_action"][5], atol=1e-5)
        status, body = request(srv, "POST", "/v1/act", {"obs": obs, "noise": ref["noise"][5].tolist()})
        assert status == 200  # noise alone asks for a sampled action
        batch = ref["obs"][:20].tolist()
        s1, b1 = request(srv, "POST", "/v1/act", {"obs": batch, "deterministic": False, "seed": 77})
        s2, b2 = request(srv, "POST", "/v1/act", {"obs": batch, "seed": 77})
        assert s1 == s2 == 200 and b1 == b2
        expected = policy.act(np.asarray(batch, np.float32), deterministic=False, rng=np.random.default_rng(77))
        np.testing.assert_allclose(b1["action"], expected, atol=0)
        s3, b3 = request(srv, "POST", "/v1/act", {"obs": batch, "seed": 78})
        assert s3 == 200 and b3 != b1
        bad = [
            ({"obs": obs, "deterministic": True, "noise": [0.0, 0.0]}, 400, "drop them or send \"deterministic\": false"),
            ({"obs": obs, "deterministic": True, "seed": 1}, 400, "for sampled actions"),
            ({"obs": obs, "noise": [0.0, 0.0], "seed": 1}, 400, "not both"),
            ({"obs": obs, "seed": -1}, 400, "\"seed\" must be an integer from 0 to 9007199254740991"),
            ({"obs": obs, "seed": True}, 400, "\"seed\" must be an integer"),
            ({"obs": obs, "seed": 1.5}, 400, "\"seed\" must be an integer"),
            ({"obs": obs, "seed": None}, 400, "got null"),
            ({"obs": obs, "noise": None}, 400, "got null"),
            ({"obs": obs, "noise": [0.0, 0.0, 0.0]}, 422, r"noise has shape (3,)"),
            ({"obs": obs, "noise": [[0.0, 0.0]]}, 422, "a list of 2 numbers"),
            ({"obs": obs, "noise": [True, False]}, 422, "true or false"),
            ({"obs": obs, "noise": ["a", "b"]}, 422, "dtype"),
            ({"obs": batch, "noise": [[0.0, 0.0]] * 20}, 422, "for a batch send \"seed\""),
            ({"obs": [], "noise": [0.0, 0.0]}, 422, "goes with one observation"),
        ]
        for payload, status, fragment in bad:
            got, answer = request(srv, "POST", "/v1/act", payload)
            assert got == status and fragment in answer["error"], (payload, got, answer)
        status, body = request(srv, "POST", "/v1/act", {"obs": obs})  # and it keeps serving
        assert status == 200
        status, doc = request(srv, "GET", "/openapi.json")
    props = doc["paths"]["/v1/act"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"noise", "seed"} <= set(props)
    assert doc["components"]["schemas"]["Noise"]["minItems"] == doc["components"]["schemas"]["Noise"]["maxItems"] == 2


def test_http_uniform_noise_schema_and_values():
    policy = OnnxPolicy(_path("multibinary", "onnx"))
    ref = _ref("multibinary")
    with running(__import__("keras_trpo_serving.server", fromlist=["make_server"]).make_server(policy, "127.0.0.1", 0)) as srv:
        status, doc = request(srv, "GET", "/openapi.json")
        noise = doc["components"]["schemas"]["Noise"]
        assert noise["items"] == {"type": "number", "minimum": 0, "exclusiveMaximum": 1} and noise["maxItems"] == 3
        for i in range(10):
            status, body = request(srv, "POST", "/v1/act", {"obs": ref["obs"][i].tolist(), "noise": ref["noise"][i].tolist()})
            assert status == 200 and body["action"] == ref["sampled_action"][i].tolist()
        status, body = request(srv, "POST", "/v1/act", {"obs": ref["obs"][0].tolist(), "noise": [0.5, 1.0, 0.5]})
        assert status == 422 and "[0, 1)" in body["error"]
