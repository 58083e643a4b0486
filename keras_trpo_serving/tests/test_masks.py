"""Action masks in serving's policies (issue 29): ``act``/``step``/``distribution_params`` with
``action_mask``, on the hand-built masked files of make_fixtures.py --masked, whose weights are in
masked_weights.json, so the expected actions are computed here in NumPy.

Validity is checked against the masks' layout written out here, one action at a time (not with
serving's own code): Discrete one entry per action, MultiDiscrete the sub-spaces' entries
concatenated, MultiBinary ``[may be 0, may be 1]`` per bit."""
import json
import os

import numpy as np
import pytest

from keras_trpo_serving import InvalidActionMask, InvalidObservation, ModelLoadError, OnnxPolicy
from keras_trpo_serving.sampling import MASKED_LOGIT
from keras_trpo_serving.tests.conftest import FIXTURES, fixture_path

MASKED = ("masked_taxi", "masked_multidiscrete", "masked_multibinary", "masked_recurrent")
NVEC, START = np.array([3, 2]), np.array([1, -1])  # masked_multidiscrete's action space


def weights(name):
    with open(os.path.join(FIXTURES, "masked_weights.json")) as f:
        raw = json.load(f)
    return {k[len(name) + 1:]: np.asarray(v["value"], v["dtype"]) for k, v in raw.items() if k.startswith(name + ".")}


def logits_of(name, obs):
    """The files' raw logits, in NumPy (feed-forward ones)."""
    w = weights(name)
    if name == "masked_taxi":
        return w["table"][np.asarray(obs, np.int64)]
    x = np.asarray(obs, np.float32).reshape(len(obs), -1)
    return x @ w["W"] + w["b"]


def observations(name, rng, n):
    if name == "masked_taxi":
        return rng.integers(0, 500, n).astype(np.float32)
    shape = {"masked_multidiscrete": (3,), "masked_multibinary": (2, 3), "masked_recurrent": (3,)}[name]
    return rng.uniform(-1, 1, (n, *shape)).astype(np.float32)


def random_masks(name, rng, n):
    """Valid masks: each row (sub-space, bit) with something allowed, often only one thing."""
    if name in ("masked_taxi", "masked_recurrent"):
        width = 6 if name == "masked_taxi" else 3
        m = rng.random((n, width)) < 0.4
        m[np.arange(n), rng.integers(0, width, n)] = True
        return m
    if name == "masked_multidiscrete":
        m = rng.random((n, 5)) < 0.4
        m[np.arange(n), rng.integers(0, 3, n)] = True
        m[np.arange(n), 3 + rng.integers(0, 2, n)] = True
        return m
    pairs = rng.integers(1, 4, (n, 4))  # 1: only 0 allowed, 2: only 1, 3: both
    return np.stack([(pairs & 1) > 0, (pairs & 2) > 0], -1).reshape(n, 8)


def is_valid(name, action, mask_row):
    """One env action against one mask row, spelled out per space."""
    if name in ("masked_taxi", "masked_recurrent"):
        return bool(mask_row[int(action)])
    if name == "masked_multidiscrete":
        first = int(action[0]) - START[0]
        second = int(action[1]) - START[1]
        return bool(mask_row[first] and mask_row[NVEC[0] + second])
    return all(mask_row[2 * i + int(bit)] for i, bit in enumerate(np.ravel(action)))


@pytest.fixture(scope="module")
def policies():
    return {name: OnnxPolicy(fixture_path(name), seed=0) for name in MASKED}


def test_mask_width_comes_from_the_file(policies):
    assert {n: p.mask_width for n, p in policies.items()} == {
        "masked_taxi": 6, "masked_multidiscrete": 5, "masked_multibinary": 8, "masked_recurrent": 3}
    assert OnnxPolicy(fixture_path("linear_discrete")).mask_width is None
    assert "action_mask[6]" in repr(policies["masked_taxi"])


@pytest.mark.parametrize("name", MASKED)
def test_masked_actions_are_never_invalid_over_many_draws(policies, name):
    policy, rng = policies[name], np.random.default_rng(5)
    n = 3000
    obs, masks = observations(name, rng, n), random_masks(name, rng, n)
    calls = [lambda: policy.act(obs, action_mask=masks),
             lambda: policy.act(obs, deterministic=False, rng=np.random.default_rng(1), action_mask=masks),
             lambda: policy.act(obs, deterministic=False, action_mask=masks.astype(np.float32))]
    if policy.is_recurrent:
        policy.reset()
        calls.append(lambda: policy.step(obs, None, deterministic=False, action_mask=masks)[0])
    else:
        calls.append(lambda: policy.step(obs, deterministic=False, action_mask=masks.astype(int))[0])
    for call in calls:
        actions = call()
        bad = [i for i in range(n) if not is_valid(name, actions[i], masks[i])]
        assert not bad, f"{len(bad)} invalid actions, first at row {bad[0]}"
    # And one observation at a time, the mask a flat list of booleans.
    for i in range(50):
        policy.reset()
        a = policy.act(obs[i], deterministic=False, action_mask=[bool(v) for v in masks[i]])
        assert is_valid(name, a, masks[i])


def test_without_masks_the_random_weights_do_pick_invalid_actions(policies):
    """The test above is not trivially true: the same draws without the mask break it."""
    policy, rng = policies["masked_taxi"], np.random.default_rng(5)
    obs, masks = observations("masked_taxi", rng, 3000), random_masks("masked_taxi", rng, 3000)
    actions = policy.act(obs, deterministic=False, rng=np.random.default_rng(1))
    assert sum(not is_valid("masked_taxi", a, m) for a, m in zip(actions, masks)) > 500


@pytest.mark.parametrize("name", ["masked_taxi", "masked_multidiscrete", "masked_multibinary"])
def test_actions_are_the_masked_distributions_in_numpy(policies, name):
    """Deterministic: argmax over the valid logits (per sub-space), or for a bit the forced value or
    logit > 0. Sampled with given noise: Gumbel-max over the valid logits, or logistic(u) < logit."""
    policy, rng = policies[name], np.random.default_rng(8)
    obs, masks = observations(name, rng, 500), random_masks(name, rng, 500)
    z = logits_of(name, obs).astype(np.float32)
    noise = rng.random(z.shape, dtype=np.float32)
    if name == "masked_taxi":
        valid_z = np.where(masks, z, -np.inf)
        gumbel = -np.log(-np.log(noise + np.float32(1e-20)) + np.float32(1e-20))
        mode, sampled = valid_z.argmax(1), (valid_z + gumbel).argmax(1)
    elif name == "masked_multidiscrete":
        valid_z = np.where(masks, z, -np.inf)
        gumbel = -np.log(-np.log(noise + np.float32(1e-20)) + np.float32(1e-20))
        mode = np.stack([valid_z[:, :3].argmax(1), valid_z[:, 3:].argmax(1)], 1) + START
        g = valid_z + gumbel
        sampled = np.stack([g[:, :3].argmax(1), g[:, 3:].argmax(1)], 1) + START
    else:
        may0, may1 = masks[:, 0::2], masks[:, 1::2]
        logistic = np.log(noise) - np.log(np.float32(1) - noise)
        mode = np.where(~may0, 1, np.where(~may1, 0, z > 0))
        sampled = np.where(~may0, 1, np.where(~may1, 0, logistic < z))
    np.testing.assert_array_equal(policy.act(obs, action_mask=masks), mode)
    np.testing.assert_array_equal(policy.act(obs, deterministic=False, noise=noise, action_mask=masks), sampled)


@pytest.mark.parametrize("name", MASKED)
def test_an_all_ones_mask_is_no_mask_exactly(policies, name):
    policy, rng = policies[name], np.random.default_rng(9)
    obs = observations(name, rng, 200)
    ones = np.ones((200, policy.mask_width), np.float32)
    noise = rng.random((200, policy.noise_shape[0]), dtype=np.float32)
    for kw in ({}, {"deterministic": False, "noise": noise}):
        policy.reset()
        plain = policy.act(obs, **kw)
        policy.reset()
        np.testing.assert_array_equal(policy.act(obs, action_mask=ones, **kw), plain)
        policy.reset()
        np.testing.assert_array_equal(policy.act(obs, action_mask=ones.astype(bool), **kw), plain)
    if not policy.is_recurrent:  # and equal to the unmasked distribution's mode, computed here
        z = logits_of(name, obs)
        want = {"masked_taxi": lambda: z.argmax(1),
                "masked_multidiscrete": lambda: np.stack([z[:, :3].argmax(1), z[:, 3:].argmax(1)], 1) + START,
                "masked_multibinary": lambda: (z > 0).astype(np.int8)}[name]()
        np.testing.assert_array_equal(policy.act(obs, action_mask=ones), want)
        np.testing.assert_array_equal(policy.distribution_params(obs, action_mask=ones)["logits"],
                                      policy.distribution_params(obs)["logits"])


def test_recurrent_step_with_masks_carries_the_state(policies):
    """Masks change the action, not the state: the graph's state_out does not depend on them."""
    policy, rng = policies["masked_recurrent"], np.random.default_rng(3)
    obs, masks = observations("masked_recurrent", rng, 20), random_masks("masked_recurrent", rng, 20)
    state, plain_state = None, None
    for t in range(20):
        a, state = policy.step(obs[t], state, action_mask=masks[t])
        _, plain_state = policy.step(obs[t], plain_state)
        assert is_valid("masked_recurrent", a, masks[t])
        np.testing.assert_array_equal(state, plain_state)


def test_distribution_params_with_a_mask_are_the_masked_ones(policies):
    policy = policies["masked_taxi"]
    mask = np.array([[1, 0, 1, 0, 0, 1]], bool)
    got = policy.distribution_params(7.0, action_mask=mask)["logits"]
    want = np.where(mask, weights("masked_taxi")["table"][[7]], np.float32(MASKED_LOGIT))
    np.testing.assert_array_equal(got, want)


BAD_MASKS = [  # (fixture, mask for one observation, words the message must contain)
    ("masked_taxi", [1, 1, 0], "shape (3,)"),
    ("masked_taxi", [[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0]], "shape (2, 6)"),
    ("masked_taxi", [1, 2, 0, 0, 0, 0], "must be 0 or 1"),
    ("masked_taxi", [1, -1, 0, 0, 0, 0], "must be 0 or 1"),
    ("masked_taxi", [1, 0.5, 0, 0, 0, 0], "must be 0 or 1"),
    ("masked_taxi", [1, float("nan"), 0, 0, 0, 0], "nan"),
    ("masked_taxi", [0, 0, 0, 0, 0, 0], "no valid action"),
    ("masked_taxi", ["1", "0", "0", "0", "0", "0"], "dtype"),
    ("masked_taxi", [[1, 0], [1, 0, 1]], "rectangular"),
    ("masked_taxi", [], "shape (0,)"),
    ("masked_multidiscrete", [1, 1, 1, 0, 0], "sub-space 1"),
    ("masked_multidiscrete", [0, 0, 0, 1, 1], "sub-space 0"),
    ("masked_multibinary", [1, 1, 0, 0, 1, 1, 1, 1], "bit 1"),
    ("masked_recurrent", [0, 0, 0], "no valid action"),
    ("linear_discrete", [1, 1], "without an 'action_mask' input"),
    ("linear_gaussian", [1, 1, 1], "without an 'action_mask' input"),
]


@pytest.mark.parametrize("name, mask, words", BAD_MASKS)
def test_a_bad_mask_is_invalid_action_mask_naming_it(policies, name, mask, words):
    policy = policies.get(name) or OnnxPolicy(fixture_path(name), seed=0)
    obs = observations(name, np.random.default_rng(0), 1)[0] if name in policies else (
        np.zeros(4 if name == "linear_discrete" else 5, np.float32))
    for call in (lambda: policy.act(obs, action_mask=mask),
                 lambda: policy.act(obs, deterministic=False, action_mask=mask),
                 lambda: policy.step(obs, action_mask=mask),
                 lambda: policy.distribution_params(obs, action_mask=mask)):
        with pytest.raises(InvalidActionMask, match=None) as e:
            call()
        assert words.lower() in str(e.value).lower(), str(e.value)
        assert isinstance(e.value, InvalidObservation)  # the HTTP server's 422
    policy.reset()
    policy.act(obs)  # and the policy still answers


def test_a_batch_needs_one_mask_row_per_observation(policies):
    policy = policies["masked_taxi"]
    with pytest.raises(InvalidActionMask, match=r"shape \(6,\); expected \(3, 6\)"):
        policy.act(np.array([1.0, 2.0, 3.0]), action_mask=[1, 1, 1, 1, 1, 1])
    assert policy.act(np.array([1.0]), action_mask=[1, 0, 0, 0, 0, 0]).tolist() == [0]  # a batch of one: either


@pytest.mark.parametrize("name, words", [
    ("masked_broken_no_metadata", "no 'action_mask' metadata"),
    ("masked_broken_width", "takes 5"),
    ("masked_broken_no_input", "no such input"),
])
def test_files_whose_mask_input_and_metadata_disagree_are_refused(name, words):
    with pytest.raises(ModelLoadError, match=words):
        OnnxPolicy(fixture_path(name))
