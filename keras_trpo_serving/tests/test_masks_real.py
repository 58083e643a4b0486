"""Masked policies from the real exporter (tests/make_masked_serving_fixtures.py): Taxi-v4 (Discrete), JointLimits-v0
(MultiDiscrete, an action_masks() method) and JointLimitsMemory-v0 with a GRU. Serving reproduces the
agent's own actions under the env's masks, deterministic and sampled, an all-ones mask gives the
unmasked export's outputs exactly, and `run` plays 10 Taxi-v4 episodes with 0 invalid actions."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from keras_trpo_serving import InvalidActionMask, OnnxPolicy, load_policy
from keras_trpo_serving.tests.conftest import FIXTURES, ROOT

NAMES = ("taxi", "joints", "joints_gru")
FORMATS = ("onnx", "ort", "tflite", "c")  # load_policy picks OnnxPolicy (ONNX, ORT format), LiteRtPolicy or CPolicy (cc)


def load(name, fmt="onnx"):
    path = os.path.join(FIXTURES, f"export_masked_{name}_c" if fmt == "c" else f"export_masked_{name}.{fmt}")
    with np.load(os.path.join(FIXTURES, f"export_masked_{name}.npz")) as z:
        return load_policy(path, seed=0), {k: z[k] for k in z.files}


def available(fmt):
    """Whether this venv runs ``fmt``: LiteRT needs ai-edge-litert, C a compiler."""
    if fmt == "tflite":
        return importlib.util.find_spec("ai_edge_litert") is not None
    return fmt != "c" or shutil.which(os.environ.get("CC", "").strip() or "cc") is not None


def valid(policy, actions, masks):
    """Each env action against its mask row, per sub-action (Discrete: one; MultiDiscrete: k)."""
    a = np.asarray(actions).reshape(len(masks), -1)
    space = policy.action_space
    nvec = [space.n] if space.type == "Discrete" else list(space.nvec)
    start = np.broadcast_to(np.asarray(space.start), len(nvec))
    offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]])
    return [all(masks[r, offsets[j] + a[r, j] - start[j]] for j in range(len(nvec))) for r in range(len(masks))]


def test_bad_masks_are_refused_on_every_runtime():
    for fmt in FORMATS:
        if not available(fmt):
            continue
        policy, ref = load("joints", fmt)
        for mask, words in (([1] * 8, "shape (8,)"), ([1, 1, 1, 0, 0, 0, 1, 1, 1], "sub-space 1"),
                            ([1, 1, 1, 1, 1, 1, 1, 1, np.nan], "nan")):
            with pytest.raises(InvalidActionMask) as e:
                policy.act(ref["obs"][0], action_mask=mask)
            assert words in str(e.value).lower(), (fmt, str(e.value))
        assert valid(policy, [policy.act(ref["obs"][0], action_mask=ref["mask"][0])], ref["mask"][:1]) == [True]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", NAMES)
def test_the_agents_actions_under_the_envs_masks(name, fmt):
    if not available(fmt):
        pytest.skip(f"this venv cannot run {fmt}")
    policy, ref = load(name, fmt)
    assert policy.format == fmt
    assert policy.mask_width == ref["mask"].shape[1]
    assert all(valid(policy, ref["action"], ref["mask"]))  # the agent's own (and the reference is not vacuous)
    if policy.is_recurrent:
        state = None
        for t in range(len(ref["obs"])):
            action, state = policy.step(ref["obs"][t], state, bool(ref["episode_start"][t]), action_mask=ref["mask"][t])
            np.testing.assert_array_equal(action, ref["action"][t], err_msg=f"step {t}")
        return
    np.testing.assert_array_equal(policy.act(ref["obs"], action_mask=ref["mask"]), ref["action"])
    sampled = policy.act(ref["obs"], deterministic=False, noise=ref["noise"], action_mask=ref["mask"])
    np.testing.assert_array_equal(sampled, ref["sampled_action"])
    # Many more draws: never an invalid action.
    obs, masks = np.repeat(ref["obs"], 20, 0), np.repeat(ref["mask"], 20, 0)
    drawn = policy.act(obs, deterministic=False, rng=np.random.default_rng(0), action_mask=masks)
    assert all(valid(policy, drawn, masks))


def test_an_all_ones_mask_gives_the_unmasked_exports_outputs_exactly():
    policy, ref = load("taxi")
    assert isinstance(policy, OnnxPolicy)
    unmasked = OnnxPolicy(os.path.join(FIXTURES, "export_masked_taxi_unmasked.onnx"))
    assert unmasked.mask_width is None
    obs = np.arange(500, dtype=np.float32)
    ones = np.ones((500, 6), np.float32)
    noise = np.random.default_rng(1).random((500, 6), dtype=np.float32)
    for mask in (None, ones):
        np.testing.assert_array_equal(policy.act(obs, action_mask=mask), unmasked.act(obs))
        np.testing.assert_array_equal(policy.act(obs, deterministic=False, noise=noise, action_mask=mask),
                                      unmasked.act(obs, deterministic=False, noise=noise))
        np.testing.assert_array_equal(policy.distribution_params(obs, action_mask=mask)["logits"],
                                      unmasked.distribution_params(obs)["logits"])


@pytest.mark.parametrize("model", ["export_masked_taxi.onnx", "export_masked_taxi.tflite", "export_masked_taxi_c"])
def test_run_plays_ten_taxi_episodes_without_an_invalid_action(model):
    pytest.importorskip("gymnasium")
    if not available("tflite" if model.endswith(".tflite") else "c" if model.endswith("_c") else "onnx"):
        pytest.skip(f"this venv cannot run {model}")
    out = subprocess.run([sys.executable, "-m", "keras_trpo_serving", "run", "--model", os.path.join(FIXTURES, model),
                          "--episodes", "10", "--stochastic"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["env"] == "Taxi-v4" and summary["masked"] is True
    assert summary["invalid_actions"] == 0 and summary["invalid_per_episode"] == [0] * 10
