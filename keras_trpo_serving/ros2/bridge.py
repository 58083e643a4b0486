"""A gymnasium env on the policy node's topics: try a node against a simulator before the robot.

    python -m keras_trpo_serving.ros2.bridge --env CartPole-v1 --episodes 10
    python -m keras_trpo_serving.ros2.bridge --env Hopper-v5 --episodes 1 --rate-hz 125 --max-steps 1000

Each step publishes the env's observation (std_msgs/msg/Float32MultiArray; a Dict observation one
message per key on ``<observation_topic>/<key>``), waits for the node's action and steps the env with
it. The k-th action the node publishes (safe actions, labelled ``safe_action``, are not counted)
answers the k-th observation, so a node acting on every observation (``rate_hz`` 0) is needed. An
observation lost on the way (best-effort QoS) is published again after ``--action-timeout``.

Without ``--rate-hz`` the env waits for each action (lockstep). With it, the loop runs at that rate:
an action that has not arrived by the next tick is a missed deadline, and the env is stepped with
the previous action (the one a robot's actuators would still hold); that late action is discarded.
Every observation must then be answered, also when the node falls behind: run the node with
``observation_qos.reliability reliable`` and a queue (``observation_qos.depth``) deeper than its
backlog, and the bridge with ``--qos reliable``.

With ``--action-mask-topic`` the env's action mask (its ``action_masks()`` method, else
``info["action_mask"]``) is published there before each observation, for a node with the same
``action_mask_topic``. Whenever the env gives masks, the record counts ``invalid_actions``: the actions
the env's mask forbade.

Before each episode the node's recurrent state is zeroed (``--reset``): through its Trigger service
(``service``, acknowledged) or its episode_start topic (``topic``; the bridge waits until the node's
status counts the reset, so no observation overtakes it), or not at all (``none``).

At the end it prints one JSON object: the returns (of the episodes played, the last one maybe cut by
``--total-steps``), episode lengths, every observation and action in order with its episode index, the
round-trip times (observation published -> action received, microseconds), with ``--rate-hz`` the
missed deadlines (whichever side was late) and the overruns (ticks the bridge itself started late),
and the node's last status.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from typing import Any, Optional

import numpy as np

from keras_trpo_serving.ros2 import qos
from keras_trpo_serving.ros2.messages import SAFE_ACTION_LABEL, float32_multiarray, floats

DISCOVERY_TIMEOUT_S = 20.0
RETRIES = 5  # an observation is published at most this many times (lockstep) before the bridge gives up


class BridgeError(RuntimeError):
    """The node did not answer (no subscriber, no action within the timeouts, no reset acknowledgement)."""


def make_env(env_id: Optional[str], entry: Optional[str], kwargs: dict, mask: tuple[int, ...]) -> Any:
    """``gymnasium.make(env_id)``, or ``module:callable(**kwargs)`` (``entry``); ``mask``: observation
    entries set to zero (rl-baselines3-zoo's MaskVelocityWrapper: CartPoleNoVel-v1 is CartPole-v1 with 1 3)."""
    import gymnasium as gym

    if entry:
        module, _, attr = entry.partition(":")
        env = getattr(importlib.import_module(module), attr)(**kwargs)
    else:
        env = gym.make(env_id, **kwargs)
    if mask:
        keep = np.ones(env.observation_space.shape, env.observation_space.dtype)
        keep[list(mask)] = 0
        env = gym.wrappers.TransformObservation(env, lambda o: o * keep, env.observation_space)
    return env


def env_action(values: np.ndarray, space: Any) -> Any:
    """A Float32MultiArray action's numbers as an action of the gymnasium ``space``."""
    kind = type(space).__name__
    if kind == "Discrete":
        return int(round(float(values[0])))
    if kind in ("MultiDiscrete", "MultiBinary"):
        return np.round(values).astype(space.dtype).reshape(space.shape)
    return values.astype(space.dtype).reshape(space.shape)


class Bridge:
    """The env's side of the topics, on an rclpy ``node`` spun by ``executor``."""

    def __init__(self, node: Any, executor: Any, env: Any, args: argparse.Namespace):
        from std_msgs.msg import Bool, Float32MultiArray, String
        from std_srvs.srv import Trigger

        self.node, self.executor, self.env, self.args = node, executor, env, args
        obs_qos = qos.profile(args.qos, 1)
        spaces = getattr(env.observation_space, "spaces", None)
        self.keys = sorted(spaces) if isinstance(spaces, dict) else None
        topic = args.observation_topic
        self.publishers = ({"obs": node.create_publisher(Float32MultiArray, topic, obs_qos)} if self.keys is None else
                           {k: node.create_publisher(Float32MultiArray, f"{topic}/{k}", obs_qos) for k in self.keys})
        from keras_trpo_serving.action_masks import MaskSource
        self.masks = MaskSource(env)
        self.mask_publisher = (node.create_publisher(Float32MultiArray, args.action_mask_topic, obs_qos)
                               if args.action_mask_topic else None)
        self.actions: list[tuple[int, np.ndarray, int]] = []  # (index, numbers, perf_counter_ns at receipt)
        self.received = 0
        self.action_sub = node.create_subscription(Float32MultiArray, args.action_topic, self._on_action,
                                                   qos.control_profile())
        self.resets_seen: Optional[int] = None
        self.last_status: Optional[dict] = None
        node.create_subscription(String, f"{args.node}/status", self._on_status, qos.control_profile())
        self.episode_start = node.create_publisher(Bool, args.episode_start_topic, qos.control_profile())
        self.reset_client = node.create_client(Trigger, f"{args.node}/reset")
        self._bool, self._trigger = Bool, Trigger

    def _on_action(self, msg: Any) -> None:
        if msg.layout.dim and msg.layout.dim[0].label == SAFE_ACTION_LABEL:
            return
        self.actions.append((self.received, floats(msg).copy(), time.perf_counter_ns()))
        self.received += 1

    def _on_status(self, msg: Any) -> None:
        self.last_status = json.loads(msg.data)
        self.resets_seen = self.last_status.get("resets")

    def spin_until(self, done: Any, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while not done():
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.executor.spin_once(timeout_sec=min(left, 0.05))
        return True

    def wait_for_node(self) -> None:
        """Until the node subscribes to every observation topic and publishes actions (and status)."""
        ends = [*self.publishers.values(), *([self.mask_publisher] if self.mask_publisher else [])]
        ok = self.spin_until(lambda: all(p.get_subscription_count() for p in ends)
                             and self.node.count_publishers(self.action_sub.topic_name) > 0, DISCOVERY_TIMEOUT_S)
        if not ok:
            raise BridgeError(f"no policy node on {[p.topic_name for p in self.publishers.values()]} -> "
                              f"{self.action_sub.topic_name} after {DISCOVERY_TIMEOUT_S:g} s (with DDS on one machine: "
                              "ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, and the same ROS_DOMAIN_ID on both sides)")
        if self.args.reset == "service" and not self.reset_client.wait_for_service(timeout_sec=DISCOVERY_TIMEOUT_S):
            raise BridgeError(f"no reset service {self.reset_client.srv_name}")
        if self.args.reset == "topic" and not self.spin_until(
                lambda: self.resets_seen is not None and self.episode_start.get_subscription_count(),
                DISCOVERY_TIMEOUT_S):
            raise BridgeError(f"no status from {self.args.node} or no subscriber on {self.episode_start.topic_name}")

    def reset_node(self) -> None:
        if self.args.reset == "service":
            future = self.reset_client.call_async(self._trigger.Request())
            if not self.spin_until(future.done, self.args.action_timeout * RETRIES) or not future.result().success:
                raise BridgeError("the reset service did not answer")
        elif self.args.reset == "topic":
            before = self.resets_seen
            self.episode_start.publish(self._bool(data=True))
            if not self.spin_until(lambda: self.resets_seen is not None and self.resets_seen > before,
                                   self.args.action_timeout * RETRIES):
                raise BridgeError("the node's status did not count the episode_start")

    def publish(self, obs: Any, mask: Any = None) -> None:
        """The observation, after its mask (if there is a mask topic and the env gave one)."""
        if self.mask_publisher is not None and mask is not None:
            self.mask_publisher.publish(float32_multiarray(np.asarray(mask, np.float32), "action_mask"))
        if self.keys is None:
            self.publishers["obs"].publish(float32_multiarray(obs, "observation"))
        else:
            for k in self.keys:
                self.publishers[k].publish(float32_multiarray(obs[k], "observation"))

    def action_for(self, index: int, timeout: float) -> Optional[tuple[np.ndarray, int]]:
        """The action answering observation ``index`` if it comes within ``timeout`` s; older ones are discarded."""
        def ready() -> bool:
            while self.actions and self.actions[0][0] < index:
                self.actions.pop(0)  # late: its deadline has passed
            return bool(self.actions)
        if not self.spin_until(ready, timeout):
            return None
        _, values, at = self.actions.pop(0)
        return values, at


def run(bridge: Bridge, args: argparse.Namespace) -> dict:
    """Play the episodes; the record ``main`` prints."""
    env = bridge.env
    rec: dict[str, Any] = {"env": args.env or args.env_entry, "seed": args.seed, "returns": [], "lengths": [],
                           "episode": [], "actions": [], "rtt_us": [], "missed_deadlines": 0, "overruns": 0, "republished": 0,
                           "invalid_actions": None}
    obs_rec: Any = [] if bridge.keys is None else {k: [] for k in bridge.keys}
    period_ns = int(1e9 / args.rate_hz) if args.rate_hz else 0
    index = 0
    for episode in range(args.episodes):
        if args.total_steps and index >= args.total_steps:
            break
        obs, info = env.reset(seed=args.seed + episode)
        bridge.reset_node()
        done, total, steps, held = False, 0.0, 0, None
        tick = time.perf_counter_ns()
        while not done and (not args.max_steps or steps < args.max_steps) and not (
                args.total_steps and index >= args.total_steps):
            mask = bridge.masks(info)  # the env's mask for this step's action, or None
            sent = time.perf_counter_ns()
            bridge.publish(obs, mask)
            if period_ns:
                got = bridge.action_for(index, max(0.0, (tick + period_ns - time.perf_counter_ns()) / 1e9))
                if got is None:
                    rec["missed_deadlines"] += 1
                    if held is None:  # no action yet this episode: the node's first is needed
                        got = bridge.action_for(index, args.action_timeout)
            else:
                got = None
                for attempt in range(RETRIES):
                    got = bridge.action_for(index, args.action_timeout)
                    if got is not None:
                        break
                    rec["republished"] += 1
                    sent = time.perf_counter_ns()
                    bridge.publish(obs, mask)
            if got is None and held is None:
                raise BridgeError(f"no action for observation {index} (episode {episode}, step {steps}) within "
                                  f"{args.action_timeout * RETRIES:g} s")
            if got is not None:
                values, at = got
                rec["rtt_us"].append(round((at - sent) / 1e3, 1))
                held = values
            if bridge.keys is None:
                obs_rec.append(np.asarray(obs, np.float32).tolist())
            else:
                for k in bridge.keys:
                    obs_rec[k].append(np.asarray(obs[k], np.float32).tolist())
            rec["episode"].append(episode)
            rec["actions"].append(held.tolist())
            action = env_action(held, env.action_space)
            if mask is not None:
                from keras_trpo_serving.invalid_actions import forbidden
                bad = bool(forbidden(env.action_space, np.asarray(action)[None], np.asarray(mask, bool)[None])[0])
                rec["invalid_actions"] = (rec["invalid_actions"] or 0) + bad
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            steps += 1
            index += 1
            done = terminated or truncated
            if period_ns:
                tick += period_ns
                pause = tick - time.perf_counter_ns()
                if pause > 0:
                    time.sleep(pause / 1e9)
                else:  # the bridge itself (the env's step, its own scheduling) missed the tick
                    rec["overruns"] += 1
                # a late action answering an earlier observation arrives meanwhile: action_for discards it
        rec["returns"].append(total)
        rec["lengths"].append(steps)
    rec["observations"] = obs_rec
    bridge.spin_until(lambda: False, 0.3)  # the node's status after the last action
    rec["node_status"] = bridge.last_status
    return rec


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m keras_trpo_serving.ros2.bridge", description=__doc__.splitlines()[0])
    p.add_argument("--env", help="gymnasium env id")
    p.add_argument("--env-entry", help="module:callable making the env instead of --env (e.g. a custom env class)")
    p.add_argument("--env-kwargs", default="{}", help="JSON keyword arguments for the env (default {})")
    p.add_argument("--mask-indices", type=int, nargs="*", default=(),
                   help="observation entries set to zero (CartPoleNoVel-v1: --env CartPole-v1 --mask-indices 1 3)")
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=10_000, help="episode i resets with seed SEED + i (default 10000)")
    p.add_argument("--max-steps", type=int, default=0, help="end each episode after this many steps (0: no limit)")
    p.add_argument("--total-steps", type=int, default=0,
                   help="stop after this many steps in all, mid-episode if need be (0: after --episodes)")
    p.add_argument("--rate-hz", type=float, default=0.0, help="run the loop at this rate and count missed deadlines")
    p.add_argument("--reset", choices=("service", "topic", "none"), default="service",
                   help="how the node's recurrent state is zeroed before each episode (default service)")
    p.add_argument("--node", default="policy", help="the policy node's name, for ~/reset and ~/status (default policy)")
    p.add_argument("--observation-topic", default="observation")
    p.add_argument("--action-topic", default="action")
    p.add_argument("--episode-start-topic", default="episode_start")
    p.add_argument("--action-mask-topic", default="",
                   help="publish the env's action mask there before each observation (default: none)")
    p.add_argument("--qos", choices=("best_effort", "reliable"), default="best_effort",
                   help="the observation publishers' reliability (default best_effort)")
    p.add_argument("--action-timeout", type=float, default=1.0,
                   help="lockstep: publish the observation again after this many seconds without an action")
    p.add_argument("--namespace", default="", help="the bridge node's namespace (relative topic names resolve in it)")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if not (args.env or args.env_entry):
        print("error: give --env or --env-entry", file=sys.stderr)
        return 2
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init()
    env = make_env(args.env, args.env_entry, json.loads(args.env_kwargs), tuple(args.mask_indices))
    node = rclpy.create_node("gym_bridge", namespace=args.namespace)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        bridge = Bridge(node, executor, env, args)
        bridge.wait_for_node()
        record = run(bridge, args)
    except BridgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        return 130
    finally:
        env.close()
        node.destroy_node()
        rclpy.try_shutdown()
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
