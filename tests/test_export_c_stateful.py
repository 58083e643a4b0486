"""keras_trpo.export.to_c for recurrent (LSTM, GRU) and Dict-observation policies: the compiled library stepped
through episodes against the agent's own NumPy actor, the Dict struct filled by field name from C,
the verification catching a library that carries its state wrongly, the generated API, the refusals."""
import ctypes
import os
import shutil
import subprocess

import gymnasium as gym
import numpy as np
import pytest

from keras_trpo import export
import keras_trpo
from keras_trpo.export import ExportError, ExportVerificationError
from keras_trpo.export.c_build import CLibrary, host_fma_flags
from keras_trpo.export.c_export import c_runner, verify_c
from keras_trpo.export.description import describe
from keras_trpo.export.observations import sample_episodes
from keras_trpo.export.verify import verify_file
from tests.envs import ToyEnv

if shutil.which(os.environ.get("CC", "cc").split()[0]) is None:
    pytest.skip("no C compiler (cc / $CC)", allow_module_level=True)

STRICT = ["-std=c99", "-O2", "-ffp-contract=off", "-Wall", "-Wextra", "-pedantic", "-Wshadow", "-Wdouble-promotion",
          "-Werror"]
BOX_ACTIONS = gym.spaces.Box(np.array([-1, -0.5], np.float32), np.array([1, 2], np.float32))
DICT_OBS = gym.spaces.Dict({"pos": gym.spaces.Box(-2, 2, (3,), np.float32), "mode": gym.spaces.Discrete(3)})
# kind -> (recurrent cell or None, observation space or an env id, action space)
KINDS = {
    "lstm_box": ("lstm", gym.spaces.Box(-np.inf, np.inf, (4,), np.float32), BOX_ACTIONS),
    "gru_discrete": ("gru", "CartPoleNoVel-v1", None),  # an env id: verified over 10 of its episodes
    "dict_ff": (None, DICT_OBS, gym.spaces.Discrete(3)),
    "dict_lstm": ("lstm", DICT_OBS, BOX_ACTIONS),
}


def _agent(kind: str):
    cell, obs, actions = KINDS[kind]
    common = dict(seed=1, hidden_sizes=(8,), n_envs=1, n_steps=32, normalize_obs=True, value_epochs=1,
                  jit_compile=False)
    if cell:
        common.update(recurrent=cell, recurrent_units=5)
    env = obs if isinstance(obs, str) else (lambda: ToyEnv(obs, actions))
    agent = keras_trpo.TRPO(env, **common)
    agent.fit(32, verbose=0)  # moves the weights and normaliser statistics off their initial values
    return agent


def _build(directory, out):
    """Our own strict build (warning-free, no float promoted to double) of the written files."""
    subprocess.run(["cc", *STRICT, "-shared", "-fPIC", "-o", str(out), str(directory / "policy.c"), "-lm"],
                   check=True, capture_output=True, text=True)
    return out


def _library(agent, lib):
    width = sum(int(np.prod(s.shape)) if s.shape else 1 for s in
                (agent.observation_space.spaces.values() if isinstance(agent.observation_space, gym.spaces.Dict)
                 else [agent.observation_space]))
    return CLibrary(lib, "policy", agent.family.name, width, int(np.prod(agent.action_space.shape or (1,))),
                    sum(agent.family.head_sizes.values()), int(getattr(agent, "state_size", 0) or 0))


@pytest.fixture(scope="module", params=sorted(KINDS))
def exported(request, tmp_path_factory):
    agent = _agent(request.param)
    directory = tmp_path_factory.mktemp(request.param) / "c"
    report = export.to_c(agent, directory)
    lib = _library(agent, _build(directory, tmp_path_factory.mktemp("build") / "libpolicy_test.so"))
    return request.param, agent, directory, report, lib


def _packed(agent, obs) -> np.ndarray:
    if isinstance(obs, dict):
        return np.concatenate([np.asarray(obs[k], np.float32).reshape(len(obs[k]), -1) for k in sorted(obs)], axis=1)
    return np.asarray(obs, np.float32)


def _user_obs(agent, packed: np.ndarray):
    """Packed observations -> what ``agent.predict`` takes (a dict of arrays for a Dict space)."""
    if not isinstance(agent.observation_space, gym.spaces.Dict):
        return packed
    return {"mode": packed[:, 0], "pos": packed[:, 1:4]}


def test_reports_verify_every_output(exported):
    kind, agent, directory, report, _ = exported
    assert sorted(os.listdir(directory)) == ["policy.c", "policy.h", "policy_weights.h"]
    assert report.worst_difference <= 1e-5 and report.stochastic and report.sampled_worst_difference <= 1e-5
    assert report.sampler_min_p_value > 1e-4 and report.prng_sampler_min_p_value > 1e-4
    if kind == "gru_discrete":  # the env's episodes: 10 lanes, each until its first episode ends
        assert report.verified_episodes >= 10
    elif KINDS[kind][0]:  # no env id: 8 lanes of 64 sampled steps with random episode starts
        assert report.verified_observations == 8 * 64 and report.verified_episodes > 8
    else:
        assert report.verified_episodes is None and report.verified_observations >= 1000


def test_library_steps_like_the_agents_numpy_actor(exported):
    """Independent of the harness: ``agent.predict`` (the NumPy actor, carrying its own state and
    resetting it at ``episode_start``) against the library carrying its own state_out."""
    kind, agent, _, _, lib = exported
    episodes = sample_episodes(describe(agent), lanes=3, steps=40, seed=7)
    state_c = state_agent = None
    worst = 0.0
    for t in range(episodes.steps):
        obs, starts = episodes.observations[t], episodes.starts[t]
        if lib.state_size:
            action, state_agent = agent.predict(_user_obs(agent, obs), state_agent, starts)
            state_in = np.zeros((3, lib.state_size), np.float32) if state_c is None else \
                np.where(starts[:, None], np.float32(0), state_c).astype(np.float32)
            got, state_c = lib.act(obs, state_in)
            np.testing.assert_allclose(state_c, state_agent, atol=1e-5)
            worst = max(worst, float(np.max(np.abs(state_c - state_agent))))
        else:
            action, got = agent.predict(_user_obs(agent, obs)), lib.act(obs)
        if agent.family.name == "diag_gaussian":
            np.testing.assert_allclose(got.reshape(action.shape), action, atol=1e-5)
        else:
            np.testing.assert_array_equal(got.reshape(action.shape), action)
    assert worst <= 1e-5


def test_state_out_may_be_state_in(exported):
    """The header promises in-place updates: ``NAME_act(obs, state, action, state)``."""
    kind, agent, _, _, lib = exported
    if not lib.state_size:
        pytest.skip("feed-forward")
    obs = sample_episodes(describe(agent), lanes=1, steps=12, seed=3).observations[:, 0]
    state = np.zeros(lib.state_size, np.float32)
    separate = np.zeros((1, lib.state_size), np.float32)
    f = getattr(lib._lib, "policy_act")
    for x in obs:
        x = np.ascontiguousarray(x, np.float32)
        action = np.zeros(lib.action_size, lib.action_dtype)
        f(x.ctypes.data, state.ctypes.data, action.ctypes.data, state.ctypes.data)
        expected, separate = lib.act(x[None], separate)
        np.testing.assert_array_equal(action, expected[0])
        np.testing.assert_array_equal(state, separate[0])
    assert np.any(state != 0)


def test_a_wrong_state_carry_fails_verification(exported):
    """The episode verification must catch a library stepped without its state, or carried across
    an episode start; the correct carry passes on the same episodes."""
    kind, agent, _, _, lib = exported
    if not lib.state_size:
        pytest.skip("feed-forward")
    desc = describe(agent)
    run = c_runner(lib, desc)
    episodes = sample_episodes(desc, lanes=4, steps=40, seed=11)
    assert verify_file(desc, run, "C", inputs=episodes).worst_difference <= 1e-5

    def stateless(feeds):
        return run(dict(feeds, state_in=np.zeros_like(feeds["state_in"])))

    with pytest.raises(ExportVerificationError, match=r"episode \d+, step [1-9]"):
        verify_file(desc, stateless, "C", inputs=episodes)

    carried = {}

    def no_reset(feeds):  # keeps its own state and ignores the zeros at episode starts
        state = carried.get("s", feeds["state_in"])
        out = run(dict(feeds, state_in=state))
        carried["s"] = out["state_out"]
        return out

    with pytest.raises(ExportVerificationError, match=r"episode \d+, step 0"):
        verify_file(desc, no_reset, "C", inputs=episodes)


def test_header_declares_the_state_and_the_dict_struct(exported):
    kind, agent, directory, report, lib = exported
    h = (directory / "policy.h").read_text()
    meta = report.metadata
    if lib.state_size:
        assert f"#define POLICY_STATE_SIZE {agent.state_size}" in h and "reset_state" in h
        assert "zeros: at EVERY episode start" in h
        assert "void policy_act(" + ("const policy_obs_t *obs" if kind.startswith("dict") else
                                     "const float obs[POLICY_OBS_SIZE]") + \
            ", const float state_in[POLICY_STATE_SIZE], policy_action_t action[POLICY_ACTION_SIZE], " \
            "float state_out[POLICY_STATE_SIZE]);" in h
        assert meta["state_size"] == str(agent.state_size) and meta["recurrent"] == KINDS[kind][0]
        state = np.full(lib.state_size, 7.0, np.float32)
        lib._lib.policy_reset_state(ctypes.c_void_p(state.ctypes.data))
        assert np.all(state == 0)
    else:
        assert "STATE_SIZE" not in h and "state_in" not in h
    if kind.startswith("dict"):
        assert "#define POLICY_OBS_MODE_SIZE 1" in h and "#define POLICY_OBS_MODE_N 3" in h
        assert "#define POLICY_OBS_POS_SIZE 3" in h and "#define POLICY_OBS_SIZE 4" in h
        assert h.index("    float mode;") < h.index("    float pos[POLICY_OBS_POS_SIZE];")  # sorted keys


DRIVER = r"""
#include <stdio.h>
#include "policy.h"
/* Reads lines "mode p0 p1 p2" and fills the struct BY NAME: prints the params after each step. */
int main(void)
{
    policy_obs_t obs;
    float params[POLICY_PARAMS_SIZE];
#ifdef POLICY_STATE_SIZE
    float state[POLICY_STATE_SIZE];
    policy_reset_state(state);
#endif
    while (scanf("%f %f %f %f", &obs.mode, &obs.pos[0], &obs.pos[1], &obs.pos[2]) == 4) {
        int i;
#ifdef POLICY_STATE_SIZE
        policy_params(&obs, state, params, state);  /* one step of one episode, the state in place */
#else
        policy_params(&obs, params);
#endif
        for (i = 0; i < POLICY_PARAMS_SIZE; ++i) printf("%.9g ", (double)params[i]);
        printf("\n");
    }
    return 0;
}
"""


def test_dict_struct_filled_by_field_name_from_c(exported, tmp_path):
    """A C program fills ``obs.mode`` and ``obs.pos`` by name (not the packed order the harness
    uses) and gets the agent's actions: one episode, the recurrent state updated in place."""
    kind, agent, directory, _, lib = exported
    if not kind.startswith("dict"):
        pytest.skip("Dict policies")
    (tmp_path / "main.c").write_text(DRIVER)
    for f in ("policy.h", "policy.c", "policy_weights.h"):
        shutil.copy(directory / f, tmp_path)
    exe = tmp_path / "driver"
    subprocess.run(["cc", *STRICT, "-o", str(exe), str(tmp_path / "main.c"), str(tmp_path / "policy.c"), "-lm"],
                   check=True, capture_output=True, text=True)
    rng = np.random.default_rng(5)
    obs = {"mode": rng.integers(0, 3, 50).astype(np.float32), "pos": rng.uniform(-2, 2, (50, 3)).astype(np.float32)}
    lines = "\n".join(f"{m:.9g} {p[0]:.9g} {p[1]:.9g} {p[2]:.9g}" for m, p in zip(obs["mode"], obs["pos"]))
    out = subprocess.run([str(exe)], input=lines, capture_output=True, text=True, check=True).stdout
    params = np.array([[float(v) for v in line.split()] for line in out.strip().splitlines()], np.float32)
    if kind == "dict_ff":
        np.testing.assert_allclose(params, agent.distribution(obs).logits.numpy(), atol=1e-5)
        assert np.all(np.argmax(params, 1) == agent.predict(obs))
        return
    state = None  # the agent through the same 50 steps as one episode
    for t in range(50):
        action, state = agent.predict({k: v[t:t + 1] for k, v in obs.items()}, state, np.array([t == 0]))
        np.testing.assert_allclose(np.clip(params[t, :2], BOX_ACTIONS.low, BOX_ACTIONS.high), action[0], atol=1e-5)


def test_verify_c_and_its_episode_argument(exported):
    kind, agent, directory, _, _ = exported
    if kind != "lstm_box":
        pytest.skip("one recurrent kind is enough")
    episodes = sample_episodes(describe(agent), lanes=2, steps=16, seed=4)
    assert verify_c(agent, directory, observations=episodes) <= 1e-5
    with pytest.raises(ExportError, match="Episodes"):
        export.to_c(agent, directory.parent / "c2", verify_observations=np.zeros((4, 4), np.float32))


def test_dict_keys_that_cannot_name_a_c_field_are_refused(tmp_path):
    for space, match in ((gym.spaces.Dict({"int": gym.spaces.Box(-1, 1, (2,), np.float32)}), "'int' is a C keyword"),
                         (gym.spaces.Dict({"a": gym.spaces.Discrete(2), "A": gym.spaces.Discrete(2)}), "same C size")):
        agent = keras_trpo.TRPO(lambda: ToyEnv(space, gym.spaces.Discrete(2)), seed=0, n_envs=1, n_steps=32,
                                hidden_sizes=(4,), jit_compile=False)
        with pytest.raises(ExportError, match=match):
            export.to_c(agent, tmp_path / "c")
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(not host_fma_flags(), reason="onnxruntime's MLAS kernels compared here are x86-64's FMA3 ones")
def test_recurrent_outputs_bit_identical_to_onnxruntime(exported, tmp_path):
    """The cell rounds as onnxruntime does (the layers' fmaf chains, ort_tanh, MLAS's logistic for
    the gates), so fed the same state_in each step the library's state_out and parameters equal
    the .onnx file's bit for bit, and the states the two carry on their own stay equal over the
    episodes. With ``1 / (1 + expf(-x))`` for the gates they differed by ~1e-7 at every step."""
    import onnxruntime as ort

    kind, agent, _, _, lib = exported
    if not lib.state_size:
        pytest.skip("feed-forward (tests/test_export_c.py checks the bits of the layers)")
    export.to_onnx(agent, tmp_path / "p.onnx", verify=False)
    session = ort.InferenceSession(str(tmp_path / "p.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    desc = describe(agent)
    run = c_runner(lib, desc)
    episodes = sample_episodes(desc, lanes=4, steps=40, seed=13)
    state_c = state_o = np.zeros((4, lib.state_size), np.float32)
    for t in range(episodes.steps):
        zero = episodes.starts[t][:, None]
        state_c = np.where(zero, np.float32(0), state_c).astype(np.float32)
        state_o = np.where(zero, np.float32(0), state_o).astype(np.float32)
        feeds = desc.feeds(episodes.observations[t], state_c)
        got = run(feeds)
        onnx = dict(zip(names, session.run(names, feeds)))
        for name in names:
            assert np.array_equal(got[name], onnx[name]), (t, name, np.max(np.abs(got[name] - onnx[name])))
        state_o = dict(zip(names, session.run(names, desc.feeds(episodes.observations[t], state_o))))["state_out"]
        state_c = got["state_out"]
        assert np.array_equal(state_c, state_o)
