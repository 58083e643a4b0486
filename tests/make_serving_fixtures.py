"""ONNX policies for keras_trpo_serving/tests, which cannot import TensorFlow. Needs the training venv.

  python tests/make_serving_fixtures.py                 # small policies -> keras_trpo_serving/tests/fixtures (committed)
  python tests/make_serving_fixtures.py --cartpole DIR  # a trained CartPole policy (what CI does): .onnx, .ort,
                                                        # .tflite, C (cartpole_c/), rollout observations
  python tests/make_serving_fixtures.py --ort           # ort_gaussian.ort, ort_discrete.ort -> keras_trpo_serving/tests/fixtures
  python tests/make_serving_fixtures.py --tflite        # litert_*.tflite (+ .npz) and broken_litert_*.tflite -> fixtures
  python tests/make_serving_fixtures.py --stochastic    # stochastic_NAME.onnx, .tflite, _c/ (+ .npz) -> fixtures
  python tests/make_serving_fixtures.py --recurrent     # recurrent_lstm, dict_ff, recurrent_dict (.onnx, .tflite, .npz)
  python tests/make_serving_fixtures.py --pointgoal     # recurrent_pointgoal (.onnx, .ort, .tflite; 10 episodes in .npz)

Each policy NAME comes as NAME.onnx plus NAME.npz with observations and the agent's own
outputs for them (action, logits or mean/log_std), which the serving tests compare against.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

from keras_trpo import export  # noqa: E402
import keras_trpo  # noqa: E402
from keras_trpo.export.observations import rollout_observations, verification_observations  # noqa: E402
from tests.envs import ToyEnv  # noqa: E402


SMALL = {
    "discrete": (gym.spaces.Box(-5, 5, (4,), np.float32), gym.spaces.Discrete(3, start=1)),
    "gaussian": (gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
                 gym.spaces.Box(np.array([-1, -0.5], np.float32), np.array([1, 2], np.float32))),
    "multidiscrete": (gym.spaces.Box(-1, 1, (5,), np.float32), gym.spaces.MultiDiscrete([3, 2])),
    "discrete_obs": (gym.spaces.Discrete(6), gym.spaces.Discrete(2)),
}


def write(agent, out_dir: str, name: str, n_obs: int, seed: int = 1, fmt: str = "onnx") -> str:
    path = os.path.join(out_dir, f"{name}.{fmt}")
    if fmt == "ort":  # the operator config beside it is for building a runtime, not for the tests
        os.remove(export.to_ort(agent, path).operators_config_path)
    elif fmt == "tflite":
        export.to_tflite(agent, path)
    else:
        export.to_onnx(agent, path)
    obs = verification_observations(export.describe(agent), n_sampled=n_obs // 2, n_rollout=n_obs - n_obs // 2, seed=seed)
    dist = agent.policy_model(obs, training=False)
    np.savez(os.path.join(out_dir, f"{name}.npz"), obs=obs, action=agent.predict(obs, deterministic=True),
             **{k: v.numpy() for k, v in dist.items()})
    return path


# The four action families, for the stochastic fixtures.
STOCHASTIC = dict(SMALL, multibinary=(gym.spaces.Box(-1, 1, (4,), np.float32), gym.spaces.MultiBinary(3)))
del STOCHASTIC["discrete_obs"]


def small_agent(name: str, seed: int = 0):
    obs_space, act_space = STOCHASTIC[name]
    agent = keras_trpo.TRPO(lambda o=obs_space, a=act_space: ToyEnv(o, a), seed=seed, n_envs=1, n_steps=32,
                            hidden_sizes=(8,), normalize_obs=isinstance(obs_space, gym.spaces.Box),
                            value_epochs=1, jit_compile=False)
    agent.fit(64, verbose=0)  # moves weights and normaliser statistics off their initial values
    return agent


def small(out_dir: str) -> None:
    for name in SMALL:
        print("wrote", write(small_agent(name), out_dir, name, n_obs=64))


def ort_small(out_dir: str) -> None:
    """ort_gaussian.ort, ort_discrete.ort (+ .npz): ORT-format files from keras_trpo.export.to_ort."""
    for name in ("gaussian", "discrete"):
        print("wrote", write(small_agent(name, seed=1), out_dir, f"ort_{name}", n_obs=64, fmt="ort"))


def litert_small(out_dir: str) -> None:
    """litert_NAME.tflite (+ .npz) for every small policy, a static-int8 copy of the Gaussian one,
    and files LiteRtPolicy must refuse: no keras-trpo metadata, metadata that contradicts the graph."""
    from keras_trpo.export.tflite import read_metadata, with_metadata

    for name in SMALL:
        agent = small_agent(name, seed=2)
        print("wrote", write(agent, out_dir, f"litert_{name}", n_obs=64, fmt="tflite"))
        if name == "gaussian":
            print("wrote", export.to_tflite(agent, os.path.join(out_dir, "litert_gaussian.tflite"),
                                            quantize="static-int8").quantized_path)
    with open(os.path.join(out_dir, "litert_gaussian.tflite"), "rb") as f:
        model = f.read()
    meta = read_metadata(model)
    broken = {
        # a TFLite file like any other, without the export's metadata
        "no_metadata": with_metadata(model, None),
        # says Discrete(3) actions, but the graph has a Box policy's outputs
        "wrong_space": with_metadata(model, dict(meta, distribution="categorical",
                                                 action_space='{"type": "Discrete", "n": 3}')),
    }
    for kind, data in broken.items():
        path = os.path.join(out_dir, f"broken_litert_{kind}.tflite")
        with open(path, "wb") as f:
            f.write(data)
        print("wrote", path)


def stochastic_small(out_dir: str) -> None:
    """stochastic_NAME.onnx, .tflite and _c/ (one agent per action family, exported with the noise
    input) and stochastic_NAME.npz: observations, noise, and the agent's own sampled actions for
    them (keras_trpo's rollout sampler fed that noise), which serving's policies must reproduce."""
    from keras_trpo.export.noise import agent_sampled_action, draw_noise, noise_spec

    for name in STOCHASTIC:
        agent = small_agent(name, seed=4)
        base = os.path.join(out_dir, f"stochastic_{name}")
        export.to_onnx(agent, base + ".onnx", stochastic=True)
        export.to_tflite(agent, base + ".tflite", stochastic=True, micro=False)
        os.remove(base + ".micro_op_resolver.h")  # for microcontroller builds, not the tests
        export.to_c(agent, base + "_c")
        obs = verification_observations(export.describe(agent), n_sampled=32, n_rollout=32, seed=3)
        noise = draw_noise(noise_spec(agent), np.random.default_rng(5), len(obs))
        params = {k: v.numpy() for k, v in agent.policy_model(obs, training=False).items()}
        np.savez(base + ".npz", obs=obs, noise=noise, sampled_action=agent_sampled_action(agent, params, noise),
                 action=agent.predict(obs, deterministic=True), **params)
        print("wrote", base + ".onnx, .tflite, _c/, .npz")
    broken_stochastic(out_dir)


def broken_stochastic(out_dir: str) -> None:
    """Stochastic ONNX files OnnxPolicy must refuse: a noise input without the noise metadata, and
    metadata whose noise does not fit the action space."""
    import onnx

    model = onnx.load(os.path.join(out_dir, "stochastic_discrete.onnx"))
    props = {p.key: p.value for p in model.metadata_props}
    variants = {"no_noise_metadata": {k: v for k, v in props.items() if k != "noise"},
                "wrong_noise": dict(props, noise='{"distribution": "normal", "shape": [3], "dtype": "float32"}')}
    for kind, meta in variants.items():
        del model.metadata_props[:]
        onnx.helper.set_model_props(model, meta)
        path = os.path.join(out_dir, f"broken_stochastic_{kind}.onnx")
        onnx.save(model, path)
        print("wrote", path)


# Policies with state or one input per key (issue 19): (observation space, action space, recurrent cell).
STATEFUL = {
    "recurrent_lstm": (gym.spaces.Box(-2, 2, (3,), np.float32),
                       gym.spaces.Box(np.array([-1, -0.5], np.float32), np.array([1, 2], np.float32)), "lstm"),
    "dict_ff": (gym.spaces.Dict({"pos": gym.spaces.Box(-2, 2, (3,), np.float32), "mode": gym.spaces.Discrete(3)}),
                gym.spaces.Discrete(3), None),
    "recurrent_dict": (gym.spaces.Dict({"pos": gym.spaces.Box(-2, 2, (3,), np.float32), "mode": gym.spaces.Discrete(3)}),
                       gym.spaces.Box(-1, 1, (2,), np.float32), "lstm"),
}
STATEFUL_STEPS = 48


def stateful_small(out_dir: str) -> None:
    """NAME.onnx, NAME.tflite and NAME.npz for each of ``STATEFUL``: an episode-structured sequence
    (one lane, episodes starting at random) of observations per graph input (``obs`` or each Dict
    key, ``[N, ...]``), ``episode_start [N]`` bool and the agent's outputs per step (``action``,
    ``logits`` or ``mean``/``log_std``); a recurrent policy also ``state [N, S]`` (the state before
    each step: zeros at a start, else the previous step's ``state_out``) and ``state_out [N, S]``.
    The outputs are the agent's serving function stepped with its own state (keras_trpo/export/reference.py)."""
    from keras_trpo.export.observations import sample_episodes
    from keras_trpo.export.reference import agent_reference

    for name, (obs_space, act_space, cell) in STATEFUL.items():
        agent = keras_trpo.TRPO(lambda o=obs_space, a=act_space: ToyEnv(o, a), seed=6, n_envs=1, n_steps=32,
                                hidden_sizes=(8,), normalize_obs=True, value_epochs=1, jit_compile=False,
                                recurrent=cell, recurrent_units=4)
        agent.fit(32, verbose=0)  # moves weights and normaliser statistics off their initial values
        base = os.path.join(out_dir, name)
        export.to_onnx(agent, base + ".onnx")
        export.to_tflite(agent, base + ".tflite")
        os.remove(base + ".micro_op_resolver.h")  # for microcontroller builds, not the tests
        desc = export.describe(agent)
        episodes = sample_episodes(desc, lanes=1, steps=STATEFUL_STEPS, seed=9, start_rate=0.15)
        flat = episodes.observations[:, 0]
        if cell:
            out = {k: v[:, 0] for k, v in agent_reference(desc, episodes).items()}
            out["state"] = out.pop("state_in")
        else:
            out = agent_reference(desc, flat)
        np.savez(base + ".npz", episode_start=episodes.starts[:, 0], **desc.feeds(flat), **out)
        print("wrote", base + ".onnx, .tflite, .npz")


POINTGOAL_EPISODES = 10


def pointgoal(out_dir: str) -> None:
    """``recurrent_pointgoal``: a recurrent (LSTM 16) Dict agent trained on ``tests.goal_envs.PointGoalEnv``
    with the Discrete goal (keys ``achieved_goal``, ``desired_goal``, ``observation``), as .onnx, .ort and
    .tflite, and ``recurrent_pointgoal.npz``: ``POINTGOAL_EPISODES`` whole episodes (env seeds 0, 1, ...)
    played by the agent's own ``predict(obs, state, episode_start)``, deterministic, one step per row:
    the observations per key, ``episode_start [N]``, ``episode [N]``, the agent's ``action [N, 2]``, the
    state before each step ``state [N, S]`` and after it ``state_out [N, S]``. What the serving tests replay,
    by the Python policies and through the HTTP server with the state in the request (issue 19's
    acceptance: whole episodes, state carried and reset)."""
    from tests.goal_envs import PointGoalEnv

    agent = keras_trpo.TRPO(lambda: PointGoalEnv(discrete_goal=True), seed=0, n_steps=1024, gamma=0.95,
                            normalize_obs=True, jit_compile=False, recurrent="lstm", recurrent_units=16,
                            recurrent_sequence_length=32)
    agent.fit(10_240, verbose=0)
    base = os.path.join(out_dir, "recurrent_pointgoal")
    export.to_onnx(agent, base + ".onnx")
    os.remove(export.to_ort(agent, base + ".ort").operators_config_path)
    export.to_tflite(agent, base + ".tflite")
    os.remove(base + ".micro_op_resolver.h")  # for microcontroller builds, not the tests
    env = PointGoalEnv(discrete_goal=True)
    rows: dict[str, list] = {k: [] for k in ("episode_start", "episode", "action", "state", "state_out")}
    obs_rows: dict[str, list] = {k: [] for k in sorted(env.observation_space.spaces)}
    returns = []
    for episode in range(POINTGOAL_EPISODES):
        obs, _ = env.reset(seed=episode)
        state, start, done, total = None, True, False, 0.0
        while not done:
            before = np.zeros((agent.state_size,), np.float32) if state is None else state
            action, state = agent.predict(obs, state, episode_start=start, deterministic=True)
            for k in obs_rows:
                obs_rows[k].append(np.asarray(obs[k], np.float32))
            for k, v in (("episode_start", start), ("episode", episode), ("action", action), ("state", before),
                         ("state_out", state)):
                rows[k].append(v)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += reward
            start, done = False, terminated or truncated
        returns.append(total)
    np.savez(base + ".npz", **{k: np.asarray(v) for k, v in obs_rows.items()},
             **{k: np.asarray(v) for k, v in rows.items()}, returns=np.asarray(returns))
    print(f"wrote {base}.onnx, .ort, .tflite, .npz ({len(rows['action'])} steps in {POINTGOAL_EPISODES} episodes, "
          f"mean return {np.mean(returns):.2f})")


def cartpole(out_dir: str, timesteps: int, seed: int) -> None:
    agent = keras_trpo.TRPO("CartPole-v1", seed=seed)
    agent.fit(timesteps, verbose=0)
    mean, _ = agent.evaluate(10)
    path = write(agent, out_dir, "cartpole", n_obs=10_000)
    export.to_ort(agent, os.path.join(out_dir, "cartpole.ort"))  # same policy, ORT format (serving's ORT tests)
    # same policy for LiteRT: float32 (must match) and static-int8 (serving's test_litert bounds its mismatches)
    export.to_tflite(agent, os.path.join(out_dir, "cartpole.tflite"), quantize="static-int8")
    # same policy in C (keras_trpo_serving/edge/check_cortex_m4.sh, serving's CPolicy tests), and observations the agent
    # visits (seed 2, 30% random actions) for the Cortex-M4 check
    export.to_c(agent, os.path.join(out_dir, "cartpole_c"))
    np.save(os.path.join(out_dir, "cartpole_rollouts.npy"), rollout_observations(export.describe(agent), 2000, seed=2))
    print(f"wrote {path}, cartpole.ort, cartpole.tflite, cartpole.static-int8.tflite, cartpole_c/ and "
          f"cartpole_rollouts.npy (agent eval mean {mean:.1f}) with 10,000 reference actions")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cartpole", metavar="DIR", help="train CartPole and write DIR/cartpole.onnx + .npz instead")
    p.add_argument("--ort", action="store_true", help="write only the ORT-format fixtures (ort_*.ort + .npz)")
    p.add_argument("--tflite", action="store_true", help="write only the LiteRT fixtures (litert_*.tflite + .npz)")
    p.add_argument("--stochastic", action="store_true",
                   help="write only the stochastic fixtures (stochastic_*.onnx, .tflite, _c/ + .npz)")
    p.add_argument("--recurrent", action="store_true",
                   help="write only the recurrent and Dict fixtures (recurrent_lstm, dict_ff, recurrent_dict: .onnx, .tflite + .npz)")
    p.add_argument("--pointgoal", action="store_true",
                   help="write only recurrent_pointgoal (.onnx, .ort, .tflite + 10 whole episodes in .npz)")
    p.add_argument("--timesteps", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.cartpole:
        os.makedirs(a.cartpole, exist_ok=True)
        cartpole(a.cartpole, a.timesteps, a.seed)
    elif a.ort:
        ort_small(os.path.join(ROOT, "keras_trpo_serving", "tests", "fixtures"))
    elif a.tflite:
        litert_small(os.path.join(ROOT, "keras_trpo_serving", "tests", "fixtures"))
    elif a.recurrent:
        stateful_small(os.path.join(ROOT, "keras_trpo_serving", "tests", "fixtures"))
    elif a.pointgoal:
        pointgoal(os.path.join(ROOT, "keras_trpo_serving", "tests", "fixtures"))
    elif a.stochastic:
        stochastic_small(os.path.join(ROOT, "keras_trpo_serving", "tests", "fixtures"))
    else:
        small(os.path.join(ROOT, "keras_trpo_serving", "tests", "fixtures"))


if __name__ == "__main__":
    main()
