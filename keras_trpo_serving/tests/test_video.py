"""`python -m keras_trpo_serving run --video` and keras_trpo_serving/video.py, in the TF-free venv (imageio, imageio-ffmpeg, pygame)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_trpo_serving.video import VideoError, check_video_path, frame_stride, write_video

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ONNX = os.environ.get("KERAS_TRPO_CARTPOLE_ONNX")


def _frames(n=12, h=32, w=48):
    """A white square moving right on black: frame i has it at column 2*i."""
    frames = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        frames[i, 8:16, 2 * i: 2 * i + 8] = 255
    return list(frames)


def test_gif_plays_at_the_given_rate_and_holds_the_frames(tmp_path):
    from PIL import Image, ImageSequence

    info = write_video(_frames(), str(tmp_path / "a.gif"), fps=25)
    assert info["frames"] == 12 and info["seconds"] == pytest.approx(0.48) and info["size"] == [48, 32]
    with Image.open(tmp_path / "a.gif") as gif:
        frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(gif)]
        durations = [f.info["duration"] for f in ImageSequence.Iterator(gif)]
    assert len(frames) == 12 and durations == [40] * 12
    np.testing.assert_array_equal(frames[5], _frames()[5])  # a GIF of pure black and white is lossless
    assert [p.name for p in tmp_path.iterdir()] == ["a.gif"]  # atomic: no temporary file left


def test_mp4_has_the_frames_and_the_rate(tmp_path):
    import imageio.v3 as iio

    info = write_video(_frames(n=30), str(tmp_path / "a.mp4"), fps=30)
    meta = iio.immeta(tmp_path / "a.mp4", plugin="FFMPEG")
    assert meta["fps"] == pytest.approx(30) and meta["size"] == (48, 32) and meta["codec"] == "h264"
    decoded = iio.imread(tmp_path / "a.mp4", plugin="FFMPEG", index=None)
    assert len(decoded) == info["frames"] == 30
    assert abs(decoded[10].astype(int) - _frames(n=30)[10].astype(int)).mean() < 8  # lossy, but the same picture


def test_bad_paths_and_empty_recordings_are_named(tmp_path):
    with pytest.raises(VideoError, match=r"\.mp4 or \.gif"):
        check_video_path(str(tmp_path / "a.avi"))
    with pytest.raises(VideoError, match="directory"):
        (tmp_path / "d.gif").mkdir()
        check_video_path(str(tmp_path / "d.gif"))
    with pytest.raises(VideoError, match="no frames"):
        write_video([], str(tmp_path / "b.gif"), fps=25)


@pytest.mark.parametrize("render_fps, stride", [(125, 5), (50, 2), (30, 1), (25, 1), (None, 1), (500, 20)])
def test_frame_stride_keeps_about_25_frames_a_second(render_fps, stride):
    assert frame_stride(render_fps) == stride


@pytest.mark.skipif(not ONNX, reason="set KERAS_TRPO_CARTPOLE_ONNX (.ci/run does)")
def test_serving_run_writes_the_first_episode(tmp_path):
    def run(*extra):
        proc = subprocess.run([sys.executable, "-m", "keras_trpo_serving", "run", "--model", ONNX, "--episodes", "2", *extra],
                              cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc, json.loads(proc.stdout)

    _, plain = run()
    proc, result = run("--video", str(tmp_path / "cartpole.mp4"))
    assert proc.stderr == ""  # no SDL / EGL complaints on a headless machine
    assert result["returns"] == plain["returns"]  # recording changes nothing
    video = result["video"]
    # CartPole renders at 50 fps: every 2nd step of the first episode plus the reset frame, played at 25 fps.
    assert video["frames"] == int(result["returns"][0]) // 2 + 1 and video["fps"] == 25.0
    assert os.path.getsize(tmp_path / "cartpole.mp4") == video["bytes"] > 1000
    assert "tensorflow" not in sys.modules


def test_isolated_recording_replays_the_same_episode(tmp_path):
    pytest.importorskip("gymnasium")  # .ci/run's serving venv has it; the replay needs it too
    from keras_trpo_serving.video import record_first_episode

    def play(env):
        rng, returns = np.random.default_rng(0), []
        for i in range(2):
            env.reset(seed=100 + i)
            done, total = False, 0.0
            while not done:
                _, r, terminated, truncated, _ = env.step(int(rng.integers(2)))
                total, done = total + r, terminated or truncated
            returns.append(total)
        return returns

    returns, video = record_first_episode("CartPole-v1", str(tmp_path / "c.gif"), play, isolate=True)
    assert video["played_return"] == video["replayed_return"] == returns[0]
    assert video["frames"] == int(returns[0]) // 2 + 1 and os.path.getsize(tmp_path / "c.gif") == video["bytes"]
