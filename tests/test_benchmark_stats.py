"""The pure parts of the multi-seed benchmark: seed storage and resume (seedstore.py, seeds.py) and the
statistics (stats.py). No training runs here; rliable-dependent checks are skipped without it."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import compare, seeds, seedstore, stats
from benchmarks.seedstore import Task


# ---------------------------------------------------------------- parsing
def test_parse_seeds_ranges_lists_and_order():
    assert seedstore.parse_seeds(["0-9"]) == list(range(10))
    assert seedstore.parse_seeds(["3", "0-1", "7,8", "1"]) == [3, 0, 1, 7, 8]


@pytest.mark.parametrize("bad", [["x"], ["5-2"], ["-1"], ["1-a"], [""]])
def test_parse_seeds_rejects_bad_items(bad):
    with pytest.raises(ValueError):
        seedstore.parse_seeds(bad)


def test_parse_task():
    assert seedstore.parse_task("Hopper-v5:1e6") == ("Hopper-v5", 1_000_000)
    assert seedstore.parse_task("ALE/Pong-v5:2048") == ("ALE/Pong-v5", 2048)
    for bad in ("Hopper-v5", ":100", "Hopper-v5:abc", "Hopper-v5:0", "Hopper-v5:1.5", "Hopper-v5:nan"):
        with pytest.raises(ValueError):
            seedstore.parse_task(bad)


def test_parse_set_reads_json_values_else_strings():
    assert compare.parse_set(["rollout_backend=process", "rollout_workers=2", "hidden_sizes=[64, 64]",
                              "normalize_obs=false"]) == {
        "rollout_backend": "process", "rollout_workers": 2, "hidden_sizes": [64, 64], "normalize_obs": False}
    for bad in (["novalue"], ["=3"], ["a=1", "a=2"]):
        with pytest.raises(ValueError):
            compare.parse_set(bad)


def test_plan_runs_short_tasks_first_then_interleaves_seeds_envs_and_libraries():
    tasks = [("Hopper-v5", 1_000_000), ("CartPole-v1", 100_000), ("HalfCheetah-v5", 1_000_000)]
    order = seedstore.plan(tasks, [0, 1], ["keras_trpo", "sb3-contrib"])
    assert [(t.env, t.seed, t.impl) for t in order] == [
        ("CartPole-v1", 0, "keras_trpo"), ("CartPole-v1", 0, "sb3-contrib"),
        ("CartPole-v1", 1, "keras_trpo"), ("CartPole-v1", 1, "sb3-contrib"),
        ("Hopper-v5", 0, "keras_trpo"), ("Hopper-v5", 0, "sb3-contrib"),
        ("HalfCheetah-v5", 0, "keras_trpo"), ("HalfCheetah-v5", 0, "sb3-contrib"),
        ("Hopper-v5", 1, "keras_trpo"), ("Hopper-v5", 1, "sb3-contrib"),
        ("HalfCheetah-v5", 1, "keras_trpo"), ("HalfCheetah-v5", 1, "sb3-contrib")]


# ---------------------------------------------------------------- storage and resume
def _record(task: Task, eval_mean: float, overrides=None, curve=((1024, 1.0, float("nan")), (2048, 2.0, 10.0))):
    result = dict(impl=task.impl, env=task.env, seed=task.seed, timesteps=task.timesteps + 352, eval_mean=eval_mean,
                  eval_std=1.0, wall_s=2.0, steps_per_s=50.0, cpu_s=1.9, process_cpu_s=3.0, curve=list(curve))
    return seeds.make_record(task, overrides or {}, result, {"started": "2026-11-25T00:00:00+00:00", "jobs": 1},
                             "python -m benchmarks.seeds run", {"commit": "abc", "dirty": []})


def test_record_round_trip_stores_nan_as_null_and_leaves_no_temp_file(tmp_path):
    task = Task("keras_trpo", "CartPole-v1", 100_000, 3)
    path = seedstore.seed_path(str(tmp_path), task.impl, task.env, task.seed)
    assert path.endswith(os.path.join("keras_trpo", "CartPole-v1", "seed_3.json"))
    seedstore.write_record(path, _record(task, 500.0, {"rollout_workers": 2}))
    text = open(path).read()
    assert "NaN" not in text  # standard JSON
    r = seedstore.read_record(path)
    assert r["curve"] == {"timesteps": [1024, 2048], "wall_s": [1.0, 2.0], "return": [None, 10.0]}
    assert r["request"] == {"timesteps": 100_000, "overrides": {"rollout_workers": 2}}
    assert (r["impl"], r["env"], r["seed"], r["eval_mean"]) == ("keras_trpo", "CartPole-v1", 3, 500.0)
    assert os.listdir(os.path.dirname(path)) == ["seed_3.json"]


def test_status_done_todo_and_conflicts(tmp_path):
    out = str(tmp_path)
    task = Task("keras_trpo", "CartPole-v1", 100_000, 0)
    assert seedstore.status(out, task, {})[0] == "todo"
    seedstore.write_record(seedstore.seed_path(out, task.impl, task.env, task.seed), _record(task, 500.0))
    assert seedstore.status(out, task, {})[0] == "done"
    state, detail = seedstore.status(out, task, {"rollout_workers": 2})
    assert state == "conflict" and "rollout_workers" in detail
    assert seedstore.status(out, Task("keras_trpo", "CartPole-v1", 50_000, 0), {})[0] == "conflict"
    # sb3-contrib takes no overrides: they are not part of its request
    sb3 = Task("sb3-contrib", "CartPole-v1", 100_000, 0)
    seedstore.write_record(seedstore.seed_path(out, sb3.impl, sb3.env, sb3.seed), _record(sb3, 480.0))
    assert seedstore.status(out, sb3, {"rollout_workers": 2})[0] == "done"


def test_a_corrupt_file_is_a_conflict_that_names_it(tmp_path):
    task = Task("sb3-contrib", "CartPole-v1", 100_000, 1)
    path = seedstore.seed_path(str(tmp_path), task.impl, task.env, task.seed)
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write("{not json")
    state, detail = seedstore.status(str(tmp_path), task, {})
    assert state == "conflict" and path in detail


def test_claim_is_exclusive_and_takes_over_stale_locks(tmp_path):
    path = str(tmp_path / "keras_trpo" / "CartPole-v1" / "seed_0.json")
    assert seedstore.claim(path)
    assert not seedstore.claim(path)  # held by a live process (this one)
    assert seedstore.locked_by(path) == os.getpid()
    seedstore.release(path)
    assert not os.path.exists(path + ".lock")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with open(path + ".lock", "w") as f:
        f.write(str(dead.pid))
    assert seedstore.locked_by(path) is None
    assert seedstore.claim(path)  # stale: taken over
    seedstore.release(path)


def test_runner_stores_each_seed_and_a_rerun_skips_them(tmp_path, monkeypatch, capsys):
    """seeds.py run with the child replaced by a stub: every finished seed is written at once, a
    failure stores nothing, and the same command again trains only what is missing."""
    calls, failed = [], []

    def fake_run_one(task, overrides, sb3_python, jobs, running):
        calls.append((task.impl, task.env, task.seed))
        if (task.seed, task.impl) == (1, "keras_trpo") and not failed:
            failed.append(task)
            return None  # the first attempt at this seed fails
        result = dict(impl=task.impl, env=task.env, seed=task.seed, timesteps=task.timesteps, eval_mean=float(task.seed),
                      eval_std=0.0, wall_s=1.0, steps_per_s=1.0, cpu_s=1.0, process_cpu_s=1.0,
                      curve=[(task.timesteps, 1.0, 1.0)], config={}, hyperparameters={})
        return result, {"started": "2026-11-25T00:00:00+00:00", "jobs": jobs, "other_cores": 0.0}

    monkeypatch.setattr(seeds, "run_one", fake_run_one)
    monkeypatch.setattr(seeds, "find_sb3_python", lambda explicit: ("python", ""))
    argv = ["--task", "CartPole-v1:1000", "--seeds", "0-2", "--out", str(tmp_path), "--set", "value_epochs=3"]
    assert seeds.cmd_run(argv) == 1  # one failure
    assert len(calls) == 6
    stored = {(r["impl"], r["seed"]) for r in seedstore.load_records(str(tmp_path))}
    assert ("keras_trpo", 1) not in stored and len(stored) == 5
    calls.clear()
    assert seeds.cmd_run(argv) == 0
    assert calls == [("keras_trpo", "CartPole-v1", 1)]  # only the missing seed
    calls.clear()
    assert seeds.cmd_run(argv) == 0 and calls == []
    # the same seeds asked for with other keras_trpo settings: refused, nothing run
    assert seeds.cmd_run(argv[:-1] + ["value_epochs=5"]) == 2 and calls == []
    assert "other settings" in capsys.readouterr().err
    r = seedstore.read_record(seedstore.seed_path(str(tmp_path), "keras_trpo", "CartPole-v1", 2))
    assert r["request"] == {"timesteps": 1000, "overrides": {"value_epochs": 3}}
    assert r["command"].startswith("python -m benchmarks.seeds run --task CartPole-v1:1000")


def test_cross_check_uses_the_lowest_common_seed(tmp_path):
    keras = {"impl": "keras_trpo", "env": "E", "seed": 2, "action_dim": None,
             "config": dict(n_envs=2, n_steps=512, gamma=0.99, gae_lambda=0.98, max_kl=0.01, cg_iters=15,
                            cg_damping=1e-3, line_search_steps=10, line_search_shrink=0.8, value_learning_rate=1e-3,
                            value_epochs=20, value_batch_size=512, normalize_advantage=True, normalize_obs=False,
                            normalize_reward=False, hidden_sizes=[64, 64], activation="tanh")}
    sb3 = {"impl": "sb3-contrib", "env": "E", "seed": 2,
           "hyperparameters": dict(n_envs=2, n_steps=512, gamma=0.99, gae_lambda=0.98, target_kl=0.01,
                                   cg_max_steps=15, cg_damping=1e-3, line_search_max_iter=10,
                                   line_search_shrinking_factor=0.8, learning_rate=1e-3, n_critic_updates=20,
                                   batch_size=512, normalize_advantage=True, norm_obs=False, norm_reward=False,
                                   net_arch=[64, 64], activation_fn="tanh", sub_sampling_factor=1)}
    assert seeds.cross_check([keras, sb3], "E").startswith("E: same hyperparameters")
    other = dict(keras, seed=1, config=dict(keras["config"], value_epochs=5))
    assert seeds.cross_check([keras, sb3, other], "E").startswith("E: same")  # seed 1 has no sb3 partner
    assert "value_epochs=5" in seeds.cross_check([other, dict(sb3, seed=1)], "E")
    assert seeds.cross_check([keras], "E") is None


# ---------------------------------------------------------------- statistics
def test_normalise_maps_random_to_zero_and_reference_to_one():
    np.testing.assert_allclose(stats.normalise([21.4, 500.0, 260.7], 21.4, 500.0), [0.0, 1.0, 0.5])
    np.testing.assert_allclose(stats.normalise(-583.2, -1166.4, 0.0), 0.5)
    with pytest.raises(ValueError):
        stats.normalise([1.0], 3.0, 3.0)


def test_score_matrix_keeps_the_seeds_every_env_has():
    by_env = {"A": {0: 1.0, 1: 2.0, 2: 3.0}, "B": {2: 30.0, 0: 10.0}}
    m, used = stats.score_matrix(by_env, ["A", "B"])
    assert used == [0, 2]
    np.testing.assert_array_equal(m, [[1.0, 10.0], [3.0, 30.0]])
    with pytest.raises(ValueError, match="C"):
        stats.score_matrix(by_env, ["A", "C"])
    with pytest.raises(ValueError, match="common"):
        stats.score_matrix({"A": {0: 1.0}, "B": {1: 1.0}}, ["A", "B"])


def test_curve_matrix_drops_nan_and_interpolates_on_the_common_range():
    grid, ys = stats.curve_matrix([([0, 10, 20, 30], [None, 0.0, 10.0, 20.0]),  # first point: no episode yet
                                   ([5, 15, 25], [1.0, 3.0, 5.0])], points=3)
    np.testing.assert_allclose(grid, [10.0, 17.5, 25.0])
    np.testing.assert_allclose(ys, [[0.0, 7.5, 15.0], [2.0, 3.5, 5.0]])
    with pytest.raises(ValueError, match="overlap"):
        stats.curve_matrix([([0, 1], [1.0, 1.0]), ([5, 6], [1.0, 1.0])])
    with pytest.raises(ValueError, match="no finished episode"):
        stats.curve_matrix([([0, 1], [None, math.nan])])


def test_iqm_columns_is_the_mean_of_the_middle_half():
    runs = np.array([[9.0, -1], [1, 0], [2, 0], [3, 0], [4, 0], [5, 0], [6, 0], [100, 50]])  # 8 runs, 2 columns
    # sorted column 0: 1 2 3 4 5 6 9 100 -> middle four 3 4 5 6; column 1: -1 0 0 0 0 0 0 50 -> 0
    np.testing.assert_allclose(stats.iqm_columns(runs[:, None, :]), [4.5, 0.0])


def test_timing_pairs_only_pair_runs_of_one_invocation():
    def row(impl, seed, sps, cmd, env="E"):
        return dict(impl=impl, env=env, seed=str(seed), timesteps="100", steps_per_s=str(sps), command=cmd,
                    machine="m", date="d")
    rows = [row("keras_trpo", 0, 300, "a"), row("sb3-contrib", 0, 100, "a"),
            row("keras_trpo", 1, 400, "b"), row("sb3-contrib", 1, 100, "a"),  # seed 1: different invocations
            row("keras_trpo", 2, 500, "c"), row("sb3-contrib", 2, 300, "c")]
    pairs = stats.timing_pairs(rows)
    assert sorted((k, s) for k, s, _ in pairs["E"]) == [(300.0, 100.0), (500.0, 300.0)]
    assert stats.speed_ratio(pairs["E"]) == pytest.approx(400 / 200)


def test_fmt_ci_uses_one_precision():
    assert stats.fmt_ci(2286.4, 1417.1, 2936.6) == "2,286 [1,417, 2,937]"
    assert stats.fmt_ci(0.734, 0.61, 0.85) == "0.73 [0.61, 0.85]"
    assert stats.fmt_ci(-145.1, -146.0, -130.7) == "-145 [-146, -131]"


def test_estimates_point_values_match_independent_computations():
    pytest.importorskip("rliable")
    from scipy.stats import trim_mean

    rng = np.random.default_rng(0)
    a = rng.normal(size=(10, 3))
    est = stats.estimates({"a": a, "c": np.full((10, 1), 7.0)}, reps=500)
    point, ci = est["a"]
    assert point[0] == pytest.approx(trim_mean(a.ravel(), 0.25))
    assert point[1] == pytest.approx(a.mean())
    assert np.all(ci[0] <= point) and np.all(point <= ci[1]) and np.all(ci[1] > ci[0])
    np.testing.assert_allclose(est["c"][1], 7.0)  # constant scores: the interval is the point
    np.random.rand(7)  # whatever else used numpy's global generator, the same scores give the same intervals
    np.testing.assert_array_equal(stats.estimates({"a": a}, reps=500)["a"][1], ci)
    p, lo, hi = stats.improvement(np.full((5, 1), 2.0), np.full((5, 1), 1.0), reps=200)
    assert (p, lo, hi) == (1.0, 1.0, 1.0)


def test_table_from_stored_records(tmp_path):
    """The README table end to end on synthetic records: values, aggregate and the timing column."""
    pytest.importorskip("rliable")
    tasks = [("A-v0", 1000), ("B-v0", 1000)]
    refs = {"A-v0": {"random": 0.0, "reference": 100.0}, "B-v0": {"random": -100.0, "reference": 0.0}}
    records = []
    for seed in range(4):
        for impl, base in (("keras_trpo", 50.0), ("sb3-contrib", 40.0)):
            records.append(_record(Task(impl, "A-v0", 1000, seed), base + seed))
            records.append(_record(Task(impl, "B-v0", 1000, seed), -base - seed))
    rows = [dict(impl=i, env="A-v0", seed="0", timesteps="1352", steps_per_s=s, command="x", machine="m",
                 date="2026-11-25") for i, s in (("keras_trpo", "300"), ("sb3-contrib", "100"))]
    text = stats.table(records, tasks, refs, rows, ["summary.csv"], reps=300)
    lines = text.splitlines()
    a_row = next(l for l in lines if l.startswith("| A-v0"))
    # IQM of 50..53 is the mean of 51 and 52; P(keras > sb3) = 1 (every keras seed beats every sb3 seed)
    assert "| 51.5 [" in a_row and "| 41.5 [" in a_row and "1.00 [1.00, 1.00]" in a_row
    assert "3.00× (1 × 1,352 steps)" in a_row
    assert "A-v0 1.00×, B-v0 1.00×" in text  # the seed runs' CPU-time ratio: both libraries 3.0 s per run here
    records.append(_record(Task("sb3-contrib", "A-v0", 1000, 9), 40.0))
    records[-1]["process_cpu_s"] = 3.0 * 100  # one slow sb3 run moves the median of 5 runs only a little
    assert stats.cpu_ratios(records, tasks)["A-v0"] == (pytest.approx(1.0), 4, 5)
    agg = next(l for l in lines if "2 envs, normalised" in l)
    # normalised: A (50+s)/100 and B (-50-s+100)/100 = (50-s)/100 -> IQM over 8 values
    expected = np.mean(sorted([(50 + s) / 100 for s in range(4)] + [(50 - s) / 100 for s in range(4)])[2:6])
    assert f"| {expected:.2f} [" in agg


def test_regression_bound_is_a_quantile_of_subset_iqms():
    from benchmarks import regression

    stored = [float(x) for x in range(1, 11)]
    # 3 of 10: the IQM of three values trims nothing (int(0.25 * 3) = 0), so it is their mean
    assert regression.subset_bound(stored, 3, 0.0) == pytest.approx(2.0)  # 1, 2, 3
    assert regression.subset_bound(stored, 3, 1.0) == pytest.approx(9.0)  # 8, 9, 10
    assert regression.subset_bound(stored, 3, 0.5) == pytest.approx(5.5)  # symmetric
    assert regression.iqm([1, 2, 3, 4, 5, 6, 7, 100]) == pytest.approx(4.5)
    with pytest.raises(ValueError, match="at least 3"):
        regression.subset_bound([1.0, 2.0], 3, 0.01)
    with pytest.raises(ValueError, match="quantile"):
        regression.subset_bound(stored, 3, 1.5)


def test_learning_settings_ignore_where_rollouts_ran():
    assert seedstore.learning_settings({"rollout_backend": "process", "rollout_workers": 2, "max_kl": 0.02,
                                        "ray_address": "auto", "rollout_timeout": 60}) == {"max_kl": 0.02}
    assert seedstore.learning_settings(None) == {}


@pytest.mark.parametrize("trained, code, stored_overrides", [
    (495.0, 0, {}), (100.0, 1, {}),
    (495.0, 0, {"rollout_backend": "process", "rollout_workers": 2}),  # stored on workers: still the reference
    (495.0, 2, {"max_kl": 0.02})])  # stored with another learning setting: no reference, exit 2
def test_regression_check_passes_and_fails(tmp_path, monkeypatch, trained, code, stored_overrides):
    """regression.py end to end with the training child replaced by a stub returning ``trained``."""
    from benchmarks import regression

    ref_dir = tmp_path / "stored"
    for seed in range(10):
        task = Task("keras_trpo", "CartPole-v1", 100_000, seed)
        seedstore.write_record(seedstore.seed_path(str(ref_dir), task.impl, task.env, seed),
                               _record(task, 490.0 + seed, stored_overrides))

    def fake_run_one(task, overrides, sb3_python, jobs, running):
        result = dict(impl=task.impl, env=task.env, seed=task.seed, timesteps=task.timesteps, eval_mean=trained,
                      eval_std=0.0, wall_s=1.0, steps_per_s=1.0, cpu_s=1.0, process_cpu_s=1.0,
                      curve=[(task.timesteps, 1.0, trained)], config={})
        return result, {"started": "2026-11-25T00:00:00+00:00", "jobs": jobs, "other_cores": 0.0}

    monkeypatch.setattr(seeds, "run_one", fake_run_one)
    # bound: the lowest 3-of-10 IQM is mean(490, 491, 492) = 491, minus 0.05 x (500 - 21.39) = 23.9 -> 467.1
    assert regression.main(["--task", "CartPole-v1:100000", "--reference-dir", str(ref_dir), "--quantile", "0",
                            "--out", str(tmp_path / "ran")]) == code


# ---------------------------------------------------------------- ablation_stats.py
def _arm(tmp, name, impl, values, overrides=None):
    for seed, v in enumerate(values):
        task = Task(impl, "HalfCheetah-v5", 1000, seed)
        seedstore.write_record(seedstore.seed_path(os.path.join(tmp, name), impl, task.env, seed),
                               _record(task, v, overrides))


def test_ablation_table_sets_each_arm_against_baseline_and_sb3(tmp_path):
    pytest.importorskip("rliable")
    from benchmarks import ablation_stats

    seeds_dir, abl = str(tmp_path / "seeds"), str(tmp_path / "abl")
    _arm(str(tmp_path), "seeds", "keras_trpo", [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
         {"rollout_backend": "process", "rollout_workers": 2})
    _arm(str(tmp_path), "seeds", "sb3-contrib", [70.0, 80.0, 90.0, 100.0])
    _arm(abl, "kl", "keras_trpo", [75.0, 85.0, 95.0, 105.0], {"line_search_kl": "new_old"})
    arms = ablation_stats.collect("HalfCheetah-v5", 1000, abl, seeds_dir)
    assert list(arms) == [ablation_stats.BASELINE, "kl", ablation_stats.REFERENCE]
    rows = {l.split(" | ")[0][2:]: l for l in ablation_stats.table(arms, reps=300).splitlines()[2:]}
    base, kl = rows[ablation_stats.BASELINE], rows["kl"]
    assert "| 6: 0–5 | 35.0 [" in base  # IQM of 10..60: mean of 20, 30, 40, 50
    # the arm: IQM of 75..105 is 90 (whole numbers from 100 on); the baseline on seeds 0-3 has IQM 25
    assert "line_search_kl=new_old" in kl and "| 4: 0–3 | 90 [" in kl and "| 25.0 [10.0, 40.0] (4) |" in kl
    assert "| 1.00 [1.00, 1.00] |" in kl  # every kl seed beats every baseline seed
    p = np.mean([x > y for x in (75, 85, 95, 105) for y in (70, 80, 90, 100)])  # Mann-Whitney, counted directly
    assert kl.split(" | ")[-1].startswith(f"{p:.2f} [")  # the last column


def test_ablation_arm_with_mixed_settings_is_an_error(tmp_path):
    from benchmarks import ablation_stats

    _arm(str(tmp_path), "a", "keras_trpo", [1.0], {"line_search_kl": "new_old"})
    task = Task("keras_trpo", "HalfCheetah-v5", 1000, 1)
    seedstore.write_record(seedstore.seed_path(str(tmp_path / "a"), task.impl, task.env, 1), _record(task, 2.0, {}))
    with pytest.raises(ValueError, match="different settings"):
        ablation_stats.collect("HalfCheetah-v5", 1000, str(tmp_path), str(tmp_path / "none"))
