"""benchmarks/plateau.py: the training return at chosen steps, late climbers, and Fisher's exact test."""
import math

import pytest

from benchmarks.plateau import fisher_exact_p, late_climbers, main, return_at


def test_return_at_takes_the_last_logged_point_at_or_before_the_step():
    steps, returns = [100, 200, 300, 400], [None, 10.0, None, 30.0]
    assert math.isnan(return_at(steps, returns, 50))    # nothing logged yet
    assert math.isnan(return_at(steps, returns, 150))   # logged, but no episode had ended
    assert return_at(steps, returns, 200) == 10.0
    assert return_at(steps, returns, 399) == 10.0       # the None at 300 does not hide the 10 before it
    assert return_at(steps, returns, 10_000) == 30.0


def test_late_climbers_count_only_runs_at_the_plateau_then():
    rows = {0: [120.0, 140.0, 139.0], 1: [130.0, 150.0, 260.0], 2: [300.0, 350.0, 355.0], 3: [90.0, 210.0, 150.0]}
    # at column 1: seeds 0 and 1 are at or under 200 (3 passed it and fell back, so it is not "at the plateau")
    assert late_climbers(rows, 1, 200.0) == (1, 2)
    assert late_climbers(rows, 0, 200.0) == (1, 3)


def test_fisher_exact_p_against_the_hypergeometric_closed_form():
    # 0 of 9 against 2 of 2: only the observed table is as extreme, P = C(2,2) C(9,0) / C(11,2) = 1/55
    assert fisher_exact_p((0, 9), (2, 2)) == pytest.approx(1 / 55)
    # equal rates: p = 1
    assert fisher_exact_p((3, 6), (3, 6)) == pytest.approx(1.0)


def _store(folder, impl, env, curves):
    from benchmarks.seedstore import FORMAT, seed_path, write_record

    for seed, returns in enumerate(curves):
        write_record(seed_path(str(folder), impl, env, seed),
                     {"format": FORMAT, "impl": impl, "env": env, "seed": seed, "eval_mean": returns[-1],
                      "request": {"timesteps": 1_000_000, "overrides": {}},
                      "curve": {"timesteps": [1e5, 2e5, 3e5, 6e5, 1e6], "wall_s": [1, 2, 3, 4, 5], "return": returns}})


def test_the_table_counts_each_impl_and_compares_their_late_climbs(tmp_path, capsys):
    _store(tmp_path, "keras_trpo", "Swimmer-v5", [[40, 130, 140, 140, 141], [50, 340, 350, 355, 356],
                                                   [30, 100, 120, 125, 128]])
    _store(tmp_path, "sb3-contrib", "Swimmer-v5", [[60, 90, 120, 200, 256], [40, 300, 350, 351, 352]])
    _store(tmp_path, "keras_trpo", "Ant-v5", [[1, 2, 3, 4, 5]])
    assert main([str(tmp_path), "--env", "Swimmer-v5", "--at", "2e5", "1e6", "--late", "3e5"]) == 0
    out = capsys.readouterr().out
    assert "| impl | seed | 200k | 300k | 1000k |" in out
    assert "| sb3-contrib | 0 | 90 | 120 | 256 |" in out and "Ant" not in out
    assert "- keras_trpo: 200k 1 of 3, 300k 1 of 3, 1000k 1 of 3; late climbers" in out and ": 0 of 2" in out
    assert "- sb3-contrib: 200k 1 of 2, 300k 1 of 2, 1000k 2 of 2;" in out and ": 1 of 1" in out
    # 0 of 2 against 1 of 1: P = C(1,1) C(2,0) / C(3,1) = 1/3
    assert "Fisher's exact test p = 0.333" in out
    # two folders holding the same impl: an arm each, not one overwriting the other's seeds
    _store(tmp_path / "other", "keras_trpo", "Swimmer-v5", [[10, 20, 30, 40, 50]])
    assert main([str(tmp_path), str(tmp_path / "other"), "--env", "Swimmer-v5", "--at", "1e6"]) == 0
    out = capsys.readouterr().out
    assert f"| keras_trpo ({tmp_path}) | 0 | 141 |" in out and f"| keras_trpo ({tmp_path / 'other'}) | 0 | 50 |" in out


def test_bad_requests_are_named(tmp_path, capsys):
    with pytest.raises(SystemExit, match="no stored run of Swimmer-v5"):
        main([str(tmp_path), "--env", "Swimmer-v5"])
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--env", "Swimmer-v5", "--at", "2e5", "--late", "3e5"])
    assert "--late 300000 must come before the last --at step (200000)" in capsys.readouterr().err
