"""``PolicyNode``: an exported keras-trpo policy as a ROS 2 node (rclpy).

Observations in (one topic, or one per key of a Dict policy), actions out, the parameters in
keras_trpo_serving/ros2/parameters.py. The node runs every callback in one thread (a single-threaded
executor): the recurrent state, the latest observations and the counters need no locks.

When it acts:
  - ``rate_hz`` 0 (default): on every observation; for a Dict policy, once every key has a new one.
  - ``rate_hz`` > 0: on a timer, with the latest observation(s). (A recurrent policy's state then
    advances at every tick, as in a fixed-rate controller.)
It never acts on an observation older than ``deadline_ms`` (its age: since the middleware received it,
or since a JointState's header stamp if that is set). While the observations are stale, or before the
first, it publishes ``safe_action`` instead (on every timer tick; without a timer every quarter
deadline) or nothing, says so once in the log and at once on the status topic, and says so again
when fresh observations are back.

Action masks: with ``action_mask_topic`` set, a masked policy's mask (std_msgs/msg/Float32MultiArray,
``policy.mask_width`` entries of 1 valid / 0 invalid) is one more input, like a Dict policy's keys:
the node acts once the observation(s) and the mask are new (or on the timer with the latest of
each), never on one older than the deadline; a bad mask is dropped (``invalid_mask``). Without the
topic a masked policy treats every action as valid.

Recurrent state: kept in the node; zeroed by the ``reset_service`` (std_srvs/srv/Trigger) and by a
true ``episode_start`` (std_msgs/msg/Bool), both before the next action.

Bad input never stops the node: a message of the wrong size, NaN or inf, a Discrete value out of
range, a JointState without the configured joints, are dropped with a rate-limited warning and
counted under ``dropped`` in the status; a publisher of another message type (found in the ROS graph at
every status period: Fast DDS raises no event for it) or of incompatible QoS on an observation topic is
reported the same way (the middleware delivers nothing from it).

Status (``status_topic``, std_msgs/msg/String, JSON): ``state`` ("waiting" before the first
observation, "ok", "stale"), ``observation_publishers`` (publishers matched per observation topic),
counters (``actions``, ``safe_actions``, ``stale_events``, ``resets``,
``errors``, ``dropped`` per reason), ``latency_us`` (observation received -> action published, over
the last ``latency_window`` actions: count, p50, p99, max, mean), ``act_us`` (the policy's call
alone), ``observation_age_ms``, and for the deadline: ``last_observation_ns``,
``last_policy_action_ns``, ``stale_since_ns`` (system clock, nanoseconds) and ``stale_after_ms``
(how long after its last observation the node found it stale).
"""
from __future__ import annotations

import functools
import json
import time
from typing import Any, Optional

import numpy as np
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from std_msgs.msg import Bool, String
from std_srvs.srv import Trigger

from keras_trpo_serving.errors import InvalidActionMask, ServingError
from keras_trpo_serving.ros2 import qos
from keras_trpo_serving.ros2.latency import LatencyWindow
from keras_trpo_serving.ros2.messages import (ActionEncoder, BadMessage, ObservationDecoder, message_class,
                                              metadata_joint_names, stamp_ns)
from keras_trpo_serving.ros2.parameters import (FLOAT32_MULTIARRAY, JOINT_STATE, NodeSettings, SettingsError,
                                                declare_parameters)
from keras_trpo_serving.ros2.ratelimit import RateLimitedLog
from keras_trpo_serving.ros2.safety import checked_safe_action, clip_action

WAITING, OK, STALE = "waiting", "ok", "stale"
MASK = "<action_mask>"  # the mask's key among the node's inputs (no observation key has angle brackets)


class MaskDecoder:
    """A Float32MultiArray -> the policy's checked mask (float32 ``[1, W]``), or ``BadMessage``."""

    def __init__(self, policy: Any):
        self.policy = policy

    def decode(self, msg: Any) -> np.ndarray:
        try:
            return self.policy.checked_mask(np.asarray(msg.data, np.float32), 1)
        except InvalidActionMask as e:
            raise BadMessage("invalid_mask", str(e)) from None
MIN_WATCHDOG_S = 0.002  # the staleness check without a control timer: every quarter deadline, at most 500 Hz


class PolicyNode(Node):
    """The policy node. ``policy`` (an ``ExportedPolicy``) is loaded from the ``model`` parameter
    when not given; ``node_name``, ``namespace``, ``parameter_overrides``, ``context`` and the other
    keyword arguments go to ``rclpy.node.Node``.

    Raises:
      SettingsError: a parameter of the wrong type or out of range, or one that does not fit the
        policy (the safe action, the joint names), named.
      ModelLoadError: the model cannot be loaded.
    """

    def __init__(self, policy: Any = None, node_name: str = "policy", **node_kwargs: Any):
        super().__init__(node_name, **node_kwargs)
        self.settings: NodeSettings = declare_parameters(self)
        s = self.settings
        if policy is None:
            if not s.model:
                raise SettingsError("parameter model is required: the exported policy's file (--model FILE, "
                                    "or -p model:=FILE)")
            from keras_trpo_serving.load import load_policy
            policy = load_policy(s.model, seed=s.seed, threads=s.threads)
        self.policy = policy
        self.log = self.get_logger()
        self.warnings = RateLimitedLog(self.log.warning, s.warning_period_s)
        self._deadline_ns = s.deadline_ns
        self._deterministic = s.deterministic
        space = policy.action_space
        try:
            self._safe = checked_safe_action(s.safe_action, space)
            joints = s.joint_names or metadata_joint_names(policy.metadata)
            self._encoder = ActionEncoder(space, s.action_type, joints if s.action_type == JOINT_STATE else (),
                                          s.action_joint_field)
            self._decoders = self._make_decoders(joints)
        except ValueError as e:
            raise SettingsError(str(e)) from None
        self._obs_keys = tuple(self._decoders)
        if s.action_mask_topic:
            if policy.mask_width is None:
                raise SettingsError(f"parameter action_mask_topic is set but {policy} has no action_mask input (it was "
                                    "exported without masks)")
            self._decoders[MASK] = MaskDecoder(policy)
        self._keys = tuple(self._decoders)  # the observation keys, then the mask's
        self._latest: dict[str, tuple[Any, int, int]] = {}  # key -> (value, monotonic ns, system ns at receipt)
        self._fresh: set[str] = set()  # keys with an observation newer than the last action
        self.state = WAITING
        self.counts = {"actions": 0, "safe_actions": 0, "stale_events": 0, "resets": 0, "errors": 0}
        self.dropped: dict[str, int] = {}
        self.latency, self.act_time = LatencyWindow(s.latency_window), LatencyWindow(s.latency_window)
        self._marks = {"last_observation_ns": 0, "last_policy_action_ns": 0, "stale_since_ns": 0}
        self._stale_after_ms: Optional[float] = None

        self._publisher = self.create_publisher(message_class(s.action_type), s.action_topic,
                                                qos.profile(s.action_qos_reliability, s.action_qos_depth))
        self._status = self.create_publisher(String, s.status_topic, qos.control_profile())
        obs_qos = qos.profile(s.observation_qos_reliability, s.observation_qos_depth)
        obs_class = message_class(s.observation_type)
        self._topics: dict[str, str] = {}
        self.observation_publishers: dict[str, int] = {}  # resolved topic -> publishers matched (not just discovered)
        self._types: dict[str, str] = {}  # resolved topic -> the message type it takes
        for key in self._keys:
            if key == MASK:
                topic, msg_class, type_name = s.action_mask_topic, message_class(FLOAT32_MULTIARRAY), FLOAT32_MULTIARRAY
            else:
                topic = s.observation_topic if policy.obs_keys is None else f"{s.observation_topic}/{key}"
                msg_class, type_name = obs_class, s.observation_type
            events = SubscriptionEventCallbacks(
                incompatible_qos=functools.partial(self._on_incompatible_qos, topic),
                matched=functools.partial(self._on_matched, topic))
            self.create_subscription(msg_class, topic, functools.partial(self._on_observation, key), obs_qos,
                                     event_callbacks=events)
            self._topics[key] = self.resolve_topic_name(topic)
            self._types[self._topics[key]] = type_name
        self.create_subscription(Bool, s.episode_start_topic, self._on_episode_start, qos.control_profile())
        self.create_service(Trigger, s.reset_service, self._on_reset)
        if s.rate_hz > 0:
            self.create_timer(1.0 / s.rate_hz, self._on_tick)
        else:
            self.create_timer(max(MIN_WATCHDOG_S, s.deadline_ms / 4e3), self._on_watchdog)
        self._wrong_types: set = set()
        self.create_timer(s.status_period_s, self._on_status_timer)
        self.log.info(f"{policy} on {sorted(self._topics.values())} -> {self._publisher.topic_name}; "
                      f"{'every observation' if s.rate_hz <= 0 else f'{s.rate_hz:g} Hz'}, deadline {s.deadline_ms:g} ms, "
                      f"safe action {self._safe_text()}; status on {self._status.topic_name}")
        self.publish_status()

    # ------------------------------------------------------------------ setup
    def _make_decoders(self, joints: tuple[str, ...]) -> dict[str, ObservationDecoder]:
        s, policy = self.settings, self.policy
        spaces = policy.observation_space.spaces or {"obs": policy.observation_space}
        return {key: ObservationDecoder(space, "observation" if policy.obs_keys is None else f"observation {key!r}",
                                        s.observation_type, joints, s.observation_joint_fields)
                for key, space in spaces.items()}

    def _safe_text(self) -> str:
        return "none (publish nothing)" if self._safe is None else str(np.atleast_1d(self._safe).tolist())

    # ------------------------------------------------------------------ input
    def _on_observation(self, key: str, msg: Any, info: Any) -> None:
        mono, wall = time.monotonic_ns(), time.time_ns()
        received = (info.get("received_timestamp") if isinstance(info, dict) else 0) or wall
        try:
            value = self._decoders[key].decode(msg)
            stamp = stamp_ns(msg)
            if stamp:  # a stamped message: its age counts from the stamp, on the node's clock
                age = self.get_clock().now().nanoseconds - stamp
                if age > self._deadline_ns:
                    raise BadMessage("stale", f"observation on {self._topics[key]} is {age / 1e6:.1f} ms old by its "
                                              f"header stamp (deadline {self.settings.deadline_ms:g} ms)")
                mono -= max(age - (wall - received), 0)  # age it as its stamp says
        except BadMessage as e:
            self._drop(e.reason, f"dropped a message on {self._topics[key]}: {e}")
            return
        except Exception as e:  # noqa: BLE001 - a message this code did not foresee must not stop the node
            self._drop("invalid", f"dropped a message on {self._topics[key]}: {type(e).__name__}: {e}")
            return
        self._latest[key] = (value, mono, received)
        self._fresh.add(key)
        self._marks["last_observation_ns"] = wall
        if self.settings.rate_hz <= 0 and len(self._fresh) == len(self._keys):
            age = self._observation_age_ns()
            if age is not None and age <= self._deadline_ns:
                self._act()
            else:  # one key's observation went stale while waiting for the others
                self._drop("stale", f"not acting: the oldest observation is {age / 1e6:.1f} ms old "
                                    f"(deadline {self.settings.deadline_ms:g} ms)")
                self._fresh.clear()

    def _on_incompatible_qos(self, topic: str, event: Any) -> None:
        self.dropped["incompatible_qos"] = self.dropped.get("incompatible_qos", 0) + 1
        self.warnings.warn("incompatible_qos", f"a publisher on {self.resolve_topic_name(topic)} offers QoS this "
                                               f"node's subscription cannot take (a best-effort publisher and "
                                               f"observation_qos.reliability reliable?): nothing is received from it")

    def _check_publisher_types(self) -> None:
        """Publishers of another message type on an observation topic: the middleware delivers nothing
        from them (and not every middleware raises an event for it), so the graph is read."""
        for topic in self._topics.values():
            for info in self.get_publishers_info_by_topic(topic):
                gid = bytes(info.endpoint_gid)
                if info.topic_type != self._types[topic] and gid not in self._wrong_types:
                    self._wrong_types.add(gid)
                    self.dropped["wrong_type"] = self.dropped.get("wrong_type", 0) + 1
                    who = f"{info.node_namespace.rstrip('/')}/{info.node_name}"
                    who = "a publisher" if "UNKNOWN" in who else f"node {who}"  # a node not yet (fully) discovered
                    self.warnings.warn("wrong_type", f"{who} publishes {info.topic_type} on {topic}, which takes "
                                                     f"{self._types[topic]}: nothing is received from it")

    def _on_matched(self, topic: str, info: Any) -> None:
        name = self.resolve_topic_name(topic)
        self.observation_publishers[name] = int(info.current_count)
        self.log.info(f"{name}: {info.current_count} publisher(s)")
        self.publish_status()

    def _on_episode_start(self, msg: Bool) -> None:
        if msg.data:
            self.reset("episode_start")

    def _on_reset(self, request: Any, response: Any) -> Any:
        self.reset("reset service")
        response.success = True
        response.message = "state zeroed" if self.policy.is_recurrent else "feed-forward policy: nothing to reset"
        return response

    def reset(self, why: str = "") -> None:
        """Zero a recurrent policy's state before the next action (a no-op for a feed-forward one)."""
        self.policy.reset()
        self.counts["resets"] += 1
        self.log.debug(f"state zeroed ({why})")
        self.publish_status()

    # ------------------------------------------------------------------ acting
    def _observation_age_ns(self) -> Optional[int]:
        """The oldest input's age, or None if an input has had no observation yet."""
        if len(self._latest) < len(self._keys):
            return None
        now = time.monotonic_ns()
        return now - min(mono for _, mono, _ in self._latest.values())

    def _on_tick(self) -> None:
        age = self._observation_age_ns()
        if age is None or age > self._deadline_ns:
            self._not_acting(age)
        else:
            self._act()

    def _on_watchdog(self) -> None:
        age = self._observation_age_ns()
        if age is None or age > self._deadline_ns:
            self._not_acting(age)

    def _act(self) -> None:
        latest = self._latest
        obs = latest["obs"][0] if self.policy.obs_keys is None else {k: latest[k][0] for k in self._obs_keys}
        mask = latest[MASK][0] if MASK in latest else None
        newest = max(received for _, _, received in latest.values())
        self._fresh.clear()
        t0 = time.perf_counter_ns()
        try:
            action = self.policy.act(obs, deterministic=self._deterministic, action_mask=mask)
        except ServingError as e:  # InvalidObservation: a Discrete value out of range, ...
            self._drop("invalid", f"dropped an observation the policy refuses: {e}")
            return
        except Exception as e:  # noqa: BLE001 - the runtime failing once must not stop the node
            self.counts["errors"] += 1
            self.warnings.warn("error", f"the policy failed on an observation: {type(e).__name__}: {e}")
            return
        self.act_time.add(time.perf_counter_ns() - t0)
        self._publisher.publish(self._encoder.encode(clip_action(action, self.policy.action_space),
                                                     self.get_clock().now().to_msg()))
        done = time.time_ns()
        self.latency.add(done - newest)
        self.counts["actions"] += 1
        self._marks["last_policy_action_ns"] = done
        if self.state != OK:
            if self.state == STALE:
                self.log.info("fresh observations again: acting on them")
            self.state = OK
            self.publish_status()

    def _not_acting(self, age: Optional[int]) -> None:
        """Stale (or no) observations: the safe action or nothing; the first time, say so."""
        if self.state == OK:
            self.state = STALE
            self.counts["stale_events"] += 1
            self._marks["stale_since_ns"] = time.time_ns()
            self._stale_after_ms = None if age is None else round(age / 1e6, 2)
            self.log.warning(f"observations stale: the last is {age / 1e6:.1f} ms old (deadline "
                             f"{self.settings.deadline_ms:g} ms); not acting on it, publishing "
                             f"{'the safe action ' + self._safe_text() if self._safe is not None else 'nothing'}")
            self.publish_status()
        if self._safe is not None:
            self._publisher.publish(self._encoder.encode(self._safe, self.get_clock().now().to_msg(), safe=True))
            self.counts["safe_actions"] += 1

    def _drop(self, reason: str, text: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        self.warnings.warn(reason, text)

    # ------------------------------------------------------------------ status
    def status(self) -> dict:
        """What the status topic carries (see the module's docstring)."""
        age = self._observation_age_ns()
        return {"node": self.get_fully_qualified_name(), "policy": str(self.policy), "state": self.state,
                "mode": "event" if self.settings.rate_hz <= 0 else f"{self.settings.rate_hz:g} Hz",
                "deadline_ms": self.settings.deadline_ms, "observation_publishers": dict(self.observation_publishers),
                **self.counts, "dropped": dict(self.dropped),
                "latency_us": self.latency.summary(), "act_us": self.act_time.summary(),
                "observation_age_ms": None if age is None else round(age / 1e6, 2),
                "stale_after_ms": self._stale_after_ms, **self._marks, "time_ns": time.time_ns()}

    def _on_status_timer(self) -> None:
        self._check_publisher_types()
        self.publish_status()

    def publish_status(self) -> None:
        self._status.publish(String(data=json.dumps(self.status())))
