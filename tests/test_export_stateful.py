"""export/ for recurrent and Dict-observation policies: ONNX, ORT and .tflite (LiteRT and TensorFlow
Lite Micro) against the agent's own NumPy actor over episodes, the verification catching a file
that loses its state, the graph contract (input names, metadata) and the refusals."""
import json

import gymnasium as gym
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from keras_trpo import export
import keras_trpo
from keras_trpo.export import ExportError, ExportVerificationError, describe
from keras_trpo.export.observations import Episodes, sample_episodes
from keras_trpo.export.verify import verify_file
from keras_trpo.spaces import space_from_json
from tests.envs import ToyEnv

BOX_ACTIONS = gym.spaces.Box(np.array([-1, -0.5], np.float32), np.array([1, 2], np.float32))
DICT_OBS = gym.spaces.Dict({"pos": gym.spaces.Box(-2, 2, (3,), np.float32), "mode": gym.spaces.Discrete(3)})
# (cell, env): an LSTM with Box actions on a toy env without an env id (verified on sampled
# sequences with random episode starts), a GRU with Discrete actions on CartPoleNoVel (10 episodes).
RECURRENT = {"lstm_box": "lstm", "gru_discrete": "gru"}


def _recurrent_agent(kind: str):
    common = dict(seed=1, recurrent=RECURRENT[kind], recurrent_units=6, hidden_sizes=(8,), n_envs=1, n_steps=32,
                  normalize_obs=True, jit_compile=False)
    if kind == "lstm_box":
        agent = keras_trpo.TRPO(lambda: ToyEnv(gym.spaces.Box(-np.inf, np.inf, (4,), np.float32), BOX_ACTIONS), **common)
    else:
        agent = keras_trpo.TRPO("CartPoleNoVel-v1", **common)
    agent.fit(32, verbose=0)  # moves the normaliser's statistics (and the weights) off their initial values
    return agent


@pytest.fixture(scope="module", params=sorted(RECURRENT))
def recurrent(request, tmp_path_factory):
    """One agent per cell exported to ONNX, ORT and .tflite (with the TFLite Micro check)."""
    agent = _recurrent_agent(request.param)
    d = tmp_path_factory.mktemp(request.param)
    reports = {"onnx": export.to_onnx(agent, d / "p.onnx"), "ort": export.to_ort(agent, d / "p.ort"),
               "tflite": export.to_tflite(agent, d / "p.tflite")}
    return request.param, agent, d, reports


def _ort_step(session):
    names = [o.name for o in session.get_outputs()]
    return lambda feeds: dict(zip(names, session.run(names, feeds)))


def _walk(agent, step, episodes: Episodes):
    """``step`` (feeds -> outputs) through ``episodes`` carrying its own state, against the agent's
    NumPy actor (``agent.predict`` with ``state`` and ``episode_start``): an independent computation."""
    state_file = state_agent = None
    worst = 0.0
    for t in range(episodes.steps):
        starts = episodes.starts[t]
        obs = episodes.observations[t]
        action, state_agent = agent.predict(obs, state_agent, starts)
        state_in = np.zeros((episodes.lanes, agent.state_size), np.float32) if state_file is None else \
            np.where(starts[:, None], np.float32(0), state_file).astype(np.float32)
        out = step({"obs": obs, "state_in": state_in})
        state_file = out["state_out"]
        np.testing.assert_allclose(state_file, state_agent, atol=1e-5)
        if agent.family.name == "diag_gaussian":
            np.testing.assert_allclose(out["action"], action, atol=1e-5)
        else:
            np.testing.assert_array_equal(out["action"], action)
        worst = max(worst, float(np.max(np.abs(state_file - state_agent))))
    return worst


def test_reports_verify_episodes_on_every_format(recurrent):
    kind, agent, d, reports = recurrent
    for fmt, r in reports.items():
        assert r.worst_difference <= 1e-5, fmt
        if kind == "gru_discrete":  # the env's episodes: 10 lanes, each until its first episode ends
            assert r.verified_episodes >= 10 and r.verified_observations >= 10 * 8, fmt
        else:  # sampled sequences: 8 lanes of 64 steps with random episode starts
            assert r.verified_observations == 8 * 64 and r.verified_episodes > 8, fmt
    micro = reports["tflite"]
    try:
        import tflite_micro  # noqa: F401
    except ImportError:
        pytest.skip("tflite-micro is not installed")
    assert micro.micro_skipped is None and micro.micro_worst_difference <= 1e-5
    assert micro.micro_verified_observations == micro.verified_observations


def test_onnx_and_ort_files_step_like_the_agents_actor(recurrent):
    kind, agent, d, _ = recurrent
    episodes = sample_episodes(describe(agent), lanes=3, steps=40, seed=7)
    for name in ("p.onnx", "p.ort"):
        session = ort.InferenceSession(str(d / name), providers=["CPUExecutionProvider"])
        assert [(i.name, i.shape[1:]) for i in session.get_inputs()] == [
            ("obs", list(agent.observation_space.shape)), ("state_in", [agent.state_size])]
        assert [o.name for o in session.get_outputs()][-1] == "state_out"
        _walk(agent, _ort_step(session), episodes)


def test_tflite_steps_like_the_agents_actor_in_litert_and_micro(recurrent):
    from ai_edge_litert import interpreter

    kind, agent, d, reports = recurrent
    episodes = sample_episodes(describe(agent), lanes=2, steps=30, seed=8)
    runner = interpreter.Interpreter(model_path=str(d / "p.tflite")).get_signature_runner("serving_default")
    _walk(agent, lambda feeds: runner(**feeds), episodes)
    ops = set(reports["tflite"].micro_operators)
    assert "WHILE" not in ops and "REDUCE_PROD" not in ops  # one step, no loop; Dense layers stay 2-D
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        pytest.skip("tflite-micro is not installed")
    from keras_trpo.export.tflm import input_names, output_names

    data = (d / "p.tflite").read_bytes()
    ins, outs = input_names(data), output_names(data)
    it = runtime.Interpreter.from_file(str(d / "p.tflite"), arena_size=reports["tflite"].micro_arena_bytes)

    def micro(feeds):  # batch 1 per invoke, as on a microcontroller
        rows = []
        for i in range(len(feeds["obs"])):
            for k, n in enumerate(ins):
                it.set_input(np.ascontiguousarray(feeds[n][i:i + 1], np.float32), k)
            it.invoke()
            rows.append([np.array(it.get_output(k))[0] for k in range(len(outs))])
        return {n: np.stack([r[k] for r in rows]) for k, n in enumerate(outs)}
    _walk(agent, micro, episodes)


def test_onnx_graph_has_no_loop_and_the_metadata_describes_the_state(recurrent):
    kind, agent, d, reports = recurrent
    model = onnx.load(str(d / "p.onnx"))
    assert not {"Loop", "Scan"} & {n.op_type for n in model.graph.node}
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["inputs"] == "obs,state_in"
    assert meta["recurrent"] == RECURRENT[kind]
    assert meta["state_size"] == str(agent.state_size) == str(6 * (2 if kind == "lstm_box" else 1))
    assert meta["state_reset"] == "zeros at an episode start"
    assert meta["outputs"] == ",".join(("action",) + agent.family.param_names + ("state_out",))
    from keras_trpo.export.tflite import read_metadata
    tmeta = read_metadata((d / "p.tflite").read_bytes())
    assert {k: tmeta[k] for k in ("inputs", "recurrent", "state_size", "state_reset", "outputs")} == \
        {k: meta[k] for k in ("inputs", "recurrent", "state_size", "state_reset", "outputs")}


def test_episode_verification_catches_a_file_that_drops_its_state(recurrent):
    """A check that cannot fail is a defect: the right file fed zeros instead of its own state fails,
    naming the episode and step; the same file fed properly passes."""
    from keras_trpo.export.onnx_export import onnx_runner

    kind, agent, d, _ = recurrent
    episodes = sample_episodes(describe(agent), lanes=2, steps=20, seed=3, start_rate=0.05)
    run = onnx_runner(d / "p.onnx")
    desc = describe(agent)
    assert verify_file(desc, run, "ok", inputs=episodes).worst_difference <= 1e-5

    def forgetful(feeds):
        return run(dict(feeds, state_in=np.zeros_like(feeds["state_in"])))
    with pytest.raises(ExportVerificationError, match=r"forgetful: .* at episode \d+, step [1-9]\d*"):
        verify_file(desc, forgetful, "forgetful", inputs=episodes)


def test_a_corrupted_recurrent_weight_fails_verify_onnx(recurrent, tmp_path):
    kind, agent, d, _ = recurrent
    model = onnx.load(str(d / "p.onnx"))
    gates = 4 if RECURRENT[kind] == "lstm" else 3
    # [units, gates * units]: only the recurrent kernel has that shape in these small nets
    recurrent_kernel, = [i for i in model.graph.initializer if list(i.dims) == [6, gates * 6]]
    w = onnx.numpy_helper.to_array(recurrent_kernel).copy()
    w[0, 0] += 0.5  # changes the state only from the second step of an episode on
    recurrent_kernel.CopyFrom(onnx.numpy_helper.from_array(w, recurrent_kernel.name))
    onnx.save(model, str(tmp_path / "bad.onnx"))
    with pytest.raises(ExportVerificationError, match=r"at episode \d+, step \d+"):
        export.verify_onnx(agent, tmp_path / "bad.onnx")
    assert export.verify_onnx(agent, d / "p.onnx") <= 1e-5


def test_stochastic_recurrent_files_sample_like_the_agent(tmp_path):
    agent = _recurrent_agent("lstm_box")
    for r in (export.to_onnx(agent, tmp_path / "s.onnx", stochastic=True),
              export.to_tflite(agent, tmp_path / "s.tflite", stochastic=True)):
        assert r.stochastic and r.worst_difference <= 1e-5 and r.sampled_worst_difference <= 1e-5
        assert r.sampler_tests > 0
        assert r.metadata["inputs"] == "obs,noise,state_in"
        assert r.metadata["outputs"] == "action,mean,log_std,sampled_action,state_out"
    session = ort.InferenceSession(str(tmp_path / "s.onnx"), providers=["CPUExecutionProvider"])
    obs = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    noise = np.random.default_rng(1).normal(size=(3, 2)).astype(np.float32)
    out = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, {"obs": obs, "noise": noise, "state_in": np.zeros((3, 12), np.float32)})))
    dist = agent.distribution(obs, episode_start=np.ones(3, bool))
    expected = np.clip(dist.mean().numpy() + dist.stddev().numpy() * noise, BOX_ACTIONS.low, BOX_ACTIONS.high)
    np.testing.assert_allclose(out["sampled_action"], expected, atol=1e-5)


# ------------------------------------------------------------------ Dict observations


@pytest.fixture(scope="module")
def dict_agent():
    agent = keras_trpo.TRPO(lambda: ToyEnv(DICT_OBS, gym.spaces.Discrete(3)), seed=2, n_envs=1, n_steps=32,
                            hidden_sizes=(8,), normalize_obs=True, value_epochs=1, jit_compile=False)
    agent.fit(32, verbose=0)
    return agent


def _dict_obs(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"mode": rng.integers(0, 3, n).astype(np.float32), "pos": rng.uniform(-2, 2, (n, 3)).astype(np.float32)}


def test_dict_policy_takes_one_input_per_key_on_every_format(dict_agent, tmp_path):
    from ai_edge_litert import interpreter

    reports = {"onnx": export.to_onnx(dict_agent, tmp_path / "d.onnx"), "ort": export.to_ort(dict_agent, tmp_path / "d.ort"),
               "tflite": export.to_tflite(dict_agent, tmp_path / "d.tflite"),
               "saved_model": export.to_saved_model(dict_agent, tmp_path / "sm")}
    for fmt, r in reports.items():
        assert r.worst_difference <= 1e-5 and r.verified_observations == 1000, fmt
        assert r.metadata["inputs"] == "mode,pos" and r.metadata["recurrent"] == "" and r.metadata["state_size"] == "0"
    space = space_from_json(json.loads(reports["onnx"].metadata["observation_space"]))
    assert isinstance(space, gym.spaces.Dict) and sorted(space.spaces) == ["mode", "pos"]
    # the Discrete key's one-hot is SUB/ABS/RELU, not ONE_HOT (no TFLite Micro kernel): it runs there too
    assert reports["tflite"].micro_skipped is None and reports["tflite"].micro_worst_difference <= 1e-5
    obs = _dict_obs(200, 4)
    expected = dict_agent.predict(obs)
    for name in ("d.onnx", "d.ort"):
        session = ort.InferenceSession(str(tmp_path / name), providers=["CPUExecutionProvider"])
        assert [(i.name, i.shape[1:]) for i in session.get_inputs()] == [("mode", []), ("pos", [3])]
        out = dict(zip([o.name for o in session.get_outputs()], session.run(None, obs)))
        np.testing.assert_array_equal(out["action"], expected)
        np.testing.assert_allclose(out["logits"], dict_agent.distribution(obs).logits.numpy(), atol=1e-5)
    runner = interpreter.Interpreter(model_path=str(tmp_path / "d.tflite")).get_signature_runner("serving_default")
    np.testing.assert_array_equal(runner(**obs)["action"], expected)


@pytest.mark.parametrize("key", ["obs", "noise", "state_in", "state_out", "action", "logits", "2d", "has space", "dash-key"])
def test_dict_keys_that_cannot_name_an_input_are_refused(key, tmp_path):
    space = gym.spaces.Dict({key: gym.spaces.Box(-1, 1, (2,), np.float32), "ok": gym.spaces.Discrete(2)})
    agent = keras_trpo.TRPO(lambda: ToyEnv(space, gym.spaces.Discrete(2)), seed=0, n_envs=1, n_steps=32,
                            hidden_sizes=(4,), jit_compile=False)
    for write in (lambda: export.to_onnx(agent, tmp_path / "p.onnx"), lambda: export.to_tflite(agent, tmp_path / "p.tflite"),
                  lambda: export.to_saved_model(agent, tmp_path / "sm")):
        with pytest.raises(ExportError, match=f"key {key!r}"):
            write()
    assert not any(tmp_path.iterdir())


def test_feed_forward_metadata_and_the_quantize_refusal(dict_agent, tmp_path):
    agent = keras_trpo.TRPO(lambda: ToyEnv(), seed=0, n_envs=1, n_steps=32, hidden_sizes=(4,), jit_compile=False)
    meta = export.to_onnx(agent, tmp_path / "ff.onnx").metadata
    assert (meta["inputs"], meta["recurrent"], meta["state_size"], meta["state_reset"]) == ("obs", "", "0", "")
    assert meta["outputs"] == "action,logits"
    gru = keras_trpo.TRPO("CartPoleNoVel-v1", seed=0, recurrent="gru", recurrent_units=4, n_envs=1, n_steps=32,
                          jit_compile=False)
    with pytest.raises(ExportError, match="quantize.*feed-forward"):
        export.to_onnx(gru, tmp_path / "q.onnx", quantize="dynamic-int8")
    assert not (tmp_path / "q.onnx").exists()  # (the C export takes both: tests/test_export_c_stateful.py)


def test_recurrent_core_one_step_shortcut_is_the_loops_first_step():
    import tensorflow as tf

    from keras_trpo.layers import RecurrentCore

    for cell in ("lstm", "gru"):
        core = RecurrentCore(cell, 5, ortho_init=False, seed=3)
        rng = np.random.default_rng(0)
        x = tf.constant(rng.normal(size=(4, 2, 3)), tf.float32)
        starts = tf.constant([[1, 0], [0, 0], [1, 1], [0, 1]], tf.float32)
        state = tf.constant(rng.normal(size=(4, core.state_size)), tf.float32)
        _, loop_states, _ = core([x, starts, state])  # T = 2: tf.scan
        h, one_states, final = core([x[:, :1], starts[:, :1], state])  # T = 1: the shortcut
        np.testing.assert_allclose(one_states[:, 0], loop_states[:, 0], atol=1e-6)
        np.testing.assert_allclose(final, loop_states[:, 0], atol=1e-6)
        np.testing.assert_allclose(h[:, 0], loop_states[:, 0, :5], atol=1e-6)
        assert tuple(h.shape) == (4, 1, 5) and tuple(one_states.shape) == (4, 1, core.state_size)


def test_recurrent_dict_policy_takes_each_key_and_the_state(tmp_path):
    """A recurrent Dict policy (PointGoal with a Discrete goal key, LSTM): per-key inputs and
    state_in, stepped through episodes like the agent's NumPy actor."""
    from tests.goal_envs import PointGoalEnv

    agent = keras_trpo.TRPO(lambda: PointGoalEnv(discrete_goal=True), seed=0, recurrent="lstm", recurrent_units=6,
                            hidden_sizes=(8,), n_envs=1, n_steps=32, jit_compile=False)
    keys = list(agent.obs_keys)
    reports = [export.to_onnx(agent, tmp_path / "rd.onnx"), export.to_tflite(agent, tmp_path / "rd.tflite"),
               export.to_onnx(agent, tmp_path / "rds.onnx", stochastic=True)]
    for r in reports:
        assert r.worst_difference <= 1e-5 and r.verified_episodes > 8
    assert reports[0].metadata["inputs"] == ",".join(keys + ["state_in"])
    assert reports[2].metadata["inputs"] == ",".join(keys + ["noise", "state_in"])
    assert reports[2].sampled_worst_difference <= 1e-5
    assert reports[1].micro_skipped is None and reports[1].micro_worst_difference <= 1e-5  # TFLite Micro runs it
    session = ort.InferenceSession(str(tmp_path / "rd.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == keys + ["state_in"]
    layout = agent.observation_space
    episodes = sample_episodes(describe(agent), lanes=2, steps=25, seed=5, start_rate=0.1)
    from keras_trpo.dict_obs import layout_of
    split = layout_of(layout).split
    state_file = np.zeros((2, agent.state_size), np.float32)
    state_agent = None
    for t in range(episodes.steps):
        per_key = split(episodes.observations[t])
        action, state_agent = agent.predict(per_key, state_agent, episodes.starts[t])
        state_in = np.where(episodes.starts[t][:, None], np.float32(0), state_file).astype(np.float32)
        out = dict(zip([o.name for o in session.get_outputs()],
                       session.run(None, dict({k: np.ascontiguousarray(v) for k, v in per_key.items()}, state_in=state_in))))
        state_file = out["state_out"]
        np.testing.assert_allclose(state_file, state_agent, atol=1e-5)
        np.testing.assert_allclose(out["action"], action, atol=1e-5)


def test_the_episode_reference_checks_the_one_step_graph_against_the_policy_model(recurrent, monkeypatch):
    """The reference every recurrent file is verified against comes from keras_trpo/export/graph.py's one-step walk of
    the model's layers; it is checked against the policy model itself at each step, so a walk that drifts
    from the model (a Keras change) fails the export instead of passing both sides."""
    import keras_trpo.export.reference as reference

    _, agent, _, _ = recurrent
    desc = describe(agent)
    episodes = sample_episodes(desc, lanes=2, steps=6, seed=3, start_rate=0.3)
    out = reference.agent_reference(desc, episodes)  # the real walk: within tolerance
    assert out["state_out"].shape == (6, 2, agent.state_size)
    real = reference.serving_runner

    def drifting(d):  # the same graph with every state_out off by 1e-3: what the next step's outputs see
        run = real(d)
        return lambda feeds: {k: v + np.float32(1e-3) if k == "state_out" else v for k, v in run(feeds).items()}

    monkeypatch.setattr(reference, "serving_runner", drifting)
    with pytest.raises(ExportError, match=r"one-step serving graph .* differs from the agent's at episode \d+, "
                                          r"step 1 \(lane \d\), element \d+: .* > tolerance"):
        reference.agent_reference(desc, episodes)
