"""Masked exports (issue 29): the action_mask input in ONNX, ORT, LiteRT (.tflite, and on TFLite Micro),
SavedModel and C, verified over whole episodes under the env's own masks.

Checked here against computations independent of export/: the masked argmax and Gumbel-max written out
in this file in NumPy (on the unmasked file's logits), the unmasked file itself (an all-ones mask must
give its outputs bit for bit), the env's own masks, and graphs that ignore the mask, which the export's
checks must reject. Agents: Taxi-v4 (Discrete, info["action_mask"]), JointLimits-v0 (MultiDiscrete,
action_masks()), a MultiBinary env with forced bits (``MaskedBits``, below) and JointLimitsMemory-v0
with an LSTM; each trained a little with masks."""
import contextlib
import io
import json
import os
import shutil

import gymnasium as gym
import numpy as np
import onnxruntime as ort
import pytest

import keras_trpo
import keras_trpo.envs  # noqa: F401 - registers JointLimits-v0 and JointLimitsMemory-v0
from keras_trpo import export
from keras_trpo.export import ExportError, ExportVerificationError, cli
from keras_trpo.export.c_build import CLibrary, build_shared
from keras_trpo.export.c_source import c_action

litert = pytest.importorskip("ai_edge_litert.interpreter", reason="pip install ai-edge-litert (requirements.txt)")
HAVE_CC = shutil.which(os.environ.get("CC", "cc").split()[0]) is not None
needs_cc = pytest.mark.skipif(not HAVE_CC, reason="no C compiler")
needs_cortex_m4 = pytest.mark.skipif(
    not HAVE_CC or shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")
SMALL = dict(n_envs=1, value_epochs=1, jit_compile=False, hidden_sizes=(16,), action_masks="on")


class MaskedBits(gym.Env):
    """MultiBinary(3) actions under random masks from ``action_masks()``: per bit [may be 0, may be 1],
    often only one of them (a forced bit). Reward: bits equal to the observation's signs."""

    def __init__(self):
        self.observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
        self.action_space = gym.spaces.MultiBinary(3)
        self.t, self.mask = 0, np.ones(6, bool)

    def action_masks(self):
        return self.mask

    def _next(self):
        self.obs = self.np_random.uniform(-1, 1, 3).astype(np.float32)
        pairs = np.array([[1, 1], [1, 0], [0, 1]], bool)[self.np_random.integers(0, 3, 3)]
        self.mask = pairs.reshape(-1)
        return self.obs

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._next(), {}

    def step(self, action):
        self.t += 1
        reward = float(np.sum(np.asarray(action) == (self.obs > 0)))
        return self._next(), reward, False, self.t >= 12, {}


if "MaskedBits-v0" not in gym.registry:
    gym.register("MaskedBits-v0", entry_point=MaskedBits)


def _onnx(path, feeds):
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(names, {i.name: feeds[i.name] for i in s.get_inputs()})))


def _tflite(path, feeds):
    runner = litert.Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    return runner(**{k: feeds[k] for k in runner.get_input_details()})


def _c(directory, agent, feeds, masked):
    """The C export built here and called through ctypes: NAME_params, NAME_act, NAME_sample_noise."""
    build_shared(directory / "policy.c", directory / "libpolicy.so")
    plan = export.describe(agent).plan
    action = c_action(plan.action)
    lib = CLibrary(directory / "libpolicy.so", "policy", action.family, plan.obs_size, action.size, plan.params_size,
                   0, plan.action.mask_width if masked else 0)
    obs, mask = feeds["obs"].reshape(len(feeds["obs"]), -1), feeds.get("action_mask") if masked else None
    return {"logits": lib.params(obs, mask=mask), "action": lib.act(obs, mask=mask),
            "sampled_action": lib.sample_noise(obs, feeds["noise"], mask=mask)}


def _random_masks(rng, rows, sizes):
    """0/1 float32 masks, at least one valid entry per categorical of ``sizes``, every fifth row all ones."""
    masks = rng.random((rows, sum(sizes))) < 0.4
    at = 0
    for n in sizes:
        empty = ~masks[:, at:at + n].any(1)
        masks[empty, at + rng.integers(0, n, int(empty.sum()))] = True
        at += n
    masks[::5] = True
    return masks.astype(np.float32)


def _export_cli(agent, tmp, name, *flags):
    """``python -m keras_trpo.export AGENT --all DIR`` on the saved agent: the reports it prints, by path."""
    agent.save(tmp / "agent.keras")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main([str(tmp / "agent.keras"), "--all", str(tmp / name), *flags]) == 0
    return {os.path.basename(r["path"]): r for r in map(json.loads, out.getvalue().splitlines())}


@pytest.fixture(scope="module")
def taxi(tmp_path_factory):
    """Taxi-v4 trained a little with masks, every format through the CLI (stochastic), and the ONNX,
    .tflite and C files of the same agent without the mask input."""
    tmp = tmp_path_factory.mktemp("taxi")
    agent = keras_trpo.TRPO("Taxi-v4", seed=1, n_steps=128, **SMALL)
    agent.fit(128, verbose=0)  # one iteration with masks: weights and statistics off their initial values
    assert agent.masked and agent.mask_width == 6
    reports = _export_cli(agent, tmp, "masked", "--stochastic")
    plain = tmp / "plain"
    plain.mkdir()
    export.to_onnx(agent, plain / "policy.onnx", stochastic=True, action_mask=False, verify=False)
    export.to_tflite(agent, plain / "policy.tflite", stochastic=True, action_mask=False, verify=False, micro=False)
    if HAVE_CC:
        export.to_c(agent, plain / "c", action_mask=False, verify=False)
    return agent, tmp, reports


def test_taxi_every_format_verified_over_env_episodes_with_no_invalid_action(taxi):
    agent, tmp, reports = taxi
    assert set(reports) >= {"policy.onnx", "policy.ort", "policy.tflite", "saved_model"} | ({"c"} if HAVE_CC else set())
    for name, r in reports.items():
        assert r["invalid_actions"] == 0 and r["verified_episodes"] >= 10, name  # 10 env episodes under the env's masks
        assert r["verified_observations"] >= 1000 + 10, name  # + 1,000 sampled observations under random masks
        assert r["worst_difference_of_tolerance"] <= 1, name
        if name != "saved_model":
            assert r["stochastic"] and r["sampled_worst_difference"] == 0.0, name
    # TensorFlow Lite Micro runs the Discrete(500) observation's one-hot (no ONE_HOT op) and the mask
    micro = reports["policy.tflite"]
    assert "micro_skipped" not in micro and micro["micro_worst_difference"] <= 1e-5  # None is left out
    assert micro["micro_sampled_worst_difference"] == 0.0 and "ONE_HOT" not in micro["micro_operators"]
    meta = _onnx_meta(tmp / "masked" / "policy.onnx")
    assert meta["inputs"] == "obs,action_mask,noise"
    assert json.loads(meta["action_mask"])["shape"] == [6] and json.loads(meta["action_mask"])["dtype"] == "float32"
    s = ort.InferenceSession(str(tmp / "masked" / "policy.onnx"), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type, i.shape[1:]) for i in s.get_inputs()] == [
        ("obs", "tensor(float)", []), ("action_mask", "tensor(float)", [6]), ("noise", "tensor(float)", [6])]
    saved = np.load(tmp / "masked" / "observations.npz")
    assert saved["obs"].shape[0] == saved["action_mask"].shape[0] >= 1010 and saved["action_mask"].shape[1] == 6
    # the files re-checked: each recognises its mask input
    assert export.verify_onnx(agent, tmp / "masked" / "policy.onnx") <= 1e-5
    assert export.verify_tflite(agent, tmp / "masked" / "policy.tflite") <= 1e-5
    if HAVE_CC:
        assert export.verify_c(agent, tmp / "masked" / "c") <= 1e-5
        assert "const float action_mask[POLICY_MASK_SIZE]" in (tmp / "masked" / "c" / "policy.h").read_text()
        assert "action_mask" not in (tmp / "plain" / "c" / "policy.c").read_text()


def _onnx_meta(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map


def _taxi_feeds(n, masks, seed=0):
    rng = np.random.default_rng(seed)
    noise = rng.random((n, 6), dtype=np.float32)
    noise[:7] = 0.0  # u = 0: the Gumbel noise's lowest value
    return {"obs": rng.integers(0, 500, n).astype(np.float32), "action_mask": masks, "noise": noise}  # Discrete(500): [B]


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "c"])
def test_an_all_ones_mask_gives_the_unmasked_files_outputs_bit_for_bit(taxi, fmt):
    agent, tmp, _ = taxi
    if fmt == "c" and not HAVE_CC:
        pytest.skip("no C compiler")
    feeds = _taxi_feeds(300, np.ones((300, 6), np.float32))
    run = {"onnx": lambda d: _onnx(d / "policy.onnx", feeds), "tflite": lambda d: _tflite(d / "policy.tflite", feeds),
           "c": lambda d: _c(d / "c", agent, feeds, d.name == "masked")}[fmt]
    masked, plain = run(tmp / "masked"), run(tmp / "plain")
    assert set(masked) == set(plain)
    for name in plain:
        assert masked[name].dtype == plain[name].dtype and np.array_equal(masked[name], plain[name]), name


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "c"])
def test_masked_actions_are_the_argmax_and_gumbel_max_over_the_valid_actions(taxi, fmt):
    """Against NumPy written here: the unmasked file's logits, invalid ones removed."""
    agent, tmp, _ = taxi
    if fmt == "c" and not HAVE_CC:
        pytest.skip("no C compiler")
    feeds = _taxi_feeds(400, _random_masks(np.random.default_rng(1), 400, [6]), seed=2)
    run = {"onnx": lambda d: _onnx(d / "policy.onnx", feeds), "tflite": lambda d: _tflite(d / "policy.tflite", feeds),
           "c": lambda d: _c(d / "c", agent, feeds, d.name == "masked")}[fmt]
    got, logits = run(tmp / "masked"), run(tmp / "plain")["logits"].astype(np.float64)
    valid = feeds["action_mask"] > 0.5
    u = feeds["noise"].astype(np.float64)
    gumbel = -np.log(-np.log(u + 1e-20) + 1e-20)
    assert np.array_equal(np.asarray(got["action"]).reshape(-1), np.where(valid, logits, -np.inf).argmax(1))
    assert np.array_equal(np.asarray(got["sampled_action"]).reshape(-1), np.where(valid, logits + gumbel, -np.inf).argmax(1))
    assert np.all(valid[np.arange(400), np.asarray(got["sampled_action"]).reshape(-1)])
    assert np.array_equal(got["logits"] == -1e9, ~valid)  # the masked distribution's logits


@needs_cortex_m4
def test_the_masked_c_policy_on_an_emulated_cortex_m4_matches_onnxruntime(taxi, capsys):
    from keras_trpo_serving.edge import cortex_m4

    _, tmp, _ = taxi
    d = tmp / "masked"
    rc = cortex_m4.main(["--c", str(d / "c"), "--onnx", str(d / "policy.onnx"), "--obs", str(d / "observations.npz"),
                         "--n", "120", "--count", "1"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and summary["ok"] and summary["masked"] and summary["actions_differing"] == 0
    assert summary["params_bit_identical"] == summary["params_total"] == 120 * 6


@pytest.fixture(scope="module")
def families(tmp_path_factory):
    """JointLimits-v0 (MultiDiscrete), MaskedBits-v0 (MultiBinary), JointLimitsMemory-v0 (LSTM): each
    exported stochastic to ONNX, .tflite and C, verified."""
    out = {}
    for env_id, extra in (("JointLimits-v0", {}), ("MaskedBits-v0", {}),
                          ("JointLimitsMemory-v0", dict(recurrent="lstm", recurrent_units=8, recurrent_sequence_length=32))):
        tmp = tmp_path_factory.mktemp(env_id.split("-")[0])
        agent = keras_trpo.TRPO(env_id, seed=2, n_steps=64, **SMALL, **extra)
        agent.fit(64, verbose=0)
        reports = {"onnx": export.to_onnx(agent, tmp / "p.onnx", stochastic=True),
                   "tflite": export.to_tflite(agent, tmp / "p.tflite", stochastic=True)}
        if HAVE_CC:
            reports["c"] = export.to_c(agent, tmp / "c")
        out[env_id] = agent, tmp, reports
    return out


@pytest.mark.parametrize("env_id", ["JointLimits-v0", "MaskedBits-v0", "JointLimitsMemory-v0"])
def test_every_masked_family_verified_with_the_envs_masks(families, env_id):
    agent, _, reports = families[env_id]
    width = {"JointLimits-v0": 9, "MaskedBits-v0": 6, "JointLimitsMemory-v0": 9}[env_id]
    assert agent.masked and agent.mask_width == width
    for fmt, r in reports.items():
        assert r.invalid_actions == 0 and r.verified_episodes >= 10, fmt
        assert r.sampled_worst_difference == 0.0 and r.sampler_min_p_value >= 1e-3 / r.sampler_tests, fmt
        assert json.loads(r.metadata["action_mask"])["shape"] == [width], fmt
        assert r.metadata["inputs"].startswith("obs,action_mask,noise"), fmt
    micro = reports["tflite"]
    if micro.micro_skipped is None:  # tflite-micro installed: the masked file ran there too, same actions
        assert micro.micro_verified_observations == reports["tflite"].verified_observations
        assert micro.micro_sampled_worst_difference == 0.0
    if env_id == "JointLimitsMemory-v0":
        assert reports["onnx"].metadata["inputs"] == "obs,action_mask,noise,state_in"


def test_a_forced_bit_is_set_whatever_the_noise(families):
    """MultiBinary: a bit that may only be 0 stays 0 at u = 0 (logistic noise -inf, below even -1e9),
    one that may only be 1 is 1 at u -> 1; a free bit follows the unmasked sample."""
    agent, tmp, _ = families["MaskedBits-v0"]
    n = 6
    rng = np.random.default_rng(3)
    obs = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
    zero, one, free = [1, 0], [0, 1], [1, 1]
    masks = np.array([zero * 3, one * 3, free * 3, zero + one + free, free + zero + one, one + free + zero], np.float32)
    for u in (0.0, np.float32(1 - 2 ** -24)):
        feeds = {"obs": obs, "action_mask": masks, "noise": np.full((n, 3), u, np.float32)}
        results = [_onnx(tmp / "p.onnx", feeds), _tflite(tmp / "p.tflite", feeds)]
        if HAVE_CC:
            results.append(_c(tmp / "c", agent, feeds, True))
        pairs = masks.reshape(n, 3, 2)
        forced = pairs[..., 0] != pairs[..., 1]
        for got in results:
            bits = np.asarray(got["sampled_action"]).reshape(n, 3)
            assert np.array_equal(bits[forced], pairs[..., 1][forced])
            assert np.all(bits[~forced] == (1 if u == 0.0 else 0))  # free bits: u = 0 -> 1, u -> 1 -> 0
            assert np.array_equal(np.asarray(got["action"]).reshape(n, 3)[forced], pairs[..., 1][forced])


def test_export_options_and_refusals(taxi, tmp_path):
    agent, _, _ = taxi
    desc = export.describe(agent)
    assert desc.mask_width == 6 and export.describe(agent, action_mask=False).mask_width is None
    with pytest.raises(ExportError, match="quantize.*action_mask"):
        export.to_onnx(agent, tmp_path / "q.onnx", quantize="dynamic-int8")
    box = keras_trpo.TRPO("Pendulum-v1", n_steps=64, n_envs=1, jit_compile=False)
    with pytest.raises(ExportError, match="diag_gaussian actions cannot be masked"):
        export.to_onnx(box, tmp_path / "b.onnx", action_mask=True)


def test_a_graph_that_ignores_the_mask_fails_the_export(taxi, tmp_path, monkeypatch):
    """The serving graph is checked against the NumPy rule; a file that ignores the mask is caught."""
    from keras_trpo.export import graph

    agent, _, _ = taxi
    monkeypatch.setattr(graph, "masked_params", lambda desc, params, mask: params)
    with pytest.raises((ExportError, ExportVerificationError), match="mask"):
        export.to_onnx(agent, tmp_path / "p.onnx")


@needs_cortex_m4
def test_the_masked_recurrent_c_policy_on_an_emulated_cortex_m4_matches_onnxruntime(families, tmp_path, capsys):
    """JointLimitsMemory-v0's LSTM stepped through env episodes under the env's masks on the board, against
    the .onnx file stepped on this machine carrying its own state."""
    from keras_trpo.export.observations import default_inputs
    from keras_trpo_serving.edge import cortex_m4_recurrent

    agent, tmp, _ = families["JointLimitsMemory-v0"]
    episodes = default_inputs(export.describe(agent))  # 10 env episodes side by side, with the env's masks
    lane = 0
    obs, starts, masks = episodes.observations[:, lane], episodes.starts[:, lane], episodes.masks[:, lane]
    s = ort.InferenceSession(str(tmp / "p.onnx"), providers=["CPUExecutionProvider"])
    state, rows = np.zeros((1, agent.state_size), np.float32), []
    for t in range(len(obs)):
        state = state * (not starts[t])
        out = dict(zip(["action", "logits", "state_out"], s.run(["action", "logits", "state_out"], {
            "obs": obs[t:t + 1], "action_mask": masks[t:t + 1].astype(np.float32), "state_in": state,
            "noise": np.full((1, 9), 0.5, np.float32)})))
        rows.append(out)
        state = out["state_out"]
    ref = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    np.savez(tmp_path / "steps.npz", obs=obs, episode_start=starts, action_mask=masks.astype(np.float32),
             action=ref["action"], params=ref["logits"], state_out=ref["state_out"])
    rc = cortex_m4_recurrent.main(["--c", str(tmp / "c"), "--episodes", str(tmp_path / "steps.npz"), "--count", "1"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and summary["ok"] and summary["masked"] and summary["actions_differing"] == 0
    assert summary["steps"] == len(obs) and summary["episodes"] >= 1


def test_the_unmasked_file_verifies_on_the_masked_files_inputs(taxi):
    """Inputs with masks given to a file without a mask input: the masks are left out (all valid)."""
    from keras_trpo.export.observations import MaskedObservations

    agent, tmp, _ = taxi
    obs = np.arange(0, 500, 5, dtype=np.float32)
    inputs = MaskedObservations(obs, _random_masks(np.random.default_rng(4), len(obs), [6]) > 0.5)
    assert export.verify_onnx(agent, tmp / "plain" / "policy.onnx", inputs) <= 1e-5
    assert export.verify_onnx(agent, tmp / "masked" / "policy.onnx", inputs) <= 1e-5
