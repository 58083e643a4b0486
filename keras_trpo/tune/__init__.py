"""Hyperparameter search for TRPO with Optuna, as rl-baselines3-zoo's ``train.py -optimize`` does it.

``tune(env, trials=..., out=...)`` (``keras-trpo tune``) and ``show(study=..., out=...)``
(``keras-trpo tune --show``). Modules, one job each:

* ``space``: the zoo's TRPO search space in ``TRPOConfig`` names, and the user's changes to it;
* ``study``: storage, study, sampler and pruner, the settings stored with the study, trial counting;
* ``trial``: one trial (TensorFlow), with ``TrialEvaluation``, the Keras callback that feeds the pruner;
* ``worker``: a process running trials; ``driver``: starts workers, watches, reports;
* ``progress`` and ``report``: what the user sees.

Optuna is the ``tune`` extra (``pip install 'keras-trpo[tune]'``), imported only when a tune runs.
"""
from __future__ import annotations

from keras_trpo_serving.lazy import lazy_attributes

_LAZY = {
    "tune": "keras_trpo.tune.driver",
    "show": "keras_trpo.tune.driver",
    "TuneResult": "keras_trpo.tune.driver",
    "TuneError": "keras_trpo.tune.study",
    "TuneSettings": "keras_trpo.tune.study",
    "ZOO_TRPO_SPACE": "keras_trpo.tune.space",
    "TrialEvaluation": "keras_trpo.tune.trial",
}
__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
