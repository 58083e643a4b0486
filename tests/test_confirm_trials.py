"""benchmarks.confirm_trials on the stored CartPoleNoVel-v1 study and seed records."""
import shutil
from pathlib import Path

import pytest

pytest.importorskip("optuna")

from benchmarks.confirm_trials import main  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
JOURNAL = RESULTS / "tune" / "ahead" / "CartPoleNoVel-v1.study.journal"


def test_a_trials_settings_are_what_differs_from_the_envs_preset(capsys, tmp_path):
    journal = tmp_path / "study.journal"  # a copy: opening a journal may append to it
    shutil.copy(JOURNAL, journal)
    assert main(["set", "--storage", str(journal), "1"]) == 0
    out = capsys.readouterr().out.split()
    pairs = dict(x.split("=", 1) for x in out[1::2])
    assert set(out[0::2]) == {"--set"}
    # The study's trial 1 searched these away from the recurrent preset (gae_lambda 0.8 is the preset's own).
    assert pairs == {"n_steps": "64", "gamma": "0.99", "max_kl": "0.1", "max_kl_schedule": "linear", "cg_iters": "10",
                     "value_learning_rate": pairs["value_learning_rate"], "value_epochs": "10",
                     "recurrent_sequence_length": "32"}
    assert float(pairs["value_learning_rate"]) == pytest.approx(0.0002438, rel=1e-3)
    with pytest.raises(SystemExit, match="has trials 0-23, not 99"):
        main(["set", "--storage", str(journal), "99"])


def test_the_table_ranks_the_arms_by_their_iqm(capsys, tmp_path):
    for arm in ("recurrent_klin", "recurrent_klin_nreward"):
        shutil.copytree(RESULTS / "ahead" / arm / "recurrent", tmp_path / arm)
    assert main(["table", "--out", str(tmp_path), "--task", "CartPoleNoVel-v1:1e5"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| recurrent")]
    assert [r.split(" | ")[0] for r in rows] == ["| recurrent_klin_nreward", "| recurrent_klin"]  # IQM 381 > 274
    assert rows[0].split(" | ")[2:4] == ["10", "381.1"]  # rliable gave IQM 381 for these ten seeds
