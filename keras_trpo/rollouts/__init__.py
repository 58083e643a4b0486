"""Collecting experience and turning it into training batches. No TensorFlow here.

- ``worker``: the one rollout path (``RolloutWorker`` steps a slice of the envs for a ``Fragment``;
  ``merge_fragments`` puts the fragments side by side as one ``Rollout``).
- ``workers``: where those workers run (``inline``, ``process``, ``ray``).
- ``collector``: an agent's workers and the reward scaling between them and the update.
- ``gae``: generalised advantage estimation; ``buffer``: advantages, sequence chunks and the
  training batch (SB3's rollout buffers as functions); ``episodes``: the window behind ``mean_return``.
"""
