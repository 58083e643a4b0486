"""SamplingRule.allowed, the one rule every invalid-action count uses, against a brute-force count:
an action is allowed iff each of its parts is, read off the layout by hand."""
import gymnasium as gym
import numpy as np
import pytest

from keras_trpo_serving.errors import InvalidActionMask
from keras_trpo_serving.sampling import rule_for

SPACES = [("categorical", gym.spaces.Discrete(5, start=-2)),
          ("multi_categorical", gym.spaces.MultiDiscrete([3, 1, 4], start=[1, 0, -1])),
          ("bernoulli", gym.spaces.MultiBinary(3))]


def by_hand(space, action, mask_row) -> bool:
    if isinstance(space, gym.spaces.Discrete):
        return bool(mask_row[int(action) - int(space.start)])
    if isinstance(space, gym.spaces.MultiDiscrete):
        offset, ok = 0, True
        for a, n, s in zip(action, space.nvec, space.start):
            ok &= bool(mask_row[offset + int(a) - int(s)])
            offset += int(n)
        return ok
    return all(bool(mask_row[2 * i + int(bit)]) for i, bit in enumerate(action))


@pytest.mark.parametrize("family,space", SPACES)
def test_allowed_matches_the_layout_read_by_hand(family, space):
    rule, rng = rule_for(family, space), np.random.default_rng(0)
    space.seed(0)
    masks = rng.random((400, rule.mask_width)) < 0.6
    actions = np.stack([space.sample() for _ in range(400)])
    got = rule.allowed(actions, masks)
    assert got.dtype == bool and got.shape == (400,)
    assert got.tolist() == [by_hand(space, a, m) for a, m in zip(actions, masks)]
    assert 0 < got.sum() < 400  # both kinds occur, so the comparison says something


def test_sampled_actions_are_always_allowed_and_box_actions_cannot_be_masked():
    rule, rng = rule_for("multi_categorical", SPACES[1][1]), np.random.default_rng(1)
    mask = rule.check_mask(np.array([[0, 1, 1, 1, 1, 0, 0, 1]] * 500), 500)
    params = {"logits": rng.normal(size=(500, rule.noise_width)) * 3}
    assert rule.allowed(rule.to_env(rule.sample(params, rule.draw(rng, 500), mask)), mask).all()
    box = rule_for("diag_gaussian", gym.spaces.Box(-1, 1, (2,)))
    with pytest.raises(InvalidActionMask, match="cannot be masked"):
        box.allowed(np.zeros((1, 2)), np.ones((1, 2), bool))
