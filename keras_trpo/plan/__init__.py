"""The policy as one typed description of plain arrays, read once from the Keras policy model.

- ``description``: the plan's dataclasses (observation inputs and Dict layout, normaliser, one-hot,
  Dense layers and activation names, LSTM/GRU core and its state layout, head, log-std, the action
  family's sampling rule). No TensorFlow, so the plan travels to rollout worker processes and Ray actors.
- ``activations``: the one table of activation names a plan may hold.
- ``numpy_policy``: runs a plan in NumPy (the training process's actor and the rollout workers).
- ``keras_reader``: reads a plan from a Keras policy model (TensorFlow side; import it explicitly).

The C export (``keras_trpo.export.c_source``) renders the same plan.
"""
from keras_trpo.plan.description import Dense, Normalizer, ObsInput, PlanError, PolicyPlan, Recurrent

__all__ = ["Dense", "Normalizer", "ObsInput", "PlanError", "PolicyPlan", "Recurrent"]
