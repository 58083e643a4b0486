"""Record the first episode an evaluation plays and write it as an MP4 or a GIF.

Used by ``python -m keras_trpo_serving run --video`` and ``keras-trpo evaluate --video``. It needs
gymnasium (for the wrapper) and imageio (to write; ``pip install imageio imageio-ffmpeg`` or the
``video`` extra), never TensorFlow. Frames come from ``render_mode="rgb_array"``; only the
frames that go into the file are rendered, since a software-rendered MuJoCo frame costs
0.1-0.3 s on a CPU.

Headless MuJoCo: MuJoCo renders through OpenGL. With no display, ``MUJOCO_GL=egl`` works on
Linux with Mesa's EGL (Debian: ``apt-get install libegl1 libgl1``; on llvmpipe, no GPU needed);
``headless_rendering_defaults()`` sets it when nothing else was chosen.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Optional

from keras_trpo_serving.files import atomic_target

VIDEO_SUFFIXES = (".mp4", ".gif")
DEFAULT_FPS = 25.0  # GIF frame times are whole centiseconds and viewers slow anything faster than ~50 fps


class VideoError(Exception):
    """The video cannot be recorded or written (bad path, missing package, env that cannot render)."""


def check_video_path(path: str) -> Path:
    """The output path, if its suffix is one we can write; raises ``VideoError`` naming it otherwise."""
    p = Path(path)
    if p.suffix.lower() not in VIDEO_SUFFIXES:
        raise VideoError(f"--video {path!r}: the file must end in .mp4 or .gif")
    if p.exists() and p.is_dir():
        raise VideoError(f"--video {path!r} is a directory")
    return p


def headless_rendering_defaults() -> None:
    """With no display: EGL for MuJoCo unless MUJOCO_GL was chosen, and SDL's dummy drivers for pygame
    (must run before mujoco or pygame is imported)."""
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return
    # pygame (classic control, Box2D) draws off-screen; SDL would otherwise look for a sound server
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    if "MUJOCO_GL" not in os.environ:
        os.environ["MUJOCO_GL"] = "egl"
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
        os.environ.setdefault("EGL_PLATFORM", "surfaceless")  # else Mesa probes Wayland and complains about XDG_RUNTIME_DIR


def frame_stride(render_fps: Optional[float], fps: float = DEFAULT_FPS) -> int:
    """Keep every k-th step so the video plays at about ``fps`` in real time: k = round(render_fps / fps) >= 1."""
    if not render_fps or render_fps <= fps:
        return 1
    return max(1, round(render_fps / fps))


def make_first_episode_recorder(env: Any, stride: int = 1) -> Any:
    """Wrap a ``render_mode="rgb_array"`` env so that it keeps every ``stride``-th frame of its first
    episode (the frame after reset included) in ``.frames``; later episodes are not rendered."""
    import gymnasium as gym

    class FirstEpisodeRecorder(gym.Wrapper):
        def __init__(self, inner: gym.Env):
            super().__init__(inner)
            self.frames: list = []
            self._episodes, self._t = 0, 0

        def reset(self, **kwargs):
            out = self.env.reset(**kwargs)
            self._episodes, self._t = self._episodes + 1, 0
            if self._episodes == 1:
                self._capture()
            return out

        def step(self, action):
            out = self.env.step(action)
            self._t += 1
            if self._episodes == 1 and self._t % stride == 0:
                self._capture()
            return out

        def _capture(self) -> None:
            frame = self.env.render()
            if frame is None or getattr(frame, "ndim", 0) != 3:
                raise VideoError(f"{self.env.spec.id if self.env.spec else self.env} rendered "
                                 f"{type(frame).__name__}, not an RGB image; does it support render_mode='rgb_array'?")
            self.frames.append(frame)

    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    return FirstEpisodeRecorder(env)


def make_render_env(env_id: str, **env_kwargs: Any) -> Any:
    """``gym.make(env_id, render_mode="rgb_array")``, through the model's "track" camera if it has one,
    with a clear error for the usual failures."""
    import gymnasium as gym

    headless_rendering_defaults()
    try:
        env = gym.make(env_id, render_mode="rgb_array", **env_kwargs)
        if "camera_name" not in env_kwargs and "camera_id" not in env_kwargs and _has_tracking_camera(env):
            # MuJoCo's default free camera stays put and a walker leaves the picture; the model's "track"
            # camera (Hopper, Walker2d, HalfCheetah, Ant, Humanoid) follows it
            env.close()
            env = gym.make(env_id, render_mode="rgb_array", camera_name=TRACKING_CAMERA, **env_kwargs)
        return env
    except gym.error.DependencyNotInstalled as e:
        raise VideoError(f"cannot render {env_id}: {e}") from None


TRACKING_CAMERA = "track"


def _has_tracking_camera(env: Any) -> bool:
    model = getattr(env.unwrapped, "model", None)
    if model is None or "mujoco" not in type(model).__module__:
        return False
    import mujoco

    return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, TRACKING_CAMERA) >= 0


def write_video(frames: list, path: str, fps: float) -> dict:
    """Write RGB frames (each ``[H, W, 3]`` uint8) to ``path`` (.mp4 or .gif), atomically.

    Returns ``{"path", "frames", "seconds", "fps", "bytes", "size": [W, H]}``.
    """
    import numpy as np

    out = check_video_path(path)
    if not frames:
        raise VideoError("no frames were recorded")
    try:
        import imageio.v3 as iio
    except ImportError:
        raise VideoError("writing a video needs imageio: pip install imageio imageio-ffmpeg "
                         "(or the video extra: pip install 'keras-trpo[video]')") from None
    stack = np.stack([np.asarray(f, dtype=np.uint8) for f in frames])
    suffix = out.suffix.lower()
    try:
        with atomic_target(out, suffix) as tmp:  # the encoders pick the format by the ending
            if suffix == ".gif":
                # Pillow: frame duration in milliseconds, whole centiseconds in the file.
                iio.imwrite(str(tmp), stack, extension=".gif", duration=10 * round(100 / fps), loop=0)
            else:
                _write_mp4(str(tmp), stack, fps)
    except VideoError:
        raise
    except Exception as e:  # noqa: BLE001 - an encoder failure, with its cause
        raise VideoError(f"could not write {str(out)!r}: {type(e).__name__}: {e}") from e
    h, w = stack.shape[1:3]
    return {"path": str(out), "frames": len(stack), "seconds": round(len(stack) / fps, 3), "fps": round(fps, 3),
            "bytes": out.stat().st_size, "size": [int(w), int(h)]}


def _write_mp4(path: str, stack, fps: float) -> None:
    try:
        import imageio_ffmpeg  # noqa: F401 - the ffmpeg binary imageio uses for MP4
    except ImportError:
        raise VideoError("writing an MP4 needs imageio-ffmpeg: pip install imageio-ffmpeg "
                         "(or write a .gif, which needs only imageio and Pillow)") from None
    import imageio.v2 as iio2

    # H.264 in yuv420p plays everywhere; it needs even sides, which macro_block_size=2 pads to.
    iio2.mimwrite(path, list(stack), format="FFMPEG", fps=fps, codec="libx264", pixelformat="yuv420p",
                  macro_block_size=2, ffmpeg_log_level="error")


def video_fps(env: Any, stride: int) -> float:
    """Frames per second of the written video: the env's ``render_fps`` over the stride (30 if unknown)."""
    render_fps = (getattr(env, "metadata", None) or {}).get("render_fps") or 30
    return float(render_fps) / stride if math.isfinite(render_fps) else 30.0


def make_first_episode_action_recorder(env: Any) -> Any:
    """Wrap an env so that it keeps the first episode's reset seed, actions and return
    (``.seed``, ``.actions``, ``.episode_return``) without rendering anything."""
    import gymnasium as gym

    class FirstEpisodeActions(gym.Wrapper):
        def __init__(self, inner: gym.Env):
            super().__init__(inner)
            self.seed, self.actions, self.episode_return = None, [], 0.0
            self._episodes = 0

        def reset(self, **kwargs):
            self._episodes += 1
            if self._episodes == 1:
                self.seed = kwargs.get("seed")
            return self.env.reset(**kwargs)

        def step(self, action):
            out = self.env.step(action)
            if self._episodes == 1:
                self.actions.append(np_tolist(action))
                self.episode_return += float(out[1])
            return out

    return FirstEpisodeActions(env)


def np_tolist(action: Any) -> Any:
    """An action as JSON: lists of Python numbers (float32 values are exact in float64)."""
    return action.tolist() if hasattr(action, "tolist") else action


def replay(spec: dict) -> dict:
    """Play ``spec["actions"]`` from ``reset(seed=spec["seed"])`` in ``spec["env_id"]`` made for rendering,
    and write the video; returns write_video's dict plus the replayed ``return``."""
    import numpy as np

    env = make_render_env(spec["env_id"], **spec.get("env_kwargs", {}))
    try:
        stride = frame_stride((env.metadata or {}).get("render_fps"), spec.get("fps", DEFAULT_FPS))
        recorder = make_first_episode_recorder(env, stride)
        recorder.reset(seed=spec["seed"])
        total = 0.0
        for action in spec["actions"]:
            total += float(recorder.step(np.asarray(action, dtype=env.action_space.dtype))[1])
        info = write_video(recorder.frames, spec["path"], video_fps(env, stride))
    finally:
        env.close()
    info["replayed_return"] = total
    return info


def replay_in_subprocess(spec: dict) -> dict:
    """``replay(spec)`` in a fresh Python that imports no TensorFlow: Mesa's software OpenGL (llvmpipe)
    and TensorFlow crash when they share a process, so a trainer renders its episode this way."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "keras_trpo_serving.video"], input=json.dumps(spec), capture_output=True,
                          text=True)
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit status {proc.returncode}"
        raise VideoError(f"rendering {spec['env_id']} failed: {detail}")
    return json.loads(proc.stdout)


def record_first_episode(env_id: str, path: str, play: Any, fps: float = DEFAULT_FPS, isolate: bool = False,
                         **env_kwargs: Any) -> tuple:
    """Call ``play(env)`` (which plays the evaluation episodes on ``env``) and write the first episode to
    ``path``. Returns ``(play's result, write_video's dict)``.

    ``isolate=False``: ``env`` renders as it goes (a TensorFlow-free process such as ``serving``).
    ``isolate=True``: ``env`` only records the first episode's seed and actions, and a TensorFlow-free
    subprocess replays them and renders; MuJoCo and the classic envs are deterministic, so the replay is
    the same episode, which the dict's ``replayed_return`` (equal to the played one) shows.
    """
    check_video_path(path)
    if isolate:
        import gymnasium as gym

        env = make_first_episode_action_recorder(gym.make(env_id, **env_kwargs))
        try:
            result = play(env)
        finally:
            env.close()
        video = replay_in_subprocess({"env_id": env_id, "env_kwargs": env_kwargs, "seed": env.seed,
                                      "actions": env.actions, "path": str(path), "fps": fps})
        video["played_return"] = env.episode_return
        return result, video
    env = make_render_env(env_id, **env_kwargs)
    try:
        stride = frame_stride((env.metadata or {}).get("render_fps"), fps)
        recorder = make_first_episode_recorder(env, stride)
        result = play(recorder)
        return result, write_video(recorder.frames, path, video_fps(env, stride))
    finally:
        env.close()


def _main() -> int:
    """``python -m keras_trpo_serving.video`` < spec.json: the isolated renderer (see ``replay_in_subprocess``)."""
    import json
    import sys

    try:
        print(json.dumps(replay(json.load(sys.stdin))))
    except VideoError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
