"""An exported keras-trpo policy as a ROS 2 node (rclpy): ``keras-trpo-serving ros2 --model FILE``.

Modules: ``parameters`` (the node's ROS parameters and their checks), ``qos`` (the topics' QoS),
``messages`` (ROS messages <-> arrays), ``safety`` (action clipping, the safe action),
``ratelimit`` and ``latency`` (rate-limited warnings, latency statistics), ``node``
(``PolicyNode``), ``cli`` (the ``ros2`` subcommand) and ``bridge`` (a gymnasium env on the same
topics, to try a node against a simulator). Importing this package imports no rclpy; ``node`` and
``bridge`` do (pip install 'keras-trpo-serving[ros2]').
"""
