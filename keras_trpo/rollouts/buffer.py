"""From a ``Rollout`` to what the update trains on: reward scaling, advantages, training batches.

SB3's ``RolloutBuffer`` and ``RecurrentRolloutBuffer`` as functions of NumPy arrays. A rollout holds
``T`` steps of ``E`` envs in rollout order ``[T, E, ...]``. A feed-forward policy trains on the steps
flattened to ``[T E, ...]`` (step-major). A recurrent one trains on sequences: ``to_chunks`` cuts each
env's fragment into ``T // L`` consecutive sequences of ``L`` steps, env-major (row ``e * (T // L) + j``
is env ``e``'s steps ``j L .. j L + L - 1``), each starting from the state stored at its first step;
``from_chunks`` undoes it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from keras_trpo.rollouts.worker import Rollout
from keras_trpo.running_stats import RewardScaler


def scale_rewards(rollout: Rollout, scaler: RewardScaler) -> Rollout:
    """The rollout with ``rewards [T, E]`` its ``raw_rewards`` scaled by ``scaler`` (which takes them in).

    An env restarted in this rollout (its first fragment, or a replaced worker) begins a new
    discounted return.
    """
    scaler.returns[rollout.fresh_envs] = 0.0
    return dataclasses.replace(rollout, rewards=scaler(rollout.raw_rewards, rollout.episode_end))


def normalize_advantages(advantages: np.ndarray) -> np.ndarray:
    """``[B] -> [B]``: zero mean, unit standard deviation (unchanged if there is one value)."""
    if advantages.size > 1:
        return (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    return advantages


def explained_variance(values: np.ndarray, returns: np.ndarray) -> float:
    """``1 - Var[returns - values] / Var[returns]`` over every step (``values``, ``returns`` ``[T, E]``);
    nan if the returns do not vary."""
    ret = returns.reshape(-1)
    var_ret = np.var(ret)
    return float(1 - np.var(ret - values.reshape(-1)) / var_ret) if var_ret > 0 else float("nan")


def flatten_steps(x: np.ndarray) -> np.ndarray:
    """``[T, E, *rest] -> [T E, *rest]``, step-major (row ``t E + e`` is env ``e``'s step ``t``)."""
    return x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])


def check_length(n_steps: int, length: int) -> int:
    """The sequence length the update uses: ``length`` capped at ``n_steps``; 0 is the whole fragment.

    Why not always whole fragments: the cell's loop is sequential, so its cost grows with the
    sequence length, not the batch. Measured on this 2-core machine (shared, loaded), LSTM 64,
    4 envs x 1024 steps: policy step 4.0 s as whole fragments, 0.7 s in sequences of 128 and
    0.5 s of 64; critic epochs 3.5, 0.9-1.2 and 1.2 s. On CartPoleNoVel's 8 envs x 32 steps
    (one sequence per env either way) the policy step takes 0.1 s.
    """
    length = min(int(length) or int(n_steps), int(n_steps))
    if n_steps % length:
        raise ValueError(f"recurrent_sequence_length ({length}) must divide n_steps ({n_steps})")
    return length


def to_chunks(x: np.ndarray, length: int) -> np.ndarray:
    """``[T, E, *rest] -> [E * (T // L), L, *rest]``, env-major: env e's j-th chunk is row ``e * (T // L) + j``."""
    T, E = x.shape[:2]
    per_env = np.swapaxes(x, 0, 1)  # [E, T, ...]
    return np.ascontiguousarray(per_env.reshape((E * (T // length), length) + x.shape[2:]))


def from_chunks(x: np.ndarray, n_steps: int, n_envs: int) -> np.ndarray:
    """Inverse of ``to_chunks``: ``[E * (T // L), L, *rest] -> [T, E, *rest]``."""
    per_env = x.reshape((n_envs, n_steps) + x.shape[2:])
    return np.ascontiguousarray(np.swapaxes(per_env, 0, 1))


def chunk_initial_states(states: np.ndarray, length: int) -> np.ndarray:
    """The state each chunk starts from: ``states [T, E, S]`` (the state step t was computed from)
    -> ``[E * (T // L), S]``, the entries at steps ``0, L, 2L, ...`` of each env."""
    return to_chunks(states, length)[:, 0]


def minibatch_indices(n: int, batch_size: int, epochs: int, rng: np.random.Generator) -> np.ndarray:
    """``[epochs * ceil(n / batch_size), batch_size]`` row indices: a fresh permutation per epoch.

    A partial last batch is filled from the start of the same permutation so every
    batch has a static size (XLA needs that).
    """
    batch_size = min(batch_size, n)
    per_epoch = -(-n // batch_size)
    rows = []
    for _ in range(epochs):
        perm = rng.permutation(n)
        padded = np.concatenate([perm, perm[: per_epoch * batch_size - n]])
        rows.append(padded.reshape(per_epoch, batch_size))
    return np.concatenate(rows).astype(np.int32)


@dataclass(frozen=True)
class TrainingBatch:
    """One rollout as ``Learner.policy_update`` and ``Learner.value_update`` take it (``B = T E`` steps).

    ``policy_inputs``: ``obs [B, *obs_shape]``, or recurrent the tuple ``(obs [N, L, *obs_shape],
    starts [N, L] float32, state [N, S])`` with ``N = B / L`` sequences. ``actions [B, *action]`` and
    ``advantages [B]``: one row per step in the order the policy's outputs give them (sequence-major
    for sequences). ``value_inputs``: the critic's input, as ``policy_inputs`` (from the critic's own
    states). ``returns``: the critic's targets, ``[B]`` or ``[N, L]``; ``length``: the steps in one of
    its rows (1, or ``L``). ``masks``: a masked agent's ``[B, W]`` bool, the mask each action was drawn
    under, in the actions' order; None otherwise.
    """

    policy_inputs: np.ndarray | tuple
    actions: np.ndarray
    advantages: np.ndarray
    value_inputs: np.ndarray | tuple
    returns: np.ndarray
    length: int = 1
    masks: Optional[np.ndarray] = None

    def value_minibatches(self, batch_size: int, epochs: int, rng: np.random.Generator) -> np.ndarray:
        """``minibatch_indices`` over the rows of ``returns``: about ``batch_size`` steps per minibatch,
        in whole sequences (at least one)."""
        return minibatch_indices(len(self.returns), max(1, batch_size // self.length), epochs, rng)


def step_batch(rollout: Rollout, advantages: np.ndarray, returns: np.ndarray) -> TrainingBatch:
    """A feed-forward policy's batch: every step on its own. ``advantages [T E]`` (step-major),
    ``returns [T, E]``."""
    obs = flatten_steps(rollout.obs)
    masks = None if rollout.masks is None else flatten_steps(rollout.masks)
    return TrainingBatch(policy_inputs=obs, actions=flatten_steps(rollout.actions), advantages=advantages,
                         value_inputs=obs, returns=returns.reshape(-1), masks=masks)


def sequence_batch(rollout: Rollout, advantages: np.ndarray, returns: np.ndarray, critic_states: np.ndarray,
                   length: int) -> TrainingBatch:
    """A recurrent policy's batch: sequences of ``L = check_length(T, length)`` steps, the policy's
    from the states it acted from (``rollout.states [T, E, S]``), the critic's from ``critic_states
    [T, E, S']`` (its state before each step). ``advantages [T E]`` (step-major), ``returns [T, E]``."""
    T, E = rollout.rewards.shape
    L = check_length(T, length)
    obs, starts = to_chunks(rollout.obs, L), to_chunks(rollout.starts, L).astype(np.float32)
    return TrainingBatch(
        policy_inputs=(obs, starts, chunk_initial_states(rollout.states, L)),
        actions=flatten_steps(to_chunks(rollout.actions, L)),
        advantages=to_chunks(advantages.reshape(T, E), L).reshape(-1),
        value_inputs=(obs, starts, chunk_initial_states(critic_states, L)),
        returns=to_chunks(returns, L), length=L,
        masks=None if rollout.masks is None else flatten_steps(to_chunks(rollout.masks, L)))
