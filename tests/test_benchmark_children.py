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
