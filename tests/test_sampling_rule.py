"""The one sampling rule (keras_trpo_serving/sampling.py) against tfp, closed forms and itself.

- keras_trpo.distributions' tfp distributions are the ones the rule samples: the same noise gives the
  same action through tfp's own sample path (Gumbel's and Logistic's quantiles, MultivariateNormalDiag's
  bijector, Bernoulli's ``uniform < probs``), tfp's mode is the rule's, and the rule's draws follow
  tfp's probabilities (chi-square) and moments.
- The agent's float64 formulas and the contract's float32 ones pick the same actions.
- ``draw`` (the agent's rollout) is ``agent_noise`` of the same uniforms: the export's contract noise
  stands for exactly what the agent draws.
- A rule built from a gymnasium space and one built from serving's metadata of it are the same.
"""
import json
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import stats
from scipy.special import expit, softmax

from keras_trpo.distributions import family_for
from keras_trpo.export.noise import noise_spec
from keras_trpo.sampling import distribution_for, sampling_rule
from keras_trpo.spaces import UnsupportedSpaceError, space_to_json
from keras_trpo_serving.sampling import (GUMBEL_EPS, NORMAL, PAD_LOGIT, UNIFORM, MultiCategoricalRule,
                                         agent_logit_from_uniform, contract_logit_from_uniform, draw_noise,
                                         gumbel_from_uniform, noise_metadata, parse_noise_metadata, rule_for)
from keras_trpo_serving.spaces import Space
from tests.envs import EXPORT_ACTION_SPACES as SPACES

WIDTH = {"discrete": 4, "multidiscrete": 10, "multibinary": 4, "box": 3}
P_MIN = 1e-4  # a correct rule fails a goodness-of-fit test here 1 in 10,000 seeds


def _params(kind: str, rows: int, rng: np.random.Generator, dtype=np.float64) -> dict:
    """Parameters far enough from uniform that a wrong rule shows, one row repeated ``rows`` times."""
    if kind == "box":
        row = {"mean": rng.normal(size=(1, 3)), "log_std": rng.normal(size=(1, 3)) * 0.5}
    else:
        row = {"logits": rng.normal(size=(1, WIDTH[kind])) * 1.5}
    return {k: np.repeat(v, rows, 0).astype(dtype) for k, v in row.items()}


def _uniforms(kind: str, rows: int, rng: np.random.Generator) -> np.ndarray:
    """Contract noise as a device draws it: float32."""
    return draw_noise(rng, NORMAL if kind == "box" else UNIFORM, rows, WIDTH[kind])


# ----------------------------------------------------------------------------- the agent draws the contract's noise
@pytest.mark.parametrize("kind", sorted(SPACES))
def test_draw_is_agent_noise_of_the_same_uniforms(kind):
    """agent_noise turns the contract's noise into what the rollout's draw() makes from the same
    generator: if the agent's sampling changes, this fails and the export must follow."""
    rule = sampling_rule(SPACES[kind])
    drawn = rule.draw(np.random.default_rng(5), 64)
    rng = np.random.default_rng(5)
    assert drawn.dtype == np.float64 and drawn.shape == (64,) + rule.noise_shape
    if kind == "box":
        np.testing.assert_array_equal(rule.agent_noise(rng.standard_normal((64, 3))), drawn)
    elif kind == "multidiscrete":  # the agent draws over its padded [k, max(nvec)] layout
        u = rng.random((64,) + rule.noise_shape)
        flat = np.concatenate([u[:, i, :n] for i, n in enumerate([3, 2, 5])], -1)
        real = rule.index < 10  # the pad cells' noise is never used
        np.testing.assert_array_equal(rule.agent_noise(flat)[:, real], drawn[:, real])
    else:
        np.testing.assert_array_equal(rule.agent_noise(rng.random((64, WIDTH[kind]))), drawn)
    spec = noise_spec(SimpleNamespace(family=family_for(SPACES[kind])))
    assert (spec.kind, spec.width) == (rule.noise_kind, rule.noise_width) == (
        NORMAL if kind == "box" else UNIFORM, WIDTH[kind])
    assert parse_noise_metadata(spec.as_metadata()) == (spec.kind, spec.width)


# ----------------------------------------------------------------------------- agent (float64) and contract (float32)
def test_the_two_bernoulli_transforms_pick_the_same_bits():
    """agent_logit_from_uniform (float64, log1p) and contract_logit_from_uniform (float32, log(1 - u))
    are one function up to rounding: over 2 million draws, including u = 0 and the largest float32
    below 1, they disagree nowhere but (if at all) where the logit lies within float32 rounding of
    logit(u)."""
    rng = np.random.default_rng(0)
    u = rng.random(2_000_000, dtype=np.float32)
    u[:100], u[100:200] = 0.0, np.float32(1 - 2**-24)
    logits = (rng.normal(size=u.shape) * 4).astype(np.float32)
    agent = agent_logit_from_uniform(u) < logits
    contract = contract_logit_from_uniform(u) < logits
    assert contract_logit_from_uniform(np.float32([0.0]))[0] == -np.inf and agent[:100].all() and contract[:100].all()
    differ = np.flatnonzero(agent != contract)
    exact = np.log(u[differ].astype(np.float64)) - np.log1p(-u[differ].astype(np.float64))
    assert np.all(np.abs(logits[differ] - exact) <= 1e-6 * np.maximum(1, np.abs(exact)))
    assert len(differ) <= 2
    # and the rule's Bernoulli is tfp's `uniform < sigmoid(logit)` (in float64, far from the boundary)
    u64, l64 = u.astype(np.float64), logits.astype(np.float64)
    tfp_bits = u64 < tfp.distributions.Bernoulli(logits=l64).probs_parameter().numpy()
    assert np.mean(tfp_bits != agent) < 1e-5


@pytest.mark.parametrize("kind", ["discrete", "multidiscrete"])
def test_gumbel_max_in_float64_and_float32_picks_the_same_action(kind):
    rule = sampling_rule(SPACES[kind])
    rng = np.random.default_rng(1)
    u = _uniforms(kind, 200_000, rng)
    params = {"logits": (rng.normal(size=u.shape) * 2).astype(np.float32)}
    agent, contract = rule.agent_action(params, u), rule.contract_action(params, u)
    assert agent.dtype == contract.dtype == np.int64
    assert np.mean(np.any((agent != contract).reshape(len(u), -1), axis=1)) < 1e-5  # float32 near-ties only


def test_gaussian_agent_and_contract_differ_by_rounding_only():
    rule = sampling_rule(SPACES["box"])
    rng = np.random.default_rng(2)
    z = _uniforms("box", 10_000, rng)
    params = {"mean": rng.normal(size=(10_000, 3)).astype(np.float32), "log_std": np.float32([-0.5, 0.0, 0.3])}
    agent, contract = rule.agent_action(params, z), rule.contract_action(params, z)
    assert agent.dtype == contract.dtype == np.float32
    np.testing.assert_allclose(agent, contract, rtol=1e-6, atol=1e-6)
    assert np.all(agent >= SPACES["box"].low) and np.all(agent <= SPACES["box"].high)


def test_padded_multi_categorical_is_the_per_categorical_argmax():
    """The exported graphs and the C sampler take the argmax within each categorical of the flat layout;
    the rule takes one argmax over the padded layout: the same actions."""
    rule = sampling_rule(SPACES["multidiscrete"])
    rng = np.random.default_rng(3)
    u = _uniforms("multidiscrete", 50_000, rng)
    logits = (rng.normal(size=u.shape) * 3).astype(np.float32)
    z = logits + gumbel_from_uniform(u)
    flat = np.stack([np.argmax(part, -1) for part in np.split(z, [3, 5], axis=-1)], -1)
    np.testing.assert_array_equal(rule.contract_action({"logits": logits}, u), flat)
    assert rule.padded_logits(logits)[0, 1, 2:].tolist() == [np.float32(PAD_LOGIT)] * 3
    assert gumbel_from_uniform(np.float32([0.0])).dtype == np.float32 and GUMBEL_EPS == 1e-20


# ----------------------------------------------------------------------------- tfp's distributions are the rule's
@pytest.mark.parametrize("kind", sorted(SPACES))
def test_tfp_sample_path_and_mode_agree_with_the_rule(kind):
    """The same noise through tfp's own sample path gives the rule's action; tfp's mode is the rule's."""
    fam = family_for(SPACES[kind])
    rule = fam.rule
    rng = np.random.default_rng(4)
    n = 5_000
    params = {k: v + rng.normal(size=v.shape) * 0.5 for k, v in _params(kind, n, rng).items()}
    u = _uniforms(kind, n, rng).astype(np.float64)
    mine = rule.sample(params, rule.agent_noise(u))
    tfd = tfp.distributions
    if kind == "box":
        d = fam.make({k: tf.constant(v) for k, v in params.items()})
        tfp_action = d.bijector.forward(u).numpy()  # tfp samples loc + scale * (standard normal)
        np.testing.assert_allclose(mine, tfp_action, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(rule.mode(params), d.mode().numpy(), rtol=1e-6)
        return
    logits = params["logits"]
    if kind == "multibinary":
        # tfp's Logistic samples log(u) - log1p(-u); its Bernoulli samples u < sigmoid(logit)
        logistic = tfd.Logistic(np.float64(0), np.float64(1)).quantile(u).numpy()
        np.testing.assert_array_equal((logistic < logits).astype(np.int32), mine)
        probs = fam.make({"logits": tf.constant(logits)}).distribution.probs_parameter().numpy()
        assert np.mean((u < probs) != mine) < 1e-4
    else:
        # tfp's Gumbel samples loc - log(-log(u)): Gumbel-max from tfp's own draw
        if kind == "discrete":
            gumbel = tfd.Gumbel(loc=logits, scale=np.float64(1)).quantile(u)
        else:
            gumbel = tfd.Gumbel(loc=rule.padded_logits(logits), scale=np.float64(1)).quantile(_padded_uniforms(rule, u))
        np.testing.assert_array_equal(np.argmax(gumbel.numpy(), -1).astype(np.int32), mine)
    d = fam.make({"logits": tf.constant(logits)})
    np.testing.assert_array_equal(d.mode().numpy(), rule.mode(params))
    assert np.all(np.isfinite(d.log_prob(mine).numpy()))  # the rule never draws a padded cell
    zero = {"logits": np.zeros((1,) + logits.shape[1:])}  # ties: both take the first (Bernoulli: 0)
    np.testing.assert_array_equal(fam.make({"logits": tf.constant(zero["logits"])}).mode().numpy(), rule.mode(zero))


def _padded_uniforms(rule: MultiCategoricalRule, u: np.ndarray) -> np.ndarray:
    """Flat uniforms in the padded layout (pad cells 0.5: any value in (0, 1) does, their logit is -1e9)."""
    return np.concatenate([u, np.full((len(u), 1), 0.5)], -1)[:, rule.index]


@pytest.mark.parametrize("kind", ["discrete", "multidiscrete", "multibinary"])
@pytest.mark.parametrize("path", ["agent", "contract"])
def test_draws_follow_tfps_probabilities(kind, path):
    """Chi-square of the rule's draws against tfp's probabilities (exp of log_prob), for the agent's
    rollout draws and for the contract's float32 rule fed device noise; and tfp's probabilities are
    the closed forms (softmax per categorical, sigmoid per bit)."""
    fam = family_for(SPACES[kind])
    rule = fam.rule
    rng = np.random.default_rng(6)
    n = 20_000
    params = _params(kind, n, rng)
    if path == "agent":
        actions = rule.sample(params, rule.draw(rng, n))
    else:
        env = rule.contract_action({"logits": params["logits"].astype(np.float32)}, _uniforms(kind, n, rng))
        actions = env.reshape(n, -1) - np.asarray(getattr(SPACES[kind], "start", 0)).reshape(-1)
    logits = params["logits"][0]
    d = fam.make({"logits": tf.constant(params["logits"][:1])})
    if kind == "multibinary":
        probs = d.distribution.probs_parameter().numpy()[0]
        np.testing.assert_allclose(probs, expit(logits), rtol=1e-12)
        for j, p in enumerate(probs):
            ones = int(actions[:, j].sum())
            assert stats.chisquare([n - ones, ones], [n * (1 - p), n * p]).pvalue > P_MIN
        return
    actions = actions.reshape(n, -1)
    groups = np.split(logits, np.cumsum(rule.nvec)[:-1]) if kind == "multidiscrete" else [logits]
    for j, group in enumerate(groups):
        k = len(group)
        # tfp's probability of each value of categorical j (the others held at the mode)
        probe = np.repeat(rule.mode({"logits": params["logits"][:1]}).reshape(1, -1), k, 0)
        probe[:, j] = np.arange(k)
        log_p = d.log_prob(probe if kind == "multidiscrete" else probe[:, 0]).numpy()
        probs = np.exp(log_p - (log_p.max() if kind == "multidiscrete" else 0))
        probs /= probs.sum()
        np.testing.assert_allclose(probs, softmax(group), rtol=1e-9)
        counts = np.bincount(actions[:, j], minlength=k)
        assert len(counts) == k and stats.chisquare(counts, n * probs).pvalue > P_MIN


@pytest.mark.parametrize("path", ["agent", "contract"])
def test_gaussian_draws_have_tfps_moments(path):
    space = gym.spaces.Box(-100, 100, (2,), np.float32)  # wide: no clipping in the contract's action
    fam = family_for(space)
    rule = fam.rule
    rng = np.random.default_rng(7)
    n = 40_000
    params = {"mean": np.full((n, 2), [0.5, -1.0]), "log_std": np.log([0.3, 2.0])}
    if path == "agent":
        x = rule.sample(params, rule.draw(rng, n))
    else:
        x = rule.contract_action({k: v.astype(np.float32) for k, v in params.items()},
                                 draw_noise(rng, NORMAL, n, 2))
    d = fam.make({"mean": tf.constant(params["mean"][:1]), "log_std": tf.constant(params["log_std"])})
    mean, std = d.mean().numpy()[0], d.stddev().numpy()[0]
    np.testing.assert_allclose(mean, [0.5, -1.0])
    np.testing.assert_allclose(std, [0.3, 2.0])
    assert np.all(np.abs(x.mean(0) - mean) < 4 * std / np.sqrt(n))  # 4 standard errors
    np.testing.assert_allclose(x.std(0), std, rtol=0.02)
    for j in range(2):  # the whole shape, not just two moments
        assert stats.kstest((x[:, j] - mean[j]) / std[j], "norm").pvalue > P_MIN


# ----------------------------------------------------------------------------- one rule for gym and serving's spaces
@pytest.mark.parametrize("kind", sorted(SPACES))
def test_gym_space_and_serving_metadata_give_the_same_rule(kind):
    space = SPACES[kind]
    name = distribution_for(space)
    a = sampling_rule(space)
    b = rule_for(name, Space.from_json(json.dumps(space_to_json(space)), "action_space"))
    assert type(a) is type(b) and a.distribution == b.distribution == name
    for attr in ("noise_kind", "noise_width", "noise_shape", "param_names", "start", "shape", "dtype", "low",
                 "high", "nvec", "index"):
        if hasattr(a, attr):
            np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr), err_msg=attr)
    rng = np.random.default_rng(8)
    params = _params(kind, 500, rng, np.float32)
    params = {k: v + rng.normal(size=v.shape).astype(np.float32) * 3 for k, v in params.items()}
    u = _uniforms(kind, 500, rng)
    ea, eb = a.contract_action(params, u), b.contract_action(params, u)
    assert ea.dtype == eb.dtype == (space.dtype if kind != "discrete" else np.int64) and ea.shape == eb.shape
    np.testing.assert_array_equal(ea, eb)
    assert all(space.contains(x) for x in a.to_env(a.mode(params)))


def test_env_encoding_offsets_clips_and_casts():
    disc = rule_for("categorical", gym.spaces.Discrete(3, start=-1))
    assert disc.to_env(np.array([0, 2], np.int32)).tolist() == [-1, 1]
    multi = rule_for("multi_categorical", gym.spaces.MultiDiscrete([[2, 3]], start=[[5, -5]]))
    assert multi.to_env(np.array([[1, 2]], np.int32)).tolist() == [[[6, -3]]]
    bits = rule_for("bernoulli", gym.spaces.MultiBinary([2, 2]))
    out = bits.to_env(np.array([[0, 1, 1, 0]], np.int32))
    assert out.dtype == np.int8 and out.tolist() == [[[0, 1], [1, 0]]]
    box = rule_for("diag_gaussian", gym.spaces.Box(np.float32([-1, 0]), np.float32([1, 0.5]), dtype=np.float32))
    out = box.to_env(np.array([[-3.0, 0.2], [0.5, 9.0]], np.float32))
    assert out.dtype == np.float32 and out.tolist() == [[-1, np.float32(0.2)], [0.5, 0.5]]


def test_unknown_families_and_spaces_are_refused_by_name():
    with pytest.raises(ValueError, match="unknown distribution 'beta'"):
        rule_for("beta", gym.spaces.Discrete(2))
    with pytest.raises(UnsupportedSpaceError, match="Text"):
        sampling_rule(gym.spaces.Text(3))
    assert json.loads(noise_metadata(UNIFORM, 4)) == {"distribution": "uniform", "shape": [4], "dtype": "float32"}
