"""Collecting experience and turning it into training batches. No TensorFlow here.

- ``worker``: the one rollout path (``RolloutWorker`` steps a slice of the envs for a ``Fragment``;
  ``merge_fragments`` puts the fragments side by side as one ``Rollout``).
- ``workers``: where those workers run (``inline``, ``process``, ``ray``).
- ``gae``: generalised advantage estimation.
"""
