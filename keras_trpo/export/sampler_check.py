"""Statistical check of an exported sampler against the agent's distribution.

For a few observations, many draws from the exported sampler are compared with the
distribution the agent's parameters define: a chi-square goodness-of-fit test per categorical
(cells with fewer than 5 expected draws pooled) and per Bernoulli dimension, and a
Kolmogorov-Smirnov test per Gaussian dimension on the probability integral transform of the
draws (randomised for draws clipped to a bound, so that it is exactly uniform under the
hypothesis even with clipping). The p-values are computed here in NumPy (no SciPy at export
time); tests/test_export_c.py checks them against SciPy's. With a fixed seed the result is
reproducible: a correct sampler passes or fails the same way every time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from keras_trpo.export.errors import ExportVerificationError

ALPHA = 1e-3  # family-wise: each of m tests must reach p >= ALPHA / m (Bonferroni)


def chi2_sf(x: float, dof: int) -> float:
    """P(X >= x) for X ~ chi-square(dof): the regularised upper incomplete gamma Q(dof/2, x/2)."""
    a, z = dof / 2.0, x / 2.0
    if z <= 0:
        return 1.0
    log_front = a * math.log(z) - z - math.lgamma(a)
    if z < a + 1:  # series for the lower P, then Q = 1 - P
        term = total = 1.0 / a
        n = a
        while abs(term) > abs(total) * 1e-15:
            n += 1
            term *= z / n
            total += term
        return max(0.0, 1.0 - math.exp(log_front) * total)
    # continued fraction for Q (modified Lentz)
    tiny = 1e-300
    b = z + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_front) * h)


def ks_uniform_p(u: np.ndarray) -> float:
    """Two-sided Kolmogorov-Smirnov p-value of ``u`` against Uniform(0, 1) (asymptotic
    distribution with Stephens' small-sample correction; good to a few percent for n >= 100)."""
    u = np.sort(np.asarray(u, np.float64))
    n = len(u)
    i = np.arange(1, n + 1)
    d = max(np.max(i / n - u), np.max(u - (i - 1) / n))
    lam = (math.sqrt(n) + 0.12 + 0.11 / math.sqrt(n)) * d
    if lam < 0.2:
        return 1.0
    p = 2 * sum((-1) ** (j - 1) * math.exp(-2 * j * j * lam * lam) for j in range(1, 101))
    return float(min(1.0, max(0.0, p)))


def chi2_categorical_p(counts: np.ndarray, probs: np.ndarray) -> float:
    """Chi-square p-value of category ``counts`` against ``probs``; 0 if a category of
    probability 0 was drawn, 1 if fewer than two cells have 5 expected draws."""
    counts, probs = np.asarray(counts, np.float64), np.asarray(probs, np.float64)
    if np.any(counts[probs == 0] > 0):
        return 0.0
    n = counts.sum()
    expected = n * probs
    big = expected >= 5
    cells_o, cells_e = list(counts[big]), list(expected[big])
    rest_o, rest_e = counts[~big].sum(), expected[~big].sum()
    if rest_e >= 5:
        cells_o.append(rest_o)
        cells_e.append(rest_e)
    elif cells_e:  # too few expected to stand alone: pool with the smallest cell
        k = int(np.argmin(cells_e))
        cells_o[k] += rest_o
        cells_e[k] += rest_e
    if len(cells_e) < 2:
        return 1.0
    o, e = np.array(cells_o), np.array(cells_e)
    return chi2_sf(float(np.sum((o - e) ** 2 / e)), len(e) - 1)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits.astype(np.float64) - np.max(logits))
    return z / z.sum()


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    from math import erf

    return 0.5 * (1 + np.vectorize(erf)(np.asarray(x, np.float64) / math.sqrt(2)))


@dataclass
class SamplerCheck:
    tests: int
    draws: int  # per observation
    min_p_value: float


def check_sampler(family: str, params: dict[str, np.ndarray], draws: np.ndarray, *, nvec=None, starts=None,
                  low=None, high=None, what: str = "sampler", alpha: float = ALPHA, seed: int = 0) -> SamplerCheck:
    """Test ``draws [K, M, action_size]`` (M draws for each of K observations, flattened
    actions) against the distribution of ``params`` (the agent's, ``[K, ...]``).

    Raises ``ExportVerificationError`` if any test's p-value is below ``alpha / tests``.
    """
    rng = np.random.default_rng(seed)  # only for the randomised transform of clipped draws
    k_obs, m = draws.shape[:2]
    p_values: list[tuple[float, str]] = []
    for k in range(k_obs):
        if family in ("categorical", "multi_categorical"):
            offset = 0
            for j, (n, s) in enumerate(zip(nvec, starts)):
                probs = _softmax(params["logits"][k, offset: offset + n])
                counts = np.bincount((draws[k, :, j].astype(np.int64) - s).clip(-1, n) + 1, minlength=n + 2)
                if counts[0] or counts[-1]:
                    p_values.append((0.0, f"observation {k}, categorical {j}: a draw outside its {n} categories"))
                else:
                    p_values.append((chi2_categorical_p(counts[1:-1], probs), f"observation {k}, categorical {j}"))
                offset += n
        elif family == "bernoulli":
            for j in range(draws.shape[2]):
                z = -float(params["logits"][k, j])  # a masked (forced) bit's logit is +-1e9: exp would overflow
                p1 = 0.0 if z > 700 else 1 / (1 + math.exp(z))
                ones = int(np.sum(draws[k, :, j] == 1))
                bad = int(np.sum((draws[k, :, j] != 0) & (draws[k, :, j] != 1)))
                p = 0.0 if bad else chi2_categorical_p(np.array([m - ones, ones]), np.array([1 - p1, p1]))
                p_values.append((p, f"observation {k}, dimension {j}"))
        else:
            mean, std = params["mean"][k].astype(np.float64), np.exp(params["log_std"][k].astype(np.float64))
            for j in range(draws.shape[2]):
                x = draws[k, :, j].astype(np.float64)
                u = _normal_cdf((x - mean[j]) / std[j])
                lo, hi = _normal_cdf((float(low[j]) - mean[j]) / std[j]), _normal_cdf((float(high[j]) - mean[j]) / std[j])
                at_low, at_high = x <= float(low[j]), x >= float(high[j])
                # A draw clipped to a bound stands for all the mass beyond it: spread it uniformly there.
                u = np.where(at_low, rng.uniform(0, 1, m) * lo, u)
                u = np.where(at_high, hi + rng.uniform(0, 1, m) * (1 - hi), u)
                p_values.append((ks_uniform_p(u), f"observation {k}, dimension {j}"))
    worst = min(p_values)
    if worst[0] < alpha / len(p_values):
        test = "Kolmogorov-Smirnov" if family == "diag_gaussian" else "chi-square"
        raise ExportVerificationError(
            f"{what}: draws do not follow the agent's distribution ({worst[1]}: {test} p = {worst[0]:.3g} < "
            f"{alpha:g}/{len(p_values)} over {m} draws)")
    return SamplerCheck(len(p_values), m, worst[0])
