"""Recurrent C exports and their episode references for keras_trpo_serving/tests/test_c_policy.py.

    python -m tests.make_stateful_c_exports OUT_DIR

Run with the training venv's Python (the serving venv has no TensorFlow): a recurrent Dict agent (LSTM,
Box actions) and a recurrent Box one (GRU, Discrete actions), each written as a C directory and a
stochastic .onnx file, and an .npz of episodes the agent stepped through with its own state.
"""
import sys

import gymnasium as gym, numpy as np, keras_trpo
from keras_trpo import export
from keras_trpo.export.observations import sample_episodes
from keras_trpo.export.reference import agent_reference
from tests.envs import ToyEnv
DICT = gym.spaces.Dict({"pos": gym.spaces.Box(-2, 2, (3,), np.float32), "mode": gym.spaces.Discrete(3)})
kinds = {"lstm_dict": (DICT, gym.spaces.Box(-1, 1, (2,), np.float32), "lstm"),
         "gru_box": (gym.spaces.Box(-2, 2, (3,), np.float32), gym.spaces.Discrete(3), "gru")}
for name, (obs, act, cell) in kinds.items():
    agent = keras_trpo.TRPO(lambda o=obs, a=act: ToyEnv(o, a), seed=6, n_envs=1, n_steps=32, hidden_sizes=(8,),
                            normalize_obs=True, value_epochs=1, jit_compile=False, recurrent=cell, recurrent_units=4)
    agent.fit(32, verbose=0)
    export.to_c(agent, f"{sys.argv[1]}/{name}_c")
    export.to_onnx(agent, f"{sys.argv[1]}/{name}.onnx", stochastic=True)
    desc = export.describe(agent)
    eps = sample_episodes(desc, lanes=1, steps=40, seed=9, start_rate=0.15)
    out = {k: v[:, 0] for k, v in agent_reference(desc, eps).items()}
    np.savez(f"{sys.argv[1]}/{name}.npz", episode_start=eps.starts[:, 0],
             **desc.feeds(eps.observations[:, 0]), **out)
