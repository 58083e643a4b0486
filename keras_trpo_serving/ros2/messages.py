"""ROS messages <-> the arrays a policy takes and returns.

Observations: ``std_msgs/msg/Float32MultiArray`` or ``Float64MultiArray`` (``data`` holds the
observation flattened in C order; a Discrete observation is one number) or ``sensor_msgs/msg/JointState``
(the chosen fields, each over the joints in the configured order, concatenated). Actions: the same
types; a MultiArray action is labelled ``action``, or ``safe_action`` when it is the configured safe
action, in ``layout.dim[0].label``. A Discrete action is its index as a number.

A message that cannot be an observation raises ``BadMessage`` with a short ``reason`` ("size",
"nan", "joints") that the node counts in its status.
"""
from __future__ import annotations

import array
import math
from typing import Any, Optional, Sequence

import numpy as np

from keras_trpo_serving.ros2.parameters import FLOAT32_MULTIARRAY, FLOAT64_MULTIARRAY, JOINT_STATE, TYPES_TEXT
from keras_trpo_serving.spaces import Space

ACTION_LABEL, SAFE_ACTION_LABEL = "action", "safe_action"


class BadMessage(ValueError):
    """A message that is not an observation of the policy's; ``reason`` names the kind of problem."""

    def __init__(self, reason: str, text: str):
        super().__init__(text)
        self.reason = reason


def message_class(type_name: str) -> type:
    """The message class for a full type name (one of ``parameters.MESSAGE_TYPES``)."""
    if type_name == FLOAT32_MULTIARRAY:
        from std_msgs.msg import Float32MultiArray
        return Float32MultiArray
    if type_name == FLOAT64_MULTIARRAY:
        from std_msgs.msg import Float64MultiArray
        return Float64MultiArray
    if type_name == JOINT_STATE:
        from sensor_msgs.msg import JointState
        return JointState
    raise ValueError(f"unsupported message type {type_name!r}: {TYPES_TEXT}")


def space_size(space: Space) -> int:
    """Numbers in one observation or action of ``space`` as a message carries it (Discrete: 1)."""
    return math.prod(space.policy_input_shape)


def floats(msg: Any) -> np.ndarray:
    """A Float32MultiArray's or Float64MultiArray's ``data`` as a float32 vector (``layout`` is not
    read: C order is assumed)."""
    data = msg.data
    if isinstance(data, array.array) and data.typecode == "f":
        return np.frombuffer(data, np.float32)  # no copy; the message is not reused
    return np.asarray(data, np.float32).reshape(-1)


def float32_multiarray(values: Any, label: str = ACTION_LABEL, double: bool = False) -> Any:
    """A Float32MultiArray (``double``: Float64MultiArray) holding ``values`` flattened,
    ``layout.dim[0]`` labelled ``label``."""
    from std_msgs.msg import Float32MultiArray, Float64MultiArray, MultiArrayDimension

    flat = np.asarray(values, np.float64 if double else np.float32).reshape(-1)
    msg = Float64MultiArray() if double else Float32MultiArray()
    msg.layout.dim = [MultiArrayDimension(label=label, size=flat.size, stride=flat.size)]
    data = array.array("d" if double else "f")
    data.frombytes(flat.tobytes())
    msg.data = data
    return msg


def stamp_ns(msg: Any) -> int:
    """A message header's stamp in nanoseconds; 0 when the header is unset (or there is none)."""
    header = getattr(msg, "header", None)
    if header is None:
        return 0
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class ObservationDecoder:
    """One observation input (the policy's, or one Dict key's) from its messages.

    ``space`` is the input's space, ``what`` names it in errors ("observation", "observation 'pos'").
    For JointState: ``joint_names`` (empty: the message's own order, which must then give exactly
    the input's size) and ``fields`` (concatenated field by field).
    """

    def __init__(self, space: Space, what: str, type_name: str, joint_names: Sequence[str] = (),
                 fields: Sequence[str] = ("position", "velocity")):
        self.space, self.what, self.type_name = space, what, type_name
        self.shape = space.policy_input_shape
        self.size = space_size(space)
        self.joint_names, self.fields = tuple(joint_names), tuple(fields)
        if type_name == JOINT_STATE and self.joint_names and len(self.joint_names) * len(self.fields) != self.size:
            raise ValueError(f"{what} has {self.size} numbers; {len(self.joint_names)} joints x {len(self.fields)} "
                             f"fields {list(self.fields)} give {len(self.joint_names) * len(self.fields)}")

    def decode(self, msg: Any) -> np.ndarray:
        """The observation in ``msg`` as float32 of the input's shape (``()`` for Discrete).

        Raises:
          BadMessage: wrong size ("size"), NaN or inf ("nan"), a JointState without a configured
            joint or with a field shorter than its names ("joints").
        """
        flat = self._joint_values(msg) if self.type_name == JOINT_STATE else floats(msg)
        if flat.size != self.size:
            raise BadMessage("size", f"{self.what}: {flat.size} numbers, expected {self.size} (shape {self.shape})")
        if np.count_nonzero(np.isfinite(flat)) != flat.size:
            raise BadMessage("nan", f"{self.what} contains NaN or inf")
        return flat.reshape(self.shape)

    def _joint_values(self, msg: Any) -> np.ndarray:
        names = list(msg.name)
        columns = {f: np.asarray(getattr(msg, f), np.float64) for f in self.fields}
        short = [f for f, c in columns.items() if len(c) != len(names)]
        if short:
            raise BadMessage("joints", f"{self.what}: JointState field(s) {short} do not have one value per name "
                                       f"({len(names)} names)")
        if not self.joint_names:
            return np.concatenate([columns[f] for f in self.fields]).astype(np.float32)
        where = {n: i for i, n in enumerate(names)}
        missing = [n for n in self.joint_names if n not in where]
        if missing:
            raise BadMessage("joints", f"{self.what}: JointState lacks the joint(s) {missing[:5]}")
        order = [where[n] for n in self.joint_names]
        return np.concatenate([columns[f][order] for f in self.fields]).astype(np.float32)


class ActionEncoder:
    """Actions (and the safe action) as messages of ``type_name``; for JointState, ``field`` is
    filled over ``joint_names`` (which must then be one per action number, or empty: no names)."""

    def __init__(self, space: Space, type_name: str, joint_names: Sequence[str] = (), field: str = "position"):
        self.type_name, self.field = type_name, field
        self.size = space_size(space)
        self.joint_names = list(joint_names)
        if type_name == JOINT_STATE and self.joint_names and len(self.joint_names) != self.size:
            raise ValueError(f"the action has {self.size} numbers but {len(self.joint_names)} joint names are "
                             f"configured: {self.joint_names[:8]}")

    def encode(self, action: Any, stamp: Optional[Any] = None, safe: bool = False) -> Any:
        """The message for ``action``; ``stamp`` (a ``builtin_interfaces/msg/Time``) goes into a JointState's header."""
        if self.type_name != JOINT_STATE:
            return float32_multiarray(action, SAFE_ACTION_LABEL if safe else ACTION_LABEL,
                                      double=self.type_name == FLOAT64_MULTIARRAY)
        from sensor_msgs.msg import JointState

        msg = JointState()
        if stamp is not None:
            msg.header.stamp = stamp
        msg.name = self.joint_names
        setattr(msg, self.field, np.asarray(action, np.float64).reshape(-1).tolist())
        return msg


def metadata_joint_names(metadata: dict) -> tuple[str, ...]:
    """The policy metadata's ``joint_names`` (comma-separated, or a JSON-style list), or ()."""
    raw = metadata.get("joint_names")
    if not raw:
        return ()
    if isinstance(raw, (list, tuple)):
        return tuple(str(n) for n in raw)
    return tuple(n.strip().strip("\"'[]") for n in str(raw).split(",") if n.strip().strip("\"'[]"))
