"""Masked policies from the real exporter for keras_trpo_serving/tests (issue 29), which cannot import
TensorFlow or keras_trpo. Needs the training venv:

    .venv/bin/python tests/make_masked_serving_fixtures.py [DIR] [--formats onnx,ort,tflite,c] [--no-verify]

Writes (default DIR: keras_trpo_serving/tests/fixtures) for each masked agent NAME:
  export_masked_NAME.onnx (stochastic: the noise input), .ort, .tflite and _c/ (--formats),
                          and for taxi export_masked_taxi_unmasked.onnx, the same agent without the mask input,
  export_masked_NAME.npz  observations of the agent's own episodes with the env's masks there, contract
                          noise, and the agent's deterministic and sampled actions under those masks
                          (``predict(..., action_masks=)``; ``rule.agent_action(params, noise, mask)``),
                          which serving's policies must reproduce; a recurrent agent's states and episode
                          starts too.

The agents: ``taxi`` (Taxi-v4: Discrete(500) observations, Discrete(6) actions, info["action_mask"]),
``joints`` (JointLimits-v0: MultiDiscrete([3, 3, 3]) actions, an action_masks() method) and
``joints_gru`` (JointLimitsMemory-v0 with a GRU). A few thousand steps each: the weights only need to
be off their initial values, the masks real.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "keras_trpo_serving", "tests", "fixtures")
sys.path.insert(0, ROOT)

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import keras_trpo  # noqa: E402
import keras_trpo.envs  # noqa: E402,F401  (registers JointLimits-v0, JointLimitsMemory-v0)
from keras_trpo import export  # noqa: E402
from keras_trpo_serving.action_masks import MaskSource  # noqa: E402

AGENTS = {  # name: (env id, extra TRPO arguments)
    "taxi": ("Taxi-v4", {}),
    "joints": ("JointLimits-v0", {}),
    "joints_gru": ("JointLimitsMemory-v0", {"recurrent": "gru", "recurrent_units": 8}),
}
STEPS = 96  # observations per reference file


def train(env_id: str, extra: dict):
    agent = keras_trpo.TRPO(env_id, seed=0, n_envs=1, n_steps=512, hidden_sizes=(16,), value_epochs=1,
                            jit_compile=False, action_masks="on", **extra)
    agent.fit(1024, verbose=0)
    return agent


def episode_data(agent, env_id: str, seed: int = 7) -> dict:
    """``STEPS`` steps of the agent acting in its env under the env's masks (episodes back to back)."""
    rule = agent.family.rule
    env = gym.make(env_id)
    source = MaskSource(env)
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    rows, masks, starts, states, actions = [], [], [], [], []
    state, start = None, True
    for _ in range(STEPS):
        mask = rule.check_mask(source(info), 1)
        rows.append(np.asarray(obs, np.float32))
        masks.append(mask[0])
        starts.append(start)
        if agent.config.recurrent:
            states.append(np.zeros(0) if state is None else state[0])
            action, state = agent.predict(np.asarray(obs)[None], state, np.array([start]), action_masks=mask)
        else:
            action = agent.predict(np.asarray(obs)[None], action_masks=mask)
        actions.append(action[0])
        # Now and then a random valid action, so the episode visits states the agent would not.
        if rng.random() < 0.3:
            action = rule.agent_action({"logits": np.zeros((1, rule.noise_width))}, rng.random((1, rule.noise_width)),
                                       mask)
        obs, _, terminated, truncated, info = env.step(action[0])
        start = terminated or truncated
        if start:
            obs, info = env.reset()
    env.close()
    out = {"obs": np.stack(rows), "mask": np.stack(masks), "action": np.stack(actions),
           "episode_start": np.array(starts)}
    if not agent.config.recurrent:
        noise = rng.random((STEPS, rule.noise_width), dtype=np.float32)
        params = {k: v.numpy() for k, v in agent.policy_model(out["obs"], training=False).items()}
        out.update(noise=noise, sampled_action=rule.agent_action(params, noise, out["mask"]))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", nargs="?", default=FIXTURES)
    p.add_argument("--formats", default="onnx,ort,tflite,c", help="comma-separated: onnx, ort, tflite, c")
    p.add_argument("--only", default=",".join(AGENTS), help=f"comma-separated, of {list(AGENTS)}")
    p.add_argument("--no-verify", action="store_true", help="skip the export's own verification")
    args = p.parse_args()
    verify = not args.no_verify
    formats = set(args.formats.split(","))
    for name in args.only.split(","):
        env_id, extra = AGENTS[name]
        agent = train(env_id, extra)
        assert agent.masked, f"{env_id} gave no masks"
        base = os.path.join(args.out, f"export_masked_{name}")
        stochastic = not agent.config.recurrent
        if "onnx" in formats:
            export.to_onnx(agent, base + ".onnx", stochastic=stochastic, verify=verify)
            if name == "taxi":  # the same agent without the mask input: what an all-ones mask must give
                export.to_onnx(agent, base + "_unmasked.onnx", stochastic=True, verify=verify, action_mask=False)
        if "ort" in formats:  # the operator config beside it is for building a runtime, not for the tests
            os.remove(export.to_ort(agent, base + ".ort", stochastic=stochastic, verify=verify).operators_config_path)
        if "tflite" in formats:
            export.to_tflite(agent, base + ".tflite", stochastic=stochastic, micro=False, verify=verify)
            if os.path.exists(base + ".micro_op_resolver.h"):
                os.remove(base + ".micro_op_resolver.h")  # for microcontroller builds, not the tests
        if "c" in formats:
            export.to_c(agent, base + "_c", verify=verify)
        np.savez(base + ".npz", **episode_data(agent, env_id))
        print("wrote", base, sorted(formats))


if __name__ == "__main__":
    main()
