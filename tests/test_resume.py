"""`train --resume` after SIGKILL, Ctrl-C as a clean stop, `--checkpoint-every N`, run-dir repair."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import keras_trpo
from keras_trpo import run_dir
from keras_trpo.callbacks import MetricsCSVLogger, PeriodicCheckpoint

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--set", "n_envs=1", "--set", "n_steps=128", "--set", "value_epochs=2", "--set", "jit_compile=false"]


def _cli(*args):
    return [sys.executable, "-m", "keras_trpo", "train", *map(str, args)]


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _wait_for_rows(proc, path, n, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"training ended early: {proc.returncode}\n{proc.stderr.read()[-2000:]}")
        try:
            if len(path.read_text().splitlines()) > n:
                return
        except OSError:
            pass
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"{path} did not reach {n} rows in {timeout} s")


def _check_metrics(out, n_iterations, steps_per_iteration):
    rows = _rows(out / "metrics.csv")
    epochs = [int(r["epoch"]) for r in rows]
    assert epochs == list(range(n_iterations)), epochs  # strictly increasing, no gap, no duplicate
    timesteps = [int(float(r["timesteps"])) for r in rows]
    assert timesteps == [steps_per_iteration * (i + 1) for i in range(n_iterations)]


def test_sigkill_at_any_moment_then_resume_continues_to_the_same_total(tmp_path):
    out, total = tmp_path / "run", 128 * 60
    proc = subprocess.Popen(_cli("--env", "CartPole-v1", "--timesteps", total, "--out", out, "--checkpoint-every", 3,
                                 "--verbose", 0, "--eval-episodes", 1, *SMALL),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_rows(proc, out / "metrics.csv", 35)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_rows = len(_rows(out / "metrics.csv"))
    saved = keras_trpo.load(str(out / "agent.keras"))  # never half-written: it loads
    assert saved.iterations % 3 == 0 and killed_rows - 3 <= saved.iterations <= killed_rows  # at most N lost
    assert not (out / "summary.json").exists()

    resumed = subprocess.run(_cli("--resume", "--timesteps", total, "--out", out, "--verbose", 0,
                                  "--eval-episodes", 1, "--checkpoint-every", 3),
                             cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["timesteps"] == total and summary["iterations"] == 60 and summary["status"] == "finished"
    assert summary["resumed_from"]["iterations"] == saved.iterations
    _check_metrics(out, 60, 128)
    assert sorted(p.name for p in out.iterdir()) == sorted(run_dir.RUN_FILES)  # no temporary files left


def test_ctrl_c_finishes_the_iteration_saves_and_exits_130(tmp_path):
    out = tmp_path / "run"
    # Env workers in subprocesses (async vectorization), and SIGINT to the whole process group, as a
    # terminal's Ctrl-C sends it: the workers must neither die nor answer it themselves. A recurrent policy,
    # so that the CLI's train and --resume are also checked to keep the cell (given once, with --set).
    proc = subprocess.Popen(_cli("--env", "CartPoleNoVel-v1", "--timesteps", 10**7, "--out", out,
                                 "--checkpoint-every", 0, "--verbose", 0, "--vectorization", "async", *SMALL,
                                 "--set", "recurrent=gru", "--set", "recurrent_units=8"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for_rows(proc, out / "metrics.csv", 5)
    os.killpg(proc.pid, signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert stderr.count("SIGINT") == 1 and "Traceback" not in stderr, stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    agent = keras_trpo.load(str(out / "agent.keras"))
    n = len(_rows(out / "metrics.csv"))
    assert summary["status"] == "interrupted" and summary["eval_mean"] is None
    assert agent.iterations == summary["iterations"] == n and agent.num_timesteps == 128 * n  # saved after the last row
    _check_metrics(out, n, 128)
    # ... and --resume takes it on from there.
    done = subprocess.run(_cli("--resume", "--timesteps", 128 * (n + 2), "--out", out, "--verbose", 0,
                               "--eval-episodes", 1), cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    _check_metrics(out, n + 2, 128)
    resumed = keras_trpo.load(str(out / "agent.keras"))
    assert resumed.config.recurrent == "gru" and resumed.config.recurrent_units == 8
    assert resumed.num_timesteps == 128 * (n + 2) and json.loads((out / "summary.json").read_text())["status"] == "finished"


def test_resume_refuses_what_would_silently_change_the_run(tmp_path):
    out = tmp_path / "run"
    first = subprocess.run(_cli("--env", "CartPole-v1", "--timesteps", 256, "--out", out, "--verbose", 0,
                                "--eval-episodes", 1, *SMALL), cwd=ROOT, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = (out / "summary.json").read_text()
    (out / "summary.json").unlink()  # as if killed before the end: starting over would lose it
    again = subprocess.run(_cli("--env", "CartPole-v1", "--timesteps", 256, "--out", out), cwd=ROOT,
                           capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr and "--overwrite" in again.stderr
    (out / "summary.json").write_text(summary)
    for extra, message in ((["--set", "max_kl=0.1"], "--set"), (["--env", "Pendulum-v1"], "env"),
                           (["--seed", "3"], "seed")):
        bad = subprocess.run(_cli("--resume", "--timesteps", 512, "--out", out, *extra), cwd=ROOT,
                             capture_output=True, text=True)
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr[-2000:]
    done = subprocess.run(_cli("--resume", "--timesteps", 256, "--out", out, "--eval-episodes", 1), cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0 and "nothing to train" in done.stderr
    # a finished run is replaced by a fresh one (the README's quick start can be run twice)
    fresh = subprocess.run(_cli("--env", "CartPole-v1", "--timesteps", 128, "--out", out, "--eval-episodes", 1,
                                *SMALL), cwd=ROOT, capture_output=True, text=True)
    assert fresh.returncode == 0 and "replacing the finished run" in fresh.stderr
    assert len(_rows(out / "metrics.csv")) == 1


def test_checkpoint_every_n_saves_every_n_iterations(tmp_path):
    agent = keras_trpo.TRPO("CartPole-v1", seed=0, n_envs=1, n_steps=64, value_epochs=1, jit_compile=False)
    path = tmp_path / "agent.keras"
    ckpt = PeriodicCheckpoint(str(path), every=3)
    agent.fit(64 * 8, callbacks=[ckpt], verbose=0)
    assert ckpt.saved_at == [3, 6]  # iterations done at each save; the end is the caller's to save
    saved = keras_trpo.load(str(path))
    assert (saved.iterations, saved.num_timesteps) == (6, 6 * 64)
    ckpt2 = PeriodicCheckpoint(str(path), every=3)
    saved.fit(64 * 4, callbacks=[ckpt2], verbose=0)  # a resumed run keeps the schedule: 9, not 6 + 3
    assert ckpt2.saved_at == [9]
    with pytest.raises(ValueError, match="every"):
        PeriodicCheckpoint(str(path), every=0)


def test_metrics_are_truncated_to_the_checkpoint_and_half_rows_dropped(tmp_path):
    path = tmp_path / "metrics.csv"
    agent = keras_trpo.TRPO("CartPole-v1", seed=0, n_envs=1, n_steps=32, value_epochs=1, jit_compile=False)
    agent.fit(32 * 5, callbacks=[MetricsCSVLogger(str(path))], verbose=0)
    text = path.read_text()
    path.write_text(text + text.splitlines(keepends=True)[-1][:20])  # a row cut short by a kill
    (tmp_path / ".agent.keras.abc123.tmp").write_bytes(b"half a zip")
    assert run_dir.remove_stale_temp_files(tmp_path) == [".agent.keras.abc123.tmp"]
    assert run_dir.truncate_metrics(path, 3) == 3
    assert [r["epoch"] for r in _rows(path)] == ["0", "1", "2"]
    columns = run_dir.read_metrics(path)
    assert columns["timesteps"] == [32.0, 64.0, 96.0] and np.isfinite(columns["kl"]).all()
    with pytest.raises(run_dir.RunDirError, match="iterations 0..4"):
        run_dir.truncate_metrics(path, 5)  # the checkpoint is ahead of the CSV: a gap, refused
    # appending after the truncation continues under the file's own header
    agent.fit(32, callbacks=[MetricsCSVLogger(str(path), append=True)], verbose=0)
    rows = _rows(path)
    assert list(rows[0]) == list(rows[-1]) and rows[-1]["epoch"] == "5"
    os.remove(path)
    with pytest.raises(run_dir.RunDirError, match="missing"):
        run_dir.truncate_metrics(path, 2)


def _small_cartpole(**kw):
    return keras_trpo.TRPO("CartPole-v1", seed=0, n_envs=1, n_steps=256, value_epochs=1, jit_compile=False, **kw)


def test_a_resumed_run_continues_the_episode_window_and_the_predict_stream(tmp_path):
    agent = _small_cartpole()
    history = agent.fit(256 * 3, verbose=0).history
    obs = np.zeros((5, 4), np.float32)
    agent.predict(obs, deterministic=False)  # predict's stream is not at its start any more
    path = tmp_path / "agent.keras"
    agent.save(str(path))
    resumed = keras_trpo.load(str(path))
    window = list(agent._episodes)
    assert len(window) > 10 and list(resumed._episodes) == window and resumed._episodes.maxlen == 100
    for _ in range(3):  # the same draws as the uninterrupted agent's next ones
        np.testing.assert_array_equal(resumed.predict(obs, deterministic=False), agent.predict(obs, deterministic=False))
    # A 4-step rollout from fresh resets ends no CartPole episode, so the first resumed iteration's
    # mean_return is the uninterrupted run's last one: the window carried over, not restarted.
    resumed.compile(n_steps=4)
    first = resumed.fit(4, verbose=0).history
    assert first["mean_return"][0] == history["mean_return"][-1] == np.mean([r for r, _ in window])
    assert first["mean_length"][0] == history["mean_length"][-1]


def test_a_checkpoint_from_before_the_window_was_saved_still_loads(tmp_path):
    import zipfile

    agent = _small_cartpole()
    agent.fit(256, verbose=0)
    path, old = tmp_path / "agent.keras", tmp_path / "old.keras"
    agent.save(str(path))
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:  # the state.json of the previous format
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "keras_trpo/state.json":
                state = json.loads(data)
                assert {"episodes", "predict_rng"} <= set(state)
                data = json.dumps({k: v for k, v in state.items() if k not in ("episodes", "predict_rng")})
            dst.writestr(info, data)
    loaded = keras_trpo.load(str(old))
    assert len(loaded._episodes) == 0 and loaded.iterations == 1
    obs = np.zeros((5, 4), np.float32)
    fresh = np.random.default_rng(agent.seed + 1)  # predict's stream starts over, as before
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=False),
                                  loaded.family.to_env(loaded.actor.act(obs, fresh, False)))
    loaded.fit(256, verbose=0)
    assert loaded.iterations == 2
