"""The NumPy mask rule (keras_trpo_serving/sampling.py) and the rollout's use of it
(keras_trpo/rollouts/masks.py): checks, masked sampling, forced bits, all-True = unmasked."""
import gymnasium as gym
import numpy as np
import pytest
from scipy import stats
from scipy.special import softmax

from keras_trpo.rollouts.masks import allowed, check_env_masks, count_invalid
from keras_trpo.sampling import sampling_rule
from keras_trpo_serving.errors import InvalidActionMask
from keras_trpo_serving.sampling import FORCED_LOGIT, MASKED_LOGIT
from tests.mask_envs import SPACES, mask_of

P_MIN = 1e-4


def _params(rule, rows, rng, dtype=np.float64):
    return {"logits": (rng.normal(size=(rows, rule.noise_width)) * 2).astype(dtype)}


def _masks(kind, rows, offset=0):
    return np.stack([mask_of(SPACES[kind], offset + r) for r in range(rows)])


def _brute_force_allowed(kind, actions, mask):
    """Independent of rollouts.masks.allowed: walk each action's entries through the layout by hand."""
    out = []
    for a, m in zip(actions, mask):
        if kind == "discrete":
            out.append(bool(m[int(a)]))
        elif kind == "multidiscrete":
            ok, start = True, 0
            for n, ai in zip(SPACES[kind].nvec, np.atleast_1d(a)):
                ok &= bool(m[start + int(ai)])
                start += int(n)
            out.append(ok)
        else:
            out.append(all(m[2 * i + int(b)] for i, b in enumerate(np.atleast_1d(a))))
    return np.array(out)


# ----------------------------------------------------------------------------- check_mask
@pytest.mark.parametrize("kind, width", [("discrete", 5), ("multidiscrete", 9), ("multibinary", 6)])
def test_check_mask_takes_bools_and_0_1_in_one_row_or_a_batch(kind, width):
    rule = sampling_rule(SPACES[kind])
    assert rule.mask_width == width
    m = mask_of(SPACES[kind], 3)
    for given in (m, m.astype(np.int8), m.astype(np.float32), m.tolist(), m[None]):
        got = rule.check_mask(given, 1)
        assert got.dtype == np.bool_ and got.shape == (1, width)
        np.testing.assert_array_equal(got[0], m)
    np.testing.assert_array_equal(rule.check_mask(_masks(kind, 4), 4), _masks(kind, 4))


def test_check_mask_names_what_is_wrong():
    d, md, mb = (sampling_rule(SPACES[k]) for k in ("discrete", "multidiscrete", "multibinary"))
    with pytest.raises(InvalidActionMask, match=r"shape \(4,\); expected \(5,\) or \(1, 5\)"):
        d.check_mask(np.ones(4), 1)
    with pytest.raises(InvalidActionMask, match=r"shape \(5,\); expected \(2, 5\)"):
        d.check_mask(np.ones(5), 2)  # one row for a batch of two
    with pytest.raises(InvalidActionMask, match=r"row 0, entry 2 is 2"):
        d.check_mask([1, 1, 2, 0, 1], 1)
    with pytest.raises(InvalidActionMask, match="0 or 1"):
        d.check_mask([1, 1, np.nan, 0, 1], 1)
    with pytest.raises(InvalidActionMask, match="dtype"):
        d.check_mask(["1"] * 5, 1)
    with pytest.raises(InvalidActionMask, match=r"row 1 has no valid action"):
        d.check_mask([[1, 0, 0, 0, 0], [0] * 5], 2)
    with pytest.raises(InvalidActionMask, match=r"sub-space 1 \(entries 3..4\) has no valid action"):
        md.check_mask([1, 0, 0, 0, 0, 1, 1, 1, 1], 1)
    with pytest.raises(InvalidActionMask, match=r"bit 2 \(entries 4 and 5\) allows neither 0 nor 1"):
        mb.check_mask([1, 1, 0, 1, 0, 0], 1)
    with pytest.raises(InvalidActionMask, match="cannot be masked"):
        sampling_rule(gym.spaces.Box(-1, 1, (2,))).check_mask([1, 1], 1)


# ----------------------------------------------------------------------------- masked sampling
@pytest.mark.parametrize("kind", list(SPACES))
def test_sample_and_mode_never_pick_an_invalid_action(kind):
    rule, rng = sampling_rule(SPACES[kind]), np.random.default_rng(0)
    rows = 4000
    params, mask = _params(rule, rows, rng), _masks(kind, rows)
    params["logits"][:, :] += 6 * (~mask[:, :rule.noise_width] if kind != "multibinary" else 0)  # invalid look best
    for actions in (rule.sample(params, rule.draw(rng, rows), mask), rule.mode(params, mask),
                    rule.contract_action(params, rng.random((rows, rule.noise_width)).astype(np.float32), mask)):
        stored = np.asarray(actions)
        if kind == "discrete":
            stored = stored.reshape(-1)
        assert _brute_force_allowed(kind, stored, mask).all()
        np.testing.assert_array_equal(allowed(rule, stored, mask), True)


def test_masked_draws_follow_the_softmax_over_the_valid_actions():
    rule, rng = sampling_rule(SPACES["discrete"]), np.random.default_rng(1)
    logits = np.array([0.3, -1.0, 1.2, 0.0, 0.5])
    mask = np.array([True, False, True, True, False])
    n = 20_000
    actions = rule.sample({"logits": np.tile(logits, (n, 1))}, rule.draw(rng, n), np.tile(mask, (n, 1)))
    counts = np.bincount(actions, minlength=5)
    assert counts[~mask].sum() == 0
    p = softmax(np.where(mask, logits, -np.inf))
    assert stats.chisquare(counts[mask], n * p[mask]).pvalue > P_MIN


def test_forced_bits_hold_whatever_the_noise_even_u_0():
    rule = sampling_rule(SPACES["multibinary"])  # 3 bits
    mask = np.array([[True, False, False, True, True, True]])  # bit 0 must be 0, bit 1 must be 1, bit 2 free
    for logits in ([[50.0, -50.0, 0.0]], [[-50.0, 50.0, 0.0]]):
        params = {"logits": np.asarray(logits, np.float32)}
        for u in (0.0, 0.5, np.nextafter(np.float32(1), np.float32(0))):
            noise = np.full((1, 3), u, np.float32)
            for action in (rule.contract_action(params, noise, mask), rule.agent_action(params, noise, mask)):
                assert action[0, 0] == 0 and action[0, 1] == 1
        assert list(rule.mode(params, mask)[0, :2]) == [0, 1]
    np.testing.assert_array_equal(rule.masked_logits(np.zeros((1, 3), np.float32), mask), [[-FORCED_LOGIT, FORCED_LOGIT, 0]])


@pytest.mark.parametrize("kind", list(SPACES))
def test_an_all_true_mask_changes_nothing_bit_for_bit(kind):
    rule, rng = sampling_rule(SPACES[kind]), np.random.default_rng(2)
    rows = 500
    ones = rule.all_valid(rows)
    for dtype in (np.float64, np.float32):
        params = _params(rule, rows, rng, dtype)
        noise = rule.draw(rng, rows)
        u = rng.random((rows, rule.noise_width)).astype(np.float32)
        np.testing.assert_array_equal(rule.masked_logits(params["logits"], ones), params["logits"])
        np.testing.assert_array_equal(rule.sample(params, noise, ones), rule.sample(params, noise))
        np.testing.assert_array_equal(rule.mode(params, ones), rule.mode(params))
        np.testing.assert_array_equal(rule.contract_action(params, u, ones), rule.contract_action(params, u))
        np.testing.assert_array_equal(rule.agent_action(params, u, ones), rule.agent_action(params, u))


def test_masked_logits_are_the_constants_the_tf_side_imports():
    rule = sampling_rule(SPACES["multidiscrete"])
    logits = np.arange(9, dtype=np.float32)[None]
    mask = np.array([[1, 0, 1, 0, 1, 1, 0, 0, 1]], bool)
    np.testing.assert_array_equal(rule.masked_logits(logits, mask), np.where(mask, logits, np.float32(MASKED_LOGIT)))


# ----------------------------------------------------------------------------- the rollout's helpers
@pytest.mark.parametrize("kind", list(SPACES))
def test_allowed_and_count_invalid_agree_with_a_brute_force_walk_of_the_layout(kind):
    rule, rng = sampling_rule(SPACES[kind]), np.random.default_rng(3)
    rows = 300
    mask = _masks(kind, rows)
    actions = rule.sample(_params(rule, rows, rng), rule.draw(rng, rows))  # unmasked: some invalid
    expected = _brute_force_allowed(kind, actions, mask)
    assert 0 < expected.sum() < rows
    np.testing.assert_array_equal(allowed(rule, actions, mask), expected)
    np.testing.assert_array_equal(count_invalid(rule, actions, mask), (~expected).astype(int))
    np.testing.assert_array_equal(count_invalid(rule, actions, None), 0)


def test_check_env_masks_names_the_env_and_the_step():
    rule = sampling_rule(SPACES["discrete"])
    good = mask_of(SPACES["discrete"], 0)
    assert check_env_masks(rule, [None, None], 0, "after reset") is None
    np.testing.assert_array_equal(check_env_masks(rule, [good, good.astype(int)], 0, "x"), [good, good])
    with pytest.raises(InvalidActionMask, match=r"^env 5 gave an invalid action mask after step 9: has shape \(4,\)"):
        check_env_masks(rule, [good, good[:4]], 4, "after step 9")
    with pytest.raises(InvalidActionMask, match=r"^env 3 gave an invalid action mask after reset: has no valid action"):
        check_env_masks(rule, [np.zeros(5)], 3, "after reset")
    with pytest.raises(InvalidActionMask, match=r"env 1 gave no action mask after step 2, while env 0 did"):
        check_env_masks(rule, [good, None], 0, "after step 2")
    with pytest.raises(InvalidActionMask, match="cannot be masked"):
        check_env_masks(sampling_rule(gym.spaces.Box(-1, 1, (2,))), [np.ones(2)], 0, "after reset")
