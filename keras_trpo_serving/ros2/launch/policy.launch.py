"""Launch the policy node beside a robot's drivers (needs a ROS 2 installation with launch_ros, e.g.
`apt install ros-kilted-launch-ros`, and keras-trpo-serving installed in the Python it uses):

    ros2 launch policy.launch.py model:=/opt/policies/walker.onnx

What each parameter means: `keras-trpo-serving ros2 --help`, or `ros2 param describe /robot/policy NAME`
once it runs. Edit the remappings and parameters to the robot's topics; docs/deployment/ros2.md explains them.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("model", description="the exported policy (.onnx, .ort, .tflite or a C export directory)"),
        DeclareLaunchArgument("rate_hz", default_value="50.0", description="control rate; 0.0 acts on every observation"),
        Node(
            # The console script of keras-trpo-serving: `ros2 run` needs an ament package, a launch file does not.
            executable="keras-trpo-serving", arguments=["ros2"],
            name="policy", namespace="robot", output="screen", emulate_tty=True,
            parameters=[{
                "model": LaunchConfiguration("model"),
                "rate_hz": LaunchConfiguration("rate_hz"),
                "observation_type": "sensor_msgs/msg/JointState",
                "joint_names": ["hip", "knee", "ankle"],  # the policy's order, whatever the driver's
                "observation_joint_fields": ["position", "velocity"],
                # ros2_control's forward_command_controller (e.g. a JointGroupPositionController) takes these.
                "action_type": "std_msgs/msg/Float64MultiArray",
                "deadline_ms": 40.0,  # two control periods at 50 Hz
                "safe_action": [0.0, 0.0, 0.0],  # e.g. the joints' rest positions
            }],
            remappings=[
                ("observation", "/joint_states"),  # the driver's topic
                ("action", "/joint_group_position_controller/commands"),
            ],
        ),
    ])
