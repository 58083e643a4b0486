"""``keras-trpo-serving ros2 --model FILE``: run the policy node until Ctrl-C or SIGTERM.

Every ROS parameter of the node (keras_trpo_serving/ros2/parameters.py) is also a flag
(``deadline_ms`` -> ``--deadline-ms``, ``observation_qos.depth`` -> ``--observation-qos-depth``);
a flag given sets the parameter, and everything after ``--ros-args`` goes to ROS as it is
(``-p name:=value``, ``--params-file FILE``, ``-r old:=new`` remappings, ``--log-level``).
This module imports no rclpy until the node starts, so ``--help`` works without it.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Optional

from keras_trpo_serving.ros2.parameters import PARAMETERS, Param

HELP = "run the policy as a ROS 2 node: observations in, actions out on topics (needs the ros2 extra)"
DESCRIPTION = ("Run an exported policy as a ROS 2 node (rclpy; pip install 'keras-trpo-serving[ros2]'): observations "
               "in on a topic (one per key for a Dict policy), actions out on another, std_msgs/Float32MultiArray or "
               "sensor_msgs/JointState; a deadline on stale observations, a safe action, a reset service and an "
               "episode_start topic for recurrent policies, and the status with latency statistics on ~/status. "
               "Each flag sets the ROS parameter of the same name (ros2 param describe /policy NAME); arguments "
               "after --ros-args go to ROS.")
MISSING_RCLPY = ("`keras-trpo-serving ros2` needs rclpy and the message packages ({name} is missing): "
                 "pip install 'keras-trpo-serving[ros2]' (or -r keras_trpo_serving/requirements-ros2.txt), or "
                 "source a ROS 2 installation")


def _flag_type(p: Param) -> dict:
    """argparse options for a parameter's flag, from its default's type."""
    d = p.default
    if isinstance(d, bool):
        return {"type": _boolean, "metavar": "true|false"}
    if p.name == "model":
        return {"type": str, "metavar": "FILE"}
    if isinstance(d, list):
        item = str if p.name in ("joint_names", "observation_joint_fields") else float
        return {"type": item, "nargs": "*", "metavar": "NAME" if item is str else "X"}
    return {"type": type(d), "metavar": {str: "TEXT", float: "X", int: "N"}[type(d)]}


def _boolean(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``ros2`` subcommand, with a flag per ROS parameter."""
    p = subparsers.add_parser("ros2", help=HELP, description=DESCRIPTION)
    p.add_argument("--name", default="policy", help="the node's name (default policy)")
    p.add_argument("--namespace", default="", help="the node's namespace (default: none; --ros-args -r __ns:=/x also works)")
    for param in PARAMETERS:
        default = "" if param.default in ("", []) else f"; default {param.default}"
        constraint = f" ({param.constraints})" if param.constraints else ""
        # None: not given, the parameter keeps its default or a --ros-args/launch-file value (even model's:
        # a launch file passes the parameters in a file after --ros-args).
        p.add_argument(param.flag, dest=f"param:{param.name}", default=None,
                       help=f"{param.description}{constraint}{default}".replace("%", "%%"), **_flag_type(param))
    p.add_argument("--ros-args", dest="ros_args", nargs=argparse.REMAINDER, default=None,
                   help="everything after it goes to ROS (-p name:=value, --params-file FILE, -r from:=to, ...)")
    return p


def parameter_values(args: argparse.Namespace) -> dict[str, Any]:
    """The parameters set by flags: name -> value."""
    return {name[len("param:"):]: value for name, value in vars(args).items()
            if name.startswith("param:") and value is not None}


def run(args: argparse.Namespace) -> int:
    """Start rclpy, run the node until shutdown; 0 on a clean stop (Ctrl-C, SIGTERM)."""
    try:
        import rclpy
        from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
        from rclpy.parameter import Parameter

        from keras_trpo_serving.ros2.node import PolicyNode
    except ImportError as e:
        print("error: " + MISSING_RCLPY.format(name=e.name), file=sys.stderr)
        return 2
    from keras_trpo_serving.errors import ServingError
    from keras_trpo_serving.ros2.parameters import SettingsError

    # Only what follows --ros-args goes to ROS (by default rclpy would read sys.argv).
    rclpy.init(args=["keras-trpo-serving", *(["--ros-args", *args.ros_args] if args.ros_args else [])])
    node: Optional[PolicyNode] = None
    try:
        overrides = [Parameter(name, value=value) for name, value in parameter_values(args).items()]
        node = PolicyNode(node_name=args.name, namespace=args.namespace, parameter_overrides=overrides)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (SettingsError, ServingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
