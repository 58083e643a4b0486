"""The agent's policy as the C export renders it: its ``PolicyPlan`` (``keras_trpo.plan``), with
what C adds to a plan's limits checked, or an ``ExportError`` naming the first layer C cannot
express.

C adds: Dict keys that can name struct fields, action values within ``int32_t``, finite weights.
"""
from __future__ import annotations

import numpy as np

from keras_trpo.dict_obs import layout_of
from keras_trpo.export.c_source import c_action
from keras_trpo.export.errors import ExportError
from keras_trpo.plan.description import PlanError, PolicyPlan
from keras_trpo.plan.keras_reader import read_plan

# C99's keywords and the identifiers the generated code declares: a Dict key names a struct field.
C_RESERVED = frozenset("""auto break case char const continue default do double else enum extern float for goto if
inline int long register restrict return short signed sizeof static struct switch typedef union unsigned void
volatile while _Bool _Complex _Imaginary""".split())


def check_c_keys(keys: list[str]) -> None:
    """``ExportError`` unless every Dict key can name a C struct field and a distinct size macro."""
    seen: dict[str, str] = {}
    for key in keys:
        if key in C_RESERVED:
            raise ExportError(f"Dict observation key {key!r} is a C keyword and cannot name a field of the C export's "
                              "observation struct: rename it (e.g. with a gymnasium ObservationWrapper)")
        if key.upper() in seen:
            raise ExportError(f"Dict observation keys {seen[key.upper()]!r} and {key!r} give the same C size macro "
                              f"(..._OBS_{key.upper()}_SIZE): rename one")
        seen[key.upper()] = key


def c_policy(agent) -> PolicyPlan:
    """The agent's policy as a ``PolicyPlan`` C can express; ``ExportError`` names what it cannot."""
    layout = layout_of(agent.observation_space)
    if layout is not None:
        check_c_keys(list(layout.keys))
    try:
        plan = read_plan(agent.policy_model, agent.family, layout)
    except PlanError as e:
        raise ExportError(e.said_by("the C export")) from None
    action = c_action(plan.action)
    starts, nvec = action.starts, action.nvec
    if len(starts) and (starts.min() < -2**31 or (starts + nvec).max() > 2**31 - 1):
        raise ExportError(f"action values beyond int32 (start {starts.tolist()}): the C export's actions are int32_t")
    if not all(np.all(np.isfinite(a)) for a in plan.arrays):
        raise ExportError("the policy's weights or normaliser statistics contain NaN or inf")
    return plan
