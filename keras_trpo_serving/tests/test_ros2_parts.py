"""The ROS 2 node's parts that need no middleware: parameters, safety, rate limiting, latency
statistics, message conversion, the command line and the launch file (test_ros2.py runs the node)."""
import ast
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_trpo_serving.ros2.latency import LatencyWindow
from keras_trpo_serving.ros2.parameters import (BY_NAME, FLOAT32_MULTIARRAY, JOINT_STATE, PARAMETERS, NodeSettings,
                                                SettingsError)
from keras_trpo_serving.ros2.ratelimit import RateLimitedLog
from keras_trpo_serving.ros2.safety import checked_safe_action, clip_action
from keras_trpo_serving.spaces import Space

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCH = os.path.join(ROOT, "keras_trpo_serving", "ros2", "launch", "policy.launch.py")
BOX = Space.from_json('{"type": "Box", "shape": [2], "low": [-1, -0.5], "high": [1, 2]}', "a")
DISCRETE = Space.from_json('{"type": "Discrete", "n": 3, "start": 1}', "a")
MULTIDISCRETE = Space.from_json('{"type": "MultiDiscrete", "nvec": [3, 2]}', "a")
MULTIBINARY = Space.from_json('{"type": "MultiBinary", "n": 3}', "a")


def test_defaults_are_sensor_data_qos_and_act_on_every_observation():
    s = NodeSettings.from_values({})
    assert (s.observation_qos_reliability, s.observation_qos_depth) == ("best_effort", 1)
    assert s.rate_hz == 0.0 and s.deadline_ms == 100.0 and s.safe_action == () and s.deterministic and s.seed is None
    assert s.observation_type == s.action_type == FLOAT32_MULTIARRAY
    assert NodeSettings() == s  # the dataclass's defaults are the table's


def test_values_are_checked_and_converted():
    s = NodeSettings.from_values({"deadline_ms": 50, "safe_action": [0, 1.5], "seed": 3, "observation_type": "JointState",
                                  "action_type": "sensor_msgs/JointState", "joint_names": ["a", "b"]})
    assert s.deadline_ms == 50.0 and s.safe_action == (0.0, 1.5) and s.seed == 3 and s.deadline_ns == 50_000_000
    assert s.observation_type == s.action_type == JOINT_STATE and s.joint_names == ("a", "b")


@pytest.mark.parametrize("values, message", [
    ({"deadline_ms": 0}, "parameter deadline_ms must be > 0"),
    ({"deadline_ms": math.nan}, "parameter deadline_ms must be a number"),
    ({"rate_hz": -1.0}, "parameter rate_hz must be >= 0"),
    ({"observation_qos.depth": 0}, "parameter observation_qos.depth must be an integer >= 1"),
    ({"observation_qos.reliability": "fast"}, "parameter observation_qos.reliability must be one of"),
    ({"observation_type": "geometry_msgs/msg/Twist"}, "parameter observation_type must be one of"),
    ({"safe_action": ["zero"]}, "parameter safe_action must be a list of finite numbers"),
    ({"observation_joint_fields": ["position", "torque"]}, "['torque'] are not among"),
    ({"deterministic": "yes"}, "parameter deterministic must be true or false"),
    ({"seed": -2}, "parameter seed must be an integer >= -1"),
    ({"action_topic": ""}, "['action_topic'] must not be empty"),
    ({"deadline": 10}, "unknown parameter(s) ['deadline']"),
])
def test_bad_values_are_named(values, message):
    with pytest.raises(SettingsError) as e:
        NodeSettings.from_values(values)
    assert message in str(e.value)


def test_every_parameter_is_a_flag_and_a_settings_field():
    from keras_trpo_serving.cli import build_parser

    help_text = build_parser()._subparsers._group_actions[0].choices["ros2"].format_help()
    fields = set(NodeSettings.__dataclass_fields__)
    for p in PARAMETERS:
        assert p.flag in help_text and p.description[:20] in " ".join(help_text.split())
        assert p.name.replace(".", "_") in fields
    assert BY_NAME["observation_qos.depth"].flag == "--observation-qos-depth"


def test_help_imports_no_rclpy_and_no_tensorflow():
    code = ("import sys\nfrom keras_trpo_serving.cli import main\ntry:\n    main(['ros2', '--help'])\nexcept SystemExit:\n"
            "    pass\nassert not {'rclpy', 'tensorflow', 'keras'} & set(sys.modules), sorted(sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--deadline-ms" in out.stdout, out.stderr


def test_safe_action_must_fit_the_action_space():
    np.testing.assert_array_equal(checked_safe_action([0.5, 2.0], BOX), np.asarray([0.5, 2.0], np.float32))
    assert checked_safe_action([], BOX) is None
    assert checked_safe_action([2], DISCRETE) == 2 and isinstance(checked_safe_action([2], DISCRETE), np.int64)
    np.testing.assert_array_equal(checked_safe_action([2, 1], MULTIDISCRETE), [2, 1])
    np.testing.assert_array_equal(checked_safe_action([1, 0, 1], MULTIBINARY), np.asarray([1, 0, 1], np.int8))
    for values, space, message in (([0.5], BOX, "safe_action has 1 value(s); the Box action space takes 2"),
                                   ([0.5, 2.5], BOX, "safe_action[1] = 2.5 is outside the action space's [-0.5, 2]"),
                                   ([0], DISCRETE, "outside the Discrete action space (from 1 to 3)"),
                                   ([1.5], DISCRETE, "must be integers"),
                                   ([3, 0], MULTIDISCRETE, "outside the MultiDiscrete action space"),
                                   ([2, 0, 0], MULTIBINARY, "outside the MultiBinary")):
        with pytest.raises(ValueError, match=".*") as e:
            checked_safe_action(values, space)
        assert message in str(e.value)


def test_actions_are_clipped_to_a_box():
    clipped = clip_action(np.asarray([3.0, -2.0], np.float32), BOX)
    np.testing.assert_array_equal(clipped, [1.0, -0.5])
    assert clipped.dtype == np.float32
    assert clip_action(np.int64(2), DISCRETE) == 2


def test_warnings_are_rate_limited_per_kind_and_count_what_they_held_back():
    now, lines = [0.0], []
    log = RateLimitedLog(lines.append, 1.0, clock=lambda: now[0])
    assert log.warn("size", "wrong size")
    for _ in range(5):
        assert not log.warn("size", "wrong size")
    assert log.warn("nan", "a NaN")  # another kind is not held back
    now[0] = 1.5
    assert log.warn("size", "wrong size")
    assert lines == ["wrong size", "a NaN", "wrong size (5 more like it in the last 1.5 s)"]


def test_latency_window_keeps_the_last_n():
    w = LatencyWindow(4)
    assert w.summary() == {"count": 0}
    for us in (1000, 1, 2, 3, 4):
        w.add(us * 1000)
    s = w.summary()
    assert s["count"] == 4 and s["max"] == 4.0 and s["p50"] == 2.5 and w.total == 5


def test_messages_convert_both_ways():
    pytest.importorskip("std_msgs", reason="needs the ros2 extra's message packages")
    from sensor_msgs.msg import JointState

    from keras_trpo_serving.ros2.messages import (ActionEncoder, BadMessage, ObservationDecoder, float32_multiarray,
                                                  floats, metadata_joint_names, stamp_ns)
    obs_space = Space.from_json('{"type": "Box", "shape": [2, 2], "low": -1, "high": 1}', "o")
    dec = ObservationDecoder(obs_space, "observation", FLOAT32_MULTIARRAY)
    np.testing.assert_array_equal(dec.decode(float32_multiarray([1, 2, 3, 4])), [[1, 2], [3, 4]])
    for data, reason in (([1, 2, 3], "size"), ([1, math.nan, 3, 4], "nan"), ([1, 2, math.inf, 4], "nan")):
        with pytest.raises(BadMessage) as e:
            dec.decode(float32_multiarray(data))
        assert e.value.reason == reason
    assert dec.decode(float32_multiarray([1, 2, 3, 4])).dtype == np.float32
    assert ObservationDecoder(DISCRETE, "observation", FLOAT32_MULTIARRAY).decode(float32_multiarray([2])).shape == ()
    joints = ObservationDecoder(obs_space, "observation", JOINT_STATE, ("b", "a"), ("position", "velocity"))
    msg = JointState(name=["a", "b", "c"], position=[1.0, 2.0, 3.0], velocity=[-1.0, -2.0, -3.0])
    np.testing.assert_array_equal(joints.decode(msg), [[2, 1], [-2, -1]])
    with pytest.raises(BadMessage, match="lacks the joint"):
        joints.decode(JointState(name=["a"], position=[1.0], velocity=[1.0]))
    with pytest.raises(BadMessage, match="one value per name"):
        joints.decode(JointState(name=["a", "b"], position=[1.0, 2.0], velocity=[1.0]))
    with pytest.raises(ValueError, match="3 joints x 2 fields"):
        ObservationDecoder(obs_space, "observation", JOINT_STATE, ("a", "b", "c"))
    out = ActionEncoder(BOX, FLOAT32_MULTIARRAY).encode(np.asarray([0.25, 1.0], np.float32), safe=True)
    assert floats(out).tolist() == [0.25, 1.0] and out.layout.dim[0].label == "safe_action"
    js = ActionEncoder(BOX, JOINT_STATE, ["l", "r"], "velocity").encode(np.asarray([0.25, 1.0], np.float32))
    assert list(js.name) == ["l", "r"] and list(js.velocity) == [0.25, 1.0] and stamp_ns(js) == 0
    assert floats(ActionEncoder(DISCRETE, FLOAT32_MULTIARRAY).encode(np.int64(3))).tolist() == [3.0]
    assert metadata_joint_names({"joint_names": "hip, knee"}) == ("hip", "knee") and metadata_joint_names({}) == ()
    # Float64MultiArray (ros2_control's forward_command_controller's commands) both ways.
    from keras_trpo_serving.ros2.parameters import FLOAT64_MULTIARRAY
    wide = ActionEncoder(BOX, FLOAT64_MULTIARRAY).encode(np.asarray([0.1, 1.0], np.float32))
    assert type(wide).__name__ == "Float64MultiArray" and list(wide.data) == [np.float32(0.1), 1.0]
    np.testing.assert_array_equal(ObservationDecoder(obs_space, "observation", FLOAT64_MULTIARRAY).decode(
        float32_multiarray([0.1, 2, 3, 4], double=True)), np.asarray([[0.1, 2], [3, 4]], np.float32))
    assert NodeSettings.from_values({"action_type": "Float64MultiArray"}).action_type == FLOAT64_MULTIARRAY


def test_launch_file_starts_the_console_script_with_parameters_the_node_has():
    tree = ast.parse(open(LAUNCH).read())
    keys = {k.value for node in ast.walk(tree) if isinstance(node, ast.Dict)
            for k in node.keys if isinstance(k, ast.Constant)}
    assert keys and keys <= set(BY_NAME), keys - set(BY_NAME)
    calls = {kw.arg: kw.value for node in ast.walk(tree) if isinstance(node, ast.Call)
             and getattr(node.func, "id", "") == "Node" for kw in node.keywords}
    assert calls["executable"].value == "keras-trpo-serving" and [a.value for a in calls["arguments"].elts] == ["ros2"]
