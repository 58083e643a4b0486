"""The QoS profiles of the policy node's topics, from its parameters.

Observations default to sensor-data QoS with a queue of one (best effort, keep last 1, volatile):
an observation that arrives while the policy is busy replaces the waiting one instead of queueing
behind it, so the policy never acts on an old one. (rclpy's ``qos_profile_sensor_data`` keeps 5.)
A best-effort subscription also receives from reliable publishers; a reliable one would refuse
best-effort publishers, which is what most sensor drivers are.
"""
from __future__ import annotations

from typing import Any

# Control messages (episode_start) and the status must not be lost: reliable, a short queue.
CONTROL_DEPTH = 10


def profile(reliability: str, depth: int) -> Any:
    """A keep-last, volatile ``rclpy.qos.QoSProfile``; ``reliability`` is "best_effort" or "reliable"."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    policies = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, durability=DurabilityPolicy.VOLATILE,
                      reliability=policies[reliability])


def control_profile() -> Any:
    """Reliable, keep last ``CONTROL_DEPTH``: episode starts and the status."""
    return profile("reliable", CONTROL_DEPTH)
