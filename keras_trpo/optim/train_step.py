"""One TRPO iteration's learning from its rollout (SB3's ``TRPO.train``; Keras's ``train_step``)."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_trpo.config import TRPOConfig
from keras_trpo.optim.learner import Learner
from keras_trpo.policies.policy import ActorCriticPolicy
from keras_trpo.rollouts.buffer import explained_variance, flatten_steps, normalize_advantages
from keras_trpo.rollouts.gae import compute_gae
from keras_trpo.rollouts.worker import Rollout


def train_step(policy: ActorCriticPolicy, learner: Learner, rollout: Rollout, config: TRPOConfig,
               rng: np.random.Generator, iteration: int) -> dict[str, float]:
    """The critic's values over ``rollout``, GAE, the TRPO policy step and the critic's fit; the logs.

    ``rng`` draws the critic's minibatches. The observation statistics take in the rollout after the
    update (so that pi_old is the policy that acted), or before it when they start from the first
    rollout (``obs_norm_init="first_rollout"``); the NumPy actor is refreshed at the end.
    """
    cfg, r = config, rollout
    flat_obs = flatten_steps(r.obs)
    adapted = policy.normalizes_obs and cfg.obs_norm_init == "first_rollout" and policy.obs_rms.count < 1
    if adapted:  # the first batch sets the statistics before anything is learned from it
        policy.update_obs_statistics(flat_obs)
    values, next_values, critic_states = policy.rollout_values(r)
    advantages, returns = compute_gae(r.rewards, values, next_values, r.terminated, r.episode_end,
                                      cfg.gamma, cfg.gae_lambda)
    adv = advantages.reshape(-1)
    if cfg.normalize_advantage:
        adv = normalize_advantages(adv)
    batch = policy.training_batch(r, adv, returns, critic_states, cfg.recurrent_sequence_length)
    logs = learner.policy_update(batch.policy_inputs, batch.actions, batch.advantages, batch.masks)
    if logs["step_accepted"] == 0.0:
        tf.get_logger().warning(
            f"keras_trpo: iteration {iteration}: line search found no step with KL <= {cfg.max_kl} "
            f"and an improved surrogate in {cfg.line_search_steps} tries; policy parameters kept"
        )
    minibatches = batch.value_minibatches(cfg.value_batch_size, cfg.value_epochs, rng)
    logs["value_loss"] = learner.value_update(batch.value_inputs, batch.returns, minibatches)
    logs["explained_variance"] = explained_variance(values, returns)
    if r.invalid_actions is not None:  # the envs give masks: actions taken that they forbade (0 when masked)
        logs["invalid_actions"] = float(r.invalid_actions)
    if policy.normalizes_obs and not adapted:  # statistics lag one rollout so that pi_old is the policy that acted
        policy.update_obs_statistics(flat_obs)
    policy.sync()
    return logs
