"""The command line: --help without TensorFlow, a quiet stderr, plain progress in a log, presets,
evaluate --video, and export / serve through `keras-trpo`."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_trpo.presets import ZOO_TRPO
from keras_trpo.quiet import is_start_up_noise

ROOT = Path(__file__).resolve().parents[1]
NOISE = re.compile(r"cuda|cuInit|oneDNN|absl", re.IGNORECASE)


def _env():
    env = dict(os.environ)
    # as on a user's machine: nothing set (.ci/run pins TensorFlow's thread pools, which would make the
    # core count irrelevant without --portable-numerics)
    for name in ("TF_CPP_MIN_LOG_LEVEL", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        env.pop(name, None)
    return env


def _run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "keras_trpo", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, env=_env(), **kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The README's CartPole command, small: `train --timesteps 2048 --verbose 0`."""
    out = tmp_path_factory.mktemp("cli") / "cartpole"
    proc = _run("train", "--env", "CartPole-v1", "--timesteps", 2048, "--out", out, "--verbose", 0,
                "--eval-episodes", 2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


def test_help_and_presets_do_not_import_tensorflow():
    code = """
import sys
from keras_trpo.cli import main
for argv in (["--help"], ["train", "--help"], ["evaluate", "--help"], ["presets"], ["presets", "Hopper-v5"]):
    try:
        main(argv)
    except SystemExit:
        pass
heavy = sorted(m for m in ("tensorflow", "keras", "tensorflow_probability", "tf2onnx") if m in sys.modules)
print("HEAVY", heavy, file=sys.stderr)
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "HEAVY []" in proc.stderr
    assert "--resume" in proc.stdout and "--checkpoint-every" in proc.stdout and "--video" in proc.stdout


def test_train_writes_the_four_files_and_prints_our_output_only(trained):
    out, proc = trained
    noisy = [line for line in proc.stderr.splitlines() if NOISE.search(line)]
    assert noisy == [], noisy
    assert proc.stderr == ""  # nothing else either, on a CPU machine at --verbose 0
    assert sorted(p.name for p in out.iterdir()) == ["agent.keras", "learning_curve.png", "metrics.csv", "summary.json"]
    printed, summary = json.loads(proc.stdout), json.loads((out / "summary.json").read_text())
    assert {"env", "timesteps", "seed", "wall_s", "steps_per_s", "eval_mean", "eval_std"} <= set(summary)
    assert summary["timesteps"] == 2048 and summary["env"] == "CartPole-v1"
    assert printed["timesteps"] == 2048 and printed["status"] == "finished"
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "mean_return" in header and not any(h.startswith("val_") for h in header)


def test_verbose_2_shows_tensorflows_start_up_lines(trained):
    out, _ = trained
    proc = _run("evaluate", out / "agent.keras", "--episodes", 1, "--verbose", 2)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert any(is_start_up_noise(line) for line in proc.stderr.splitlines())  # what the filter hides at 0 and 1
    quiet = _run("evaluate", out / "agent.keras", "--episodes", 1)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr[-2000:]


@pytest.mark.parametrize("line, noise", [
    ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR", True),
    ("I0000 00:00:1795609556.595761   11930 port.cc:153] oneDNN custom operations are on. You may see", True),
    ("I0000 00:00:1795609556.596107   11930 cudart_stub.cc:31] Could not find cuda drivers on your machine", True),
    ("E0000 00:00:1795609558.709720   11930 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error", True),
    ("E0000 00:00:1795609558.709720   11930 some_op.cc:52] Resource exhausted: out of memory", False),
    ("<string>:6: UserWarning: a real warning", False),
    ("Traceback (most recent call last):", False),
])
def test_only_start_up_records_are_filtered(line, noise):
    assert is_start_up_noise(line) is noise


def test_progress_in_a_log_is_plain_lines(tmp_path):
    proc = _run("train", "--env", "CartPole-v1", "--timesteps", 512, "--out", tmp_path / "r", "--eval-episodes", 1,
                "--set", "n_envs=1", "--set", "n_steps=128", "--set", "jit_compile=false")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not re.search(r"[\x1b\r\b]", proc.stdout), repr(proc.stdout[:300])
    lines = proc.stdout.splitlines()
    assert re.match(r"^128/512 steps\s+25% - \d+s - eta \d+s - mean_return: ", lines[0]), lines[0]
    assert lines[-2].startswith("512/512 steps 100%") and json.loads(lines[-1])["timesteps"] == 512


def test_presets_lists_every_zoo_env():
    proc = _run("presets", "--markdown")
    assert proc.returncode == 0
    zoo_table, own_table = proc.stdout.split("\n\n")
    rows = [line for line in zoo_table.splitlines() if line.startswith("| ") and "zoo env" not in line]
    assert [r.split("|")[1].strip() for r in rows] == list(ZOO_TRPO)
    assert "| HalfCheetah-v5 | n_steps=1024" in own_table and "trial 5" in own_table
    one = _run("presets", "HalfCheetah-v5")
    assert "max_kl = 0.03  (keras-trpo preset" in one.stdout and "`--presets zoo` leaves it out" in one.stdout
    zoo = _run("presets", "HalfCheetah-v5", "--presets", "zoo")
    assert "max_kl = 0.24" in zoo.stdout and "target_kl x 6 action dimensions" in zoo.stdout


def test_evaluate_writes_a_gif_of_the_first_episode(trained, tmp_path):
    out, _ = trained
    plain = _run("evaluate", out / "agent.keras", "--episodes", 2)
    proc = _run("evaluate", out / "agent.keras", "--episodes", 2, "--video", tmp_path / "cartpole.gif")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["eval_mean"] == json.loads(plain.stdout)["eval_mean"]  # rendering changes nothing
    video = result["video"]
    from PIL import Image, ImageSequence

    with Image.open(tmp_path / "cartpole.gif") as gif:
        assert gif.size == (600, 400) and gif.info.get("loop") == 0
        frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]
        durations = [f.info["duration"] for f in ImageSequence.Iterator(gif)]
    # CartPole renders at 50 fps: every 2nd step of the first episode (seed 10000), plus the reset frame, at 25 fps.
    # (Pillow merges identical consecutive frames into one longer frame, so compare the playing time.)
    assert video["fps"] == 25.0 and sum(durations) == 40 * video["frames"]
    assert video["seconds"] == pytest.approx(video["frames"] / 25) and video["size"] == [600, 400]
    assert len(frames) > 10 and len({f.tobytes() for f in frames}) > 1  # the cart moves
    # rendered by a TF-free subprocess replaying the first episode's actions: the very same episode
    assert video["replayed_return"] == video["played_return"] and video["frames"] == int(video["played_return"]) // 2 + 1


def test_evaluate_video_of_a_mujoco_env(tmp_path):
    # MuJoCo renders with EGL (Mesa's llvmpipe here), which crashes in a process that has imported
    # TensorFlow: the episode is replayed and rendered in a subprocess without it.
    import keras_trpo

    agent = keras_trpo.TRPO("InvertedPendulum-v5", seed=0, n_envs=1, n_steps=64, value_epochs=1, jit_compile=False)
    agent.fit(64, verbose=0)
    agent.save(str(tmp_path / "agent.keras"))
    proc = _run("evaluate", tmp_path / "agent.keras", "--episodes", 2, "--video", tmp_path / "ip.mp4")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr[-2000:]
    video = json.loads(proc.stdout)["video"]
    assert video["replayed_return"] == video["played_return"] and video["size"] == [480, 480]
    import imageio.v3 as iio

    frames = iio.imread(tmp_path / "ip.mp4", plugin="FFMPEG", index=None)
    assert len(frames) == video["frames"] >= 2 and frames.std() > 10  # a picture, not a blank frame


def test_evaluate_video_errors_are_named(trained, tmp_path):
    out, _ = trained
    proc = _run("evaluate", out / "agent.keras", "--video", tmp_path / "x.avi")
    assert proc.returncode == 2 and ".mp4 or .gif" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_input_is_named_without_a_trace(tmp_path):
    for args, message in (
            (["train", "--env", "NoSuchEnv-v0", "--timesteps", 100, "--out", tmp_path / "x"], "NoSuchEnv"),
            (["train", "--env", "CartPole-v1", "--timesteps", -5], "positive number of steps"),
            (["train", "--env", "CartPole-v1", "--timesteps", 100, "--set", "nope"], "KEY=VALUE"),
            (["evaluate", tmp_path / "missing.keras"], "no agent file")):
        proc = _run(*args)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "x").exists()  # a failed start leaves no empty run directory behind


def test_export_and_serve_through_keras_trpo(trained, tmp_path):
    out, _ = trained
    onnx = tmp_path / "policy.onnx"
    proc = _run("export", out / "agent.keras", "--onnx", onnx)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert onnx.exists() and not [line for line in proc.stderr.splitlines() if NOISE.search(line)]
    served = _run("serve", "run", "--model", onnx, "--episodes", 2)
    assert served.returncode == 0, served.stderr[-2000:]
    assert json.loads(served.stdout)["episodes"] == 2


TIMING = {"rollout_s", "update_s", "steps_per_s"}


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    """``pendulum_run(name, *extra, one_core=False)``: a Pendulum-v1 run of two iterations through the command
    line, once per name for the module -> (metrics rows without timing, eval_mean, weights). The zoo's preset:
    batches of 2 x 1024 steps, large enough for two threads to split sums; those show in the weights after
    the first update and in the metrics rows from the second iteration on."""
    import csv

    import keras_trpo

    folder, runs = tmp_path_factory.mktemp("pendulum"), {}

    def run(name, *extra, one_core=False):
        if name not in runs:
            cmd = [sys.executable, "-m", "keras_trpo", "train", "--env", "Pendulum-v1", "--timesteps", "4096",
                   "--seed", "3", "--out", str(folder / name), "--verbose", "0", "--eval-episodes", "2", *extra]
            proc = subprocess.run((["taskset", "-c", "0"] if one_core else []) + cmd, cwd=ROOT,
                                  capture_output=True, text=True, env=_env())
            assert proc.returncode == 0, proc.stderr[-2000:]
            with open(folder / name / "metrics.csv", newline="") as f:
                rows = [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]
            weights = keras_trpo.load(str(folder / name / "agent.keras")).get_weights()
            runs[name] = rows, json.loads(proc.stdout)["eval_mean"], weights
        return runs[name]

    return run


def _same(a, b) -> bool:
    """Every logged number (as text), the evaluation and every weight bit."""
    return a[0] == b[0] and a[1] == b[1] and all(np.array_equal(x, y) for x, y in zip(a[2], b[2]))


def test_same_seed_in_two_processes_gives_bit_identical_runs(pendulum_run):
    """The reproducibility the README promises: same seed, same machine, same files, any process."""
    a, b = pendulum_run("two"), pendulum_run("two_again")
    assert len(a[0]) == 2 and _same(a, b)


def test_portable_numerics_make_the_core_count_irrelevant(pendulum_run):
    """Two cores against one (taskset): different sums without --portable-numerics, the same with it.
    (Its other half, oneDNN pinned to AVX2, is measured by benchmarks/reproducibility.py.)"""
    import shutil

    if shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs taskset and two cores")
    two, one = pendulum_run("two"), pendulum_run("one", one_core=True)
    assert two[0] != one[0] and not _same(two, one)  # the rows differ too, not only the weights' last bits
    assert _same(pendulum_run("two_p", "--portable-numerics"),
                 pendulum_run("one_p", "--portable-numerics", one_core=True))
