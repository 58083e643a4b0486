"""The benchmark children (compare.py --child, which seeds.py and regression.py run) keep TensorFlow's
C++ start-up lines out of the log, as the command line does."""
import json
import subprocess

from benchmarks import compare
from benchmarks.benchutil import child_env
from keras_trpo.quiet import is_start_up_noise


def test_a_keras_trpo_child_prints_no_tensorflow_start_up_lines(tmp_path):
    tiny = {"n_envs": 1, "n_steps": 64, "value_epochs": 1, "jit_compile": False}
    cmd = compare.keras_trpo_command("CartPole-v1", 64, 0, tiny)  # the command seeds.run_task builds
    env = child_env(TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")  # what compare.run_child gives it
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = [json.loads(line[len("RESULT "):]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(result) == 1 and result[0]["timesteps"] == 64
    noise = [line for line in proc.stderr.splitlines() if is_start_up_noise(line)]
    assert noise == [], proc.stderr
    assert "[keras_trpo CartPole-v1 seed 0] 64/64 steps" in proc.stderr  # its own progress still shows


def test_the_benchmark_trains_the_zoos_settings_not_keras_trpos_presets():
    """A stored "zoo settings" seed must rerun as it was made: HalfCheetah-v5's own preset (adopted after its
    zoo seeds were stored) stays out of the benchmark children."""
    import gymnasium as gym

    from keras_trpo.config import default_config
    from keras_trpo.presets import own_preset

    space = gym.make("HalfCheetah-v5").action_space
    assert compare.zoo_config("HalfCheetah-v5") == default_config("HalfCheetah-v5", space, presets="zoo")
    assert compare.zoo_config("HalfCheetah-v5") != default_config("HalfCheetah-v5", space)
    assert own_preset("HalfCheetah-v5") is not None
    assert compare.zoo_config("CartPole-v1") == default_config("CartPole-v1", gym.make("CartPole-v1").action_space)
