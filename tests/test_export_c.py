"""keras_trpo.export.to_c: the C99 policy built with the host compiler, against the TF agent; its sampler
against the agent's distribution (SciPy); errors for what C cannot express; the CLI."""
import json
import os
import shutil
import subprocess
import sys

import gymnasium as gym
import keras
import numpy as np
import pytest
from scipy import stats

from keras_trpo import export
import keras_trpo
from keras_trpo.export import ExportError, ExportVerificationError
from keras_trpo.export.c_build import CLibrary, host_fma_flags
from keras_trpo.plan.activations import ACTIVATIONS
from keras_trpo.export.sampler_check import check_sampler, chi2_sf, ks_uniform_p
from tests.envs import EXPORT_ACTION_SPACES as SPACES, EXPORT_OBS as OBS, ToyEnv

if shutil.which(os.environ.get("CC", "cc").split()[0]) is None:
    pytest.skip("no C compiler (cc / $CC)", allow_module_level=True)

# Stricter than the export's own build: the generated C must be warning-free, with no float
# silently promoted to double (slow software doubles on a Cortex-M4).
STRICT = ["-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-pedantic", "-Wshadow", "-Wdouble-promotion",
          "-Werror"]


def _agent(action_space, obs_space=OBS, normalize=True, fit=True, **kw):
    agent = keras_trpo.TRPO(lambda: ToyEnv(obs_space, action_space, episode_length=20), seed=3, n_envs=1, n_steps=64,
                            normalize_obs=normalize, value_epochs=1, jit_compile=False, **kw)
    if fit:
        agent.fit(128, verbose=0)  # moves weights and normaliser statistics off their initial values
    return agent


def _build(directory, tmp_path, name="policy"):
    """Our own strict build of the written files, loaded with ctypes."""
    lib = tmp_path / f"lib{name}_test.so"
    subprocess.run(["cc", *STRICT, "-shared", "-fPIC", "-o", str(lib), str(directory / f"{name}.c"), "-lm"],
                   check=True, capture_output=True, text=True)
    return lib


def _library(agent, lib, name="policy"):
    family = agent.family.name
    obs = int(np.prod(agent.observation_space.shape)) if agent.observation_space.shape else 1
    params = sum(agent.family.head_sizes.values())
    return CLibrary(lib, name, family, obs, int(np.prod(agent.action_space.shape or (1,))), params)


@pytest.fixture(scope="module", params=sorted(SPACES))
def exported(request, tmp_path_factory):
    agent = _agent(SPACES[request.param])
    directory = tmp_path_factory.mktemp(request.param) / "c"
    report = export.to_c(agent, directory)
    lib = _build(directory, tmp_path_factory.mktemp("build"))
    return request.param, agent, directory, report, _library(agent, lib)


def test_outputs_match_the_agent(exported):
    kind, agent, directory, report, lib = exported
    assert report.verified_observations == 1000 and report.worst_difference <= 1e-5
    assert sorted(os.listdir(directory)) == ["policy.c", "policy.h", "policy_weights.h"]
    obs = np.random.default_rng(7).normal(size=(500, 5)).astype(np.float32) * 3
    action = lib.act(obs)
    params = lib.params(obs)
    expected = agent.predict(obs, deterministic=True)
    tf_params = agent.policy_model(obs, training=False)
    if kind == "box":
        np.testing.assert_allclose(action, expected, atol=1e-5)
        np.testing.assert_allclose(params[:, :3], tf_params["mean"].numpy(), atol=1e-5)
        np.testing.assert_allclose(params[:, 3:], tf_params["log_std"].numpy(), atol=1e-6)
        assert np.all(action >= SPACES["box"].low) and np.all(action <= SPACES["box"].high)
    else:
        np.testing.assert_array_equal(action.reshape(expected.shape), expected)
        np.testing.assert_allclose(params, tf_params["logits"].numpy(), atol=1e-5)
    assert report.sampler_min_p_value >= 1e-3 / report.sampler_tests


def test_header_and_metadata(exported):
    kind, agent, directory, report, lib = exported
    meta = json.loads(lib.metadata())
    assert meta == report.metadata and meta["format"] == "c" and meta["distribution"] == agent.family.name
    h = (directory / "policy.h").read_text()
    assert "#define POLICY_OBS_SIZE 5\n" in h
    assert f"#define POLICY_ACTION_SIZE {int(np.prod(agent.action_space.shape or (1,)))}\n" in h
    assert f'#define POLICY_KERAS_TRPO_VERSION "{keras_trpo.__version__}"' in h
    assert f"#define POLICY_TRAINED_TIMESTEPS {agent.num_timesteps}\n" in h
    assert '#define POLICY_DISTRIBUTION "' + agent.family.name + '"' in h
    source = (directory / "policy.c").read_text() + (directory / "policy_weights.h").read_text()
    assert "malloc" not in source and "static const float" in source


def test_sampler_follows_the_agents_distribution(exported):
    """Independent of the export's own check: SciPy's chi-square on the C draws (categoricals)."""
    kind, agent, directory, report, lib = exported
    if kind == "box":
        pytest.skip("clipped Gaussian: see test_gaussian_sampler_ks")
    obs = np.random.default_rng(3).normal(size=(2, 5)).astype(np.float32)
    draws = lib.sample(obs, 4000, seed=11)
    logits = agent.policy_model(obs, training=False)["logits"].numpy().astype(np.float64)
    for k in range(len(obs)):
        if kind == "multibinary":
            p1 = 1 / (1 + np.exp(-logits[k]))
            for j in range(4):
                ones = int(np.sum(draws[k, :, j]))
                assert stats.binomtest(ones, 4000, p1[j]).pvalue > 1e-4
            continue
        nvec, starts = ([4], [2]) if kind == "discrete" else ([3, 2, 5], [0, 0, 0])
        offset = 0
        for j, (n, s) in enumerate(zip(nvec, starts)):
            p = np.exp(logits[k, offset:offset + n] - logits[k, offset:offset + n].max())
            p /= p.sum()
            counts = np.bincount(draws[k, :, j] - s, minlength=n)
            assert len(counts) == n  # no value outside the categories
            assert stats.chisquare(counts, 4000 * p).pvalue > 1e-4
            offset += n


def test_gaussian_sampler_ks(tmp_path):
    agent = _agent(gym.spaces.Box(-100, 100, (2,), np.float32), log_std_init=-0.5)
    report = export.to_c(agent, tmp_path / "c")
    assert report.sampler_tests == 8
    lib = _library(agent, _build(tmp_path / "c", tmp_path))
    obs = np.random.default_rng(1).normal(size=(1, 5)).astype(np.float32)
    draws = lib.sample(obs, 5000, seed=5)[0]
    dist = agent.distribution(obs)
    mean, std = dist.mean().numpy()[0], dist.stddev().numpy()[0]
    for j in range(2):
        assert stats.kstest(draws[:, j], "norm", args=(mean[j], std[j])).pvalue > 1e-4
    # Replayable: the same seed gives the same draws, another seed others.
    np.testing.assert_array_equal(lib.sample(obs, 50, seed=5)[0], draws[:50])
    assert not np.array_equal(lib.sample(obs, 50, seed=6)[0], draws[:50])


def test_statistics_match_scipy_and_catch_a_wrong_sampler():
    for x, dof in ((0.5, 1), (3.2, 2), (15.0, 7), (40.0, 30), (200.0, 150)):
        assert chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-8, abs=1e-14)
    u = np.random.default_rng(0).uniform(size=2000)
    assert ks_uniform_p(u) == pytest.approx(stats.kstest(u, "uniform").pvalue, abs=0.02)
    assert ks_uniform_p(u ** 1.25) < 1e-4  # a skewed sample is caught
    logits = np.array([[2.0, 0.0, -1.0]], np.float32)
    uniform_draws = np.random.default_rng(1).integers(0, 3, size=(1, 2000, 1))
    with pytest.raises(ExportVerificationError, match="chi-square"):
        check_sampler("categorical", {"logits": logits}, uniform_draws, nvec=[3], starts=[0])
    p = np.exp(logits[0]) / np.exp(logits[0]).sum()
    right = np.random.default_rng(2).choice(3, p=p, size=(1, 2000, 1))
    assert check_sampler("categorical", {"logits": logits}, right, nvec=[3], starts=[0]).min_p_value > 1e-3


def test_every_supported_activation(tmp_path):
    torso = keras.Sequential([keras.layers.Dense(6, activation=a, name=f"t_{a}") for a in sorted(ACTIVATIONS)])
    agent = _agent(SPACES["box"], torso=torso, fit=False)
    report = export.to_c(agent, tmp_path / "c")
    assert report.worst_difference <= 1e-5
    _build(tmp_path / "c", tmp_path)  # and warning-free with every activation in


def _x86_with_fma() -> bool:
    return bool(host_fma_flags())  # the export adds -mfma exactly on x86-64 with FMA3


@pytest.mark.skipif(not _x86_with_fma(), reason="onnxruntime's MLAS kernels compared here are x86-64's FMA3 ones")
@pytest.mark.parametrize("activation, hidden", [("tanh", (300, 64)), ("relu", (64, 300, 8))])
def test_bit_identical_to_onnxruntime(tmp_path, activation, hidden):
    """The C rounds as onnxruntime does (fmaf chains in blocks of 256 inputs, bias first; MLAS's
    tanh; the normaliser's folded reciprocal), so every output bit equals the .onnx file's: a
    layer wider than one block (300) checks the blocking, a normaliser with moved statistics the
    reciprocal. Without the fmaf (plain sums) or with tanhf, about half of the outputs differ."""
    import onnxruntime as ort
    agent = _agent(SPACES["box"], hidden_sizes=hidden, activation=activation)
    export.to_c(agent, tmp_path / "c")
    export.to_onnx(agent, tmp_path / "p.onnx")
    lib = _library(agent, _build(tmp_path / "c", tmp_path))
    obs = np.random.default_rng(11).normal(size=(2000, 5)).astype(np.float32) * 3
    session = ort.InferenceSession(str(tmp_path / "p.onnx"), providers=["CPUExecutionProvider"])
    mean, log_std = session.run(["mean", "log_std"], {"obs": obs})
    params = lib.params(obs)
    assert np.array_equal(params[:, :3], mean), np.max(np.abs(params[:, :3] - mean))
    assert np.array_equal(params[:, 3:], log_std)
    assert np.array_equal(lib.act(obs), session.run(["action"], {"obs": obs})[0])


@pytest.mark.skipif(not _x86_with_fma(), reason="onnxruntime's MLAS kernels compared here are x86-64's FMA3 ones")
def test_hopper_closed_loop_returns_equal_onnxpolicys(tmp_path):
    """Issue 18's closed loop on a chaotic env: Hopper's contacts turn a 1e-7 action difference
    into returns tens apart within an episode, so equal returns need equal bits at every step."""
    from keras_trpo_serving.c_policy import CPolicy
    from keras_trpo_serving.cli import run_episodes
    from keras_trpo_serving.edge.closed_loop import lockstep
    from keras_trpo_serving.onnx_policy import OnnxPolicy
    agent = keras_trpo.TRPO("Hopper-v5", seed=0, n_envs=1, n_steps=1024, value_epochs=1)
    agent.fit(2048, verbose=0)  # statistics and weights off their initial values; episodes of ~20-100 steps
    export.to_onnx(agent, tmp_path / "hopper.onnx")
    export.to_c(agent, tmp_path / "c")
    onnx_policy, c_policy = OnnxPolicy(tmp_path / "hopper.onnx"), CPolicy(tmp_path / "c")
    returns = [run_episodes(p, "Hopper-v5", 5, 10000, True)["returns"] for p in (onnx_policy, c_policy)]
    assert returns[0] == returns[1]
    steps = lockstep(onnx_policy, c_policy, "Hopper-v5", 5, 10000)
    assert steps["steps"] > 50 and steps["worst_action_difference"] == 0.0


def test_discrete_observations_one_hot(tmp_path):
    agent = _agent(gym.spaces.Discrete(3), obs_space=gym.spaces.Discrete(6), normalize=False)
    report = export.to_c(agent, tmp_path / "c", name="grid")
    assert report.worst_difference <= 1e-5
    lib = _library(agent, _build(tmp_path / "c", tmp_path, "grid"), "grid")
    obs = np.arange(6, dtype=np.float32)
    np.testing.assert_array_equal(lib.act(obs)[:, 0], agent.predict(obs))


def test_tampered_weights_fail_verification(exported, tmp_path):
    kind, agent, directory, _, _ = exported
    bad = tmp_path / "bad"
    shutil.copytree(directory, bad)
    weights = (bad / "policy_weights.h").read_text()
    start = weights.index("policy_w1[")  # the second layer's kernel: shift its first 40 values
    body = weights.index("{", start) + 1
    values = weights[body:].split(",")
    shifted = [f"{float(v.strip().rstrip('f')) + 2.0}f" for v in values[:40]]
    (bad / "policy_weights.h").write_text(weights[:body] + ",".join(shifted + values[40:]))
    with pytest.raises(ExportVerificationError, match="differ"):
        export.verify_c(agent, bad)
    assert export.verify_c(agent, directory) <= 1e-5


def test_unsupported_layers_are_named(tmp_path):
    torso = keras.Sequential([keras.layers.Dense(8, activation="tanh"), keras.layers.LayerNormalization(name="norm1")])
    agent = _agent(gym.spaces.Discrete(2), torso=torso, fit=False)
    with pytest.raises(ExportError, match=r"layer 'norm1' \(LayerNormalization\)"):
        export.to_c(agent, tmp_path / "c")
    torso = keras.Sequential([keras.layers.Dense(8, activation="softmax", name="soft")])
    agent = _agent(gym.spaces.Discrete(2), torso=torso, fit=False)
    with pytest.raises(ExportError, match=r"activation 'softmax' of layer 'soft'"):
        export.to_c(agent, tmp_path / "c")
    image = gym.spaces.Box(0, 1, (8, 8, 1), np.float32)
    cnn = keras.Sequential([keras.layers.Conv2D(2, 3, name="conv"), keras.layers.Flatten(), keras.layers.Dense(4)])
    agent = _agent(gym.spaces.Discrete(2), obs_space=image, normalize=False, torso=cnn, fit=False)
    with pytest.raises(ExportError, match="flat observations"):
        export.to_c(agent, tmp_path / "c")
    assert not list(tmp_path.iterdir())


def test_bad_targets_and_missing_compiler(tmp_path, monkeypatch):
    agent = _agent(gym.spaces.Discrete(2), normalize=False, fit=False)
    with pytest.raises(ExportError, match="C identifier"):
        export.to_c(agent, tmp_path / "c", name="my-policy")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="is a file"):
        export.to_c(agent, tmp_path / "file")
    with pytest.raises(ExportError, match="does not exist"):
        export.to_c(agent, tmp_path / "missing" / "c")
    monkeypatch.setenv("CC", "no-such-compiler-xyz")
    with pytest.raises(ExportError, match="no C compiler.*no-such-compiler-xyz.*--no-verify"):
        export.to_c(agent, tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    report = export.to_c(agent, tmp_path / "c", verify=False)  # explicitly unverified: no compiler needed
    assert report.verified_observations == 0 and (tmp_path / "c" / "policy.c").exists()


def test_cli_writes_c(tmp_path):
    agent = _agent(gym.spaces.Discrete(2), normalize=False, fit=False)
    agent.save(str(tmp_path / "agent.keras"))
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    out = subprocess.run([sys.executable, "-m", "keras_trpo.export", str(tmp_path / "agent.keras"), "--c", str(tmp_path / "c"),
                          "--c-name", "cart"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert line["verified_observations"] > 0 and line["sampler_tests"] > 0
    assert sorted(os.listdir(tmp_path / "c")) == ["cart.c", "cart.h", "cart_weights.h"]
