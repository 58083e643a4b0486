"""Checks that keras_trpo_serving/ gives the same actions on another machine (an arm64 board, or arm64
emulated by check_arm64.sh) as on the x86 machine that exported the policy."""
