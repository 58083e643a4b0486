"""The policy node's ROS parameters: one table (name, default, description) that the node declares
with descriptors and the command line turns into flags, and ``NodeSettings``, their values checked.

Standard library only (no rclpy): ``keras-trpo-serving ros2 --help`` reads this table. The node
declares every parameter read-only (restart the node to change one) with dynamic typing, so that
``-p deadline_ms:=50`` works as well as ``:=50.0``; ``NodeSettings.from_values`` checks the types
and ranges itself and names the parameter in its errors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

FLOAT32_MULTIARRAY, JOINT_STATE = "std_msgs/msg/Float32MultiArray", "sensor_msgs/msg/JointState"
# What ros2_control's forward_command_controller (and JointGroup*Controller) take as commands.
FLOAT64_MULTIARRAY = "std_msgs/msg/Float64MultiArray"
MESSAGE_TYPES = (FLOAT32_MULTIARRAY, FLOAT64_MULTIARRAY, JOINT_STATE)
# What a message-type parameter accepts for each type: the full name, the ROS 1 style and the bare name.
MESSAGE_TYPE_NAMES = {alias: t for t in MESSAGE_TYPES
                      for alias in (t, t.replace("/msg/", "/"), t.rsplit("/", 1)[1])}
TYPES_TEXT = ", ".join(MESSAGE_TYPES)
JOINT_FIELDS = ("position", "velocity", "effort")
RELIABILITIES = ("best_effort", "reliable")


@dataclass(frozen=True)
class Param:
    """One ROS parameter: its name (``ros2 param`` style), default, and what ``ros2 param describe`` says."""

    name: str
    default: Any
    description: str
    constraints: str = ""

    @property
    def flag(self) -> str:
        """The command-line flag: ``observation_qos.depth`` -> ``--observation-qos-depth``."""
        return "--" + self.name.replace(".", "-").replace("_", "-")


PARAMETERS: tuple[Param, ...] = (
    Param("model", "", "the exported policy: an .onnx, .ort or .tflite file or a C export directory "
                       "(keras_trpo_serving.load.load_policy chooses the runtime by content)", "required"),
    Param("observation_topic", "observation",
          "topic of the observations; a Dict policy takes one topic per key: <observation_topic>/<key>"),
    Param("observation_type", FLOAT32_MULTIARRAY,
          "message type of the observations", TYPES_TEXT),
    Param("action_topic", "action", "topic the actions are published on"),
    Param("action_type", FLOAT32_MULTIARRAY, "message type of the actions (Float64MultiArray: what ros2_control's "
                                             "forward_command_controller takes)", TYPES_TEXT),
    Param("joint_names", [], "JointState: the joints, in the policy's order; empty: the policy's metadata "
                             "'joint_names' (comma-separated), else the order of the observation message's names"),
    Param("observation_joint_fields", ["position", "velocity"],
          "JointState observations: the fields concatenated, each over all joints in joint_names order",
          "each of position, velocity, effort"),
    Param("action_joint_field", "position", "JointState actions: the field the action fills",
          "position, velocity or effort"),
    Param("episode_start_topic", "episode_start",
          "std_msgs/msg/Bool topic; true zeros a recurrent policy's state before its next action"),
    Param("action_mask_topic", "", "a masked policy (one exported with an action_mask input) only: the "
                                   "std_msgs/msg/Float32MultiArray topic of the action mask (1 valid, 0 invalid, the "
                                   "export's layout), then an input like the observations: each action waits for a "
                                   "new mask, and a stale one is not acted on; empty: no mask, every action valid"),
    Param("reset_service", "~/reset", "std_srvs/srv/Trigger service that zeros a recurrent policy's state"),
    Param("status_topic", "~/status", "std_msgs/msg/String topic carrying the node's status as JSON"),
    Param("rate_hz", 0.0, "0: act on every observation message; > 0: act on a timer at this rate with the "
                          "latest observation", ">= 0"),
    Param("deadline_ms", 100.0, "observations older than this (since they were received, or since their header "
                                "stamp for JointState) are not acted on", "> 0"),
    Param("safe_action", [], "published instead of an action while the observations are stale (or before the "
                             "first); empty: publish nothing", "the action's size, within the action space"),
    Param("deterministic", True, "false: sample actions from the exported distribution (seeded by seed)"),
    Param("seed", -1, "seed of stochastic actions; -1: unseeded", ">= -1"),
    Param("threads", 1, "runtime threads per action (onnxruntime intra-op, LiteRT interpreter)", ">= 1"),
    Param("observation_qos.reliability", "best_effort",
          "observation subscriptions' reliability (sensor-data QoS: best_effort)", "best_effort or reliable"),
    Param("observation_qos.depth", 1, "observation subscriptions' queue (keep last N; 1: never an old one)", ">= 1"),
    Param("action_qos.reliability", "reliable",
          "action publisher's reliability (reliable reaches both best_effort and reliable subscribers)",
          "best_effort or reliable"),
    Param("action_qos.depth", 1, "action publisher's queue (keep last N)", ">= 1"),
    Param("status_period_s", 1.0, "the status is published this often (and at once when it changes state)", "> 0"),
    Param("warning_period_s", 1.0, "a warning about dropped messages is logged at most once per period and reason",
          "> 0"),
    Param("latency_window", 1000, "the status's latency statistics cover the last N actions", ">= 1"),
)
BY_NAME: dict[str, Param] = {p.name: p for p in PARAMETERS}


class SettingsError(ValueError):
    """A parameter's value is of the wrong type or out of range; the message names the parameter."""


def _number(name: str, value: Any, minimum: float, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SettingsError(f"parameter {name} must be a number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        raise SettingsError(f"parameter {name} must be {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return float(value)


def _integer(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SettingsError(f"parameter {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _text(name: str, value: Any, choices: Optional[Mapping[str, str] | Sequence[str]] = None) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"parameter {name} must be a string, got {value!r}")
    if choices is not None and value not in choices:
        raise SettingsError(f"parameter {name} must be one of {sorted(set(choices))}, got {value!r}")
    return choices[value] if isinstance(choices, Mapping) else value


def _strings(name: str, value: Any, choices: Sequence[str] = ()) -> tuple[str, ...]:
    items = list(value) if isinstance(value, (list, tuple)) else None
    if items is None or not all(isinstance(v, str) and v for v in items):
        raise SettingsError(f"parameter {name} must be a list of non-empty strings, got {value!r}")
    bad = [v for v in items if choices and v not in choices]
    if bad:
        raise SettingsError(f"parameter {name}: {bad} are not among {list(choices)}")
    return tuple(items)


def _numbers(name: str, value: Any) -> tuple[float, ...]:
    items = list(value) if isinstance(value, (list, tuple)) else None
    if items is None or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                for v in items):
        raise SettingsError(f"parameter {name} must be a list of finite numbers, got {value!r}")
    return tuple(float(v) for v in items)


@dataclass(frozen=True)
class NodeSettings:
    """The parameters' values, checked (``from_values``); the names are the parameters' with ``.`` -> ``_``."""

    model: str = ""
    observation_topic: str = "observation"
    observation_type: str = FLOAT32_MULTIARRAY
    action_topic: str = "action"
    action_type: str = FLOAT32_MULTIARRAY
    joint_names: tuple[str, ...] = ()
    observation_joint_fields: tuple[str, ...] = ("position", "velocity")
    action_joint_field: str = "position"
    episode_start_topic: str = "episode_start"
    action_mask_topic: str = ""
    reset_service: str = "~/reset"
    status_topic: str = "~/status"
    rate_hz: float = 0.0
    deadline_ms: float = 100.0
    safe_action: tuple[float, ...] = ()
    deterministic: bool = True
    seed: Optional[int] = None
    threads: int = 1
    observation_qos_reliability: str = "best_effort"
    observation_qos_depth: int = 1
    action_qos_reliability: str = "reliable"
    action_qos_depth: int = 1
    status_period_s: float = 1.0
    warning_period_s: float = 1.0
    latency_window: int = 1000

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> "NodeSettings":
        """Check every parameter in ``values`` (name -> value; missing ones take their default).

        Raises:
          SettingsError: naming the parameter and what it must be.
        """
        unknown = sorted(set(values) - set(BY_NAME))
        if unknown:
            raise SettingsError(f"unknown parameter(s) {unknown}; the node has {sorted(BY_NAME)}")
        v = {p.name: values.get(p.name, p.default) for p in PARAMETERS}
        if not isinstance(v["deterministic"], bool):
            raise SettingsError(f"parameter deterministic must be true or false, got {v['deterministic']!r}")
        seed = _integer("seed", v["seed"], -1)
        topics = {n: _text(n, v[n]) for n in ("observation_topic", "action_topic", "episode_start_topic",
                                              "reset_service", "status_topic")}
        empty = [n for n, t in topics.items() if not t]
        if empty:
            raise SettingsError(f"parameter(s) {empty} must not be empty")
        return cls(
            model=_text("model", v["model"]), **topics,
            action_mask_topic=_text("action_mask_topic", v["action_mask_topic"]),
            observation_type=_text("observation_type", v["observation_type"], MESSAGE_TYPE_NAMES),
            action_type=_text("action_type", v["action_type"], MESSAGE_TYPE_NAMES),
            joint_names=_strings("joint_names", v["joint_names"]),
            observation_joint_fields=_strings("observation_joint_fields", v["observation_joint_fields"], JOINT_FIELDS),
            action_joint_field=_text("action_joint_field", v["action_joint_field"], JOINT_FIELDS),
            rate_hz=_number("rate_hz", v["rate_hz"], 0.0),
            deadline_ms=_number("deadline_ms", v["deadline_ms"], 0.0, strict=True),
            safe_action=_numbers("safe_action", v["safe_action"]),
            deterministic=v["deterministic"], seed=None if seed < 0 else seed,
            threads=_integer("threads", v["threads"], 1),
            observation_qos_reliability=_text("observation_qos.reliability", v["observation_qos.reliability"],
                                              RELIABILITIES),
            observation_qos_depth=_integer("observation_qos.depth", v["observation_qos.depth"], 1),
            action_qos_reliability=_text("action_qos.reliability", v["action_qos.reliability"], RELIABILITIES),
            action_qos_depth=_integer("action_qos.depth", v["action_qos.depth"], 1),
            status_period_s=_number("status_period_s", v["status_period_s"], 0.0, strict=True),
            warning_period_s=_number("warning_period_s", v["warning_period_s"], 0.0, strict=True),
            latency_window=_integer("latency_window", v["latency_window"], 1),
        )

    @property
    def deadline_ns(self) -> int:
        return int(self.deadline_ms * 1e6)


def declare_parameters(node: Any) -> NodeSettings:
    """Declare every parameter of ``PARAMETERS`` on ``node`` (an ``rclpy.node.Node``) with its
    descriptor, read the values (defaults, launch-file or ``--ros-args -p`` overrides) and check them.

    Raises:
      SettingsError: a value of the wrong type or out of range.
    """
    from rcl_interfaces.msg import ParameterDescriptor

    values = {}
    for p in PARAMETERS:
        descriptor = ParameterDescriptor(name=p.name, description=p.description, additional_constraints=p.constraints,
                                         read_only=True, dynamic_typing=True)
        values[p.name] = node.declare_parameter(p.name, p.default, descriptor).value
    # An empty list declared without a type comes back as an empty byte array: the same "nothing".
    values = {k: (list(v) if isinstance(v, (list, tuple)) or hasattr(v, "tolist") else v) for k, v in values.items()}
    return NodeSettings.from_values(values)
