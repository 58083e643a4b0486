"""The agent file's container read without TensorFlow (keras_trpo/agent_file.py), and the commands that
refuse bad input from it before TensorFlow's import."""
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from keras_trpo.agent_file import FORMAT, FORMAT_VERSION, PREFIX, AgentFileError, read_agent_state

ROOT = Path(__file__).resolve().parents[1]
STATE = {"env_id": "CartPole-v1", "seed": 0, "config": {"action_masks": "auto"}}


def _agent_zip(path: Path, meta=None, state=STATE) -> Path:
    """An agent file's container (no models: read_agent_state never opens them)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(PREFIX + "format.json", json.dumps(meta or {"format": FORMAT, "format_version": FORMAT_VERSION}))
        z.writestr(PREFIX + "state.json", json.dumps(state))
    return path


def test_the_state_is_read_and_every_bad_file_is_named(tmp_path):
    assert read_agent_state(_agent_zip(tmp_path / "a.keras")) == STATE
    with pytest.raises(AgentFileError, match="no agent file at"):
        read_agent_state(tmp_path / "missing.keras")
    with pytest.raises(AgentFileError, match="is a directory"):
        read_agent_state(tmp_path)
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(AgentFileError, match="junk.keras.*not a readable keras_trpo agent file"):
        read_agent_state(tmp_path / "junk.keras")
    with zipfile.ZipFile(tmp_path / "plain.keras", "w") as z:
        z.writestr("config.json", "{}")
    with pytest.raises(AgentFileError, match="a zip but not a keras_trpo agent file"):
        read_agent_state(tmp_path / "plain.keras")
    newer = _agent_zip(tmp_path / "newer.keras", {"format": FORMAT, "format_version": FORMAT_VERSION + 1})
    with pytest.raises(AgentFileError, match="unsupported format"):
        read_agent_state(newer)
    with zipfile.ZipFile(tmp_path / "nostate.keras", "w") as z:
        z.writestr(PREFIX + "format.json", json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION}))
    with pytest.raises(AgentFileError, match="corrupt or truncated"):
        read_agent_state(tmp_path / "nostate.keras")


def test_commands_refuse_bad_input_before_importing_tensorflow(tmp_path):
    """Each refusal names its problem with exit status 2, and TensorFlow (~4 s to import) is never imported."""
    (tmp_path / "run").mkdir()
    run = _agent_zip(tmp_path / "run" / "agent.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    cases = [
        ("keras_trpo.export.cli", [str(tmp_path / "missing.keras"), "--onnx", "p.onnx"], "no agent file at"),
        ("keras_trpo.export.cli", [str(tmp_path / "junk.keras"), "--c", "c_dir"], "not a readable keras_trpo agent"),
        ("keras_trpo.export.cli", [str(run), "--onnx", "p.onnx", "--opset", "12"], "opset must be an integer from 13"),
        ("keras_trpo.cli", ["evaluate", str(tmp_path / "junk.keras")], "not a readable keras_trpo agent"),
        ("keras_trpo.cli", ["train", "--resume", "--out", str(run.parent), "--timesteps", "64", "--seed", "3"],
         "--seed 3 differs from the run's seed 0"),
        ("keras_trpo.cli", ["train", "--resume", "--out", str(run.parent), "--timesteps", "64",
                            "--env", "Acrobot-v1"], "--env Acrobot-v1 differs from the run's env CartPole-v1"),
        ("keras_trpo.cli", ["train", "--resume", "--out", str(run.parent), "--timesteps", "64",
                            "--action-masks", "off"],
         "--action-masks off cannot change a resumed run's (its checkpoint has 'auto')"),
        # a fresh run's config is built before the import: the env's preset, then --set and the flags
        ("keras_trpo.cli", ["train", "--env", "NoSuchEnv-v0", "--timesteps", "64", "--out", "a"],
         "cannot make the env 'NoSuchEnv-v0': NameNotFound"),
        ("keras_trpo.cli", ["train", "--env", "CartPole-v1", "--timesteps", "64", "--out", "b", "--set", "max_kl=-1"],
         "max_kl must be a positive number, got -1"),
        ("keras_trpo.cli", ["train", "--env", "CartPole-v1", "--timesteps", "64", "--out", "c", "--set", "maxkl=1"],
         "unknown hyperparameter(s): maxkl"),
        ("keras_trpo.cli", ["train", "--env", "Pendulum-v1", "--timesteps", "64", "--out", "d",
                            "--rollout-workers", "3"], "rollout_workers (3) cannot exceed n_envs (2)"),
        ("keras_trpo.cli", ["train", "--env", "CartPole-v1", "--timesteps", "64", "--out", "e",
                            "--set", "recurrent=lstm", "--set", "recurrent_sequence_length=100"],
         "recurrent_sequence_length (100) must divide n_steps (512)"),
    ]
    code = ("import contextlib, importlib, io, json, sys\n"
            "out = []\n"
            "for module, argv, _ in json.loads(sys.argv[1]):\n"
            "    err = io.StringIO()\n"
            "    with contextlib.redirect_stderr(err):\n"
            "        rc = importlib.import_module(module).main(argv)\n"
            "    out.append([rc, err.getvalue()])\n"
            "print(json.dumps({'results': out, 'tensorflow': 'tensorflow' in sys.modules}))\n")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(cases)], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for (module, argv, message), (rc, stderr) in zip(cases, got["results"]):
        assert rc == 2 and message in stderr and "Traceback" not in stderr, (module, argv, rc, stderr)
    assert not got["tensorflow"]
    assert not any((tmp_path / name).exists() for name in "abcde")  # a refused run leaves no folder behind
