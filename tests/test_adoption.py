"""The adoption rule's verdict (benchmarks/adoption.py): a new default against a per-env preset."""
from benchmarks.adoption import verdict

PER_ENV = {"A": (100.0, 90.0, 120.0), "B": (10.0, 8.0, 10.0)}  # env -> (baseline, baseline's lower end, candidate)


def test_a_default_must_raise_the_aggregate():
    assert verdict(PER_ENV, (0.80, 0.81)) == (True, [])
    holds, reasons = verdict(PER_ENV, (0.80, 0.80))
    assert not holds and "does not rise" in reasons[0]


def test_no_env_may_fall_below_the_baselines_interval():
    holds, reasons = verdict({**PER_ENV, "B": (10.0, 8.0, 7.5)}, (0.80, 0.90))
    assert not holds and reasons == ["B: candidate IQM 7.5 is below the baseline's interval (lower end 8)"]


def test_a_preset_must_raise_its_env_and_not_lower_the_aggregate():
    assert verdict(PER_ENV, (0.80, 0.80), preset="A") == (True, [])  # the aggregate IQM may not move
    holds, reasons = verdict(PER_ENV, (0.80, 0.80), preset="B")  # B's IQM ties
    assert not holds and reasons == ["B: the preset's IQM does not rise (10 against 10)"]
    holds, reasons = verdict(PER_ENV, (0.80, 0.79), preset="A")
    assert not holds and "falls" in reasons[0]


def test_the_recurrent_tasks_are_judged_against_recurrent_ppo(capsys):
    """The stored recurrent ten-seed runs: RecurrentPPO as the reference implementation, both masked tasks
    normalised (benchmarks/results/reference_scores.json has them)."""
    import pathlib

    from benchmarks.adoption import main

    results = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    stored = results / "recurrent"
    args = ["--baseline", f"{stored}/recurrent", "--candidate", f"{results}/ahead/recurrent_klin/recurrent",
            "--reference", f"{stored}/recurrent_ppo", "--task", "CartPoleNoVel-v1:1e5", "PendulumNoVel-v1:1e5",
            "--preset", "CartPoleNoVel-v1", "--reps", "500"]
    code = main(args + ["--reference-impl", "sb3-contrib-RecurrentPPO"])
    out = capsys.readouterr().out
    assert "| sb3-contrib-RecurrentPPO IQM [95% CI] |" in out and "| CartPoleNoVel-v1 | 10 / 10 / 10 |" in out
    assert "| **2 envs, normalised** |" in out
    # max_kl_schedule=linear alone: CartPoleNoVel's IQM 274 against the preset's 283 does not rise
    assert code == 1 and "CartPoleNoVel-v1: the preset's IQM does not rise" in out
    assert main(args) == 2  # sb3-contrib (TRPO) has no runs there: said, not a trace
    assert "no sb3-contrib runs of CartPoleNoVel-v1, PendulumNoVel-v1" in capsys.readouterr().err


def _store(folder, impl: str, scores: dict[str, list[float]]) -> None:
    """Seed records as seeds.py writes them: ``scores`` maps env -> final evaluation per seed 0, 1, ..."""
    from benchmarks.seedstore import FORMAT, README_TASKS, WIDE_TASKS, seed_path, write_record

    steps = dict(README_TASKS + WIDE_TASKS)
    for env, returns in scores.items():
        for seed, score in enumerate(returns):
            write_record(seed_path(str(folder), impl, env, seed),
                         {"format": FORMAT, "impl": impl, "env": env, "seed": seed, "eval_mean": score,
                          "request": {"timesteps": steps[env], "overrides": {}}})


def test_the_widened_rule_reads_ant_and_swimmer_from_their_own_folders(tmp_path, capsys):
    """A change of a default is judged on six envs; Ant-v5 and Swimmer-v5 are stored apart from the four."""
    from benchmarks.adoption import main

    four = {"CartPole-v1": [500.0] * 4, "Pendulum-v1": [-150.0, -145.0, -140.0, -160.0],
            "Hopper-v5": [3000.0, 2500.0, 3200.0, 2800.0], "HalfCheetah-v5": [3000.0, 1500.0, 4000.0, 2000.0]}
    wide = {"Ant-v5": [1500.0, 1800.0, 1200.0, 2000.0], "Swimmer-v5": [100.0, 120.0, 90.0, 110.0]}
    _store(tmp_path / "seeds", "keras_trpo", four)
    _store(tmp_path / "wide", "keras_trpo", wide)
    # the candidate: the same on the four, Swimmer far below the baseline's interval
    _store(tmp_path / "cand", "keras_trpo", {**four, **wide, "Swimmer-v5": [40.0, 30.0, 35.0, 45.0]})
    args = ["--baseline", str(tmp_path / "seeds"), str(tmp_path / "wide"), "--candidate", str(tmp_path / "cand"),
            "--reps", "300"]
    assert main(args + ["--widened"]) == 1
    out = capsys.readouterr().out
    assert "| Ant-v5 | 4 / 4 |" in out and "| **6 envs, normalised** |" in out
    # four seeds are a run still going on: where it stands, and no verdict
    assert "Rule: not judged yet: it is on 10 seeds per env, and baseline CartPole-v1 (4)," in out
    assert "would fail: Swimmer-v5: candidate IQM 37.5 is below the baseline's interval" in out
    assert main(args) == 1  # without --widened the four alone: ties, so the aggregate does not rise
    out = capsys.readouterr().out
    assert "Swimmer-v5" not in out and "| **4 envs, normalised** |" in out and "does not rise" in out
    # Swimmer without Ant (a candidate that holds there): the widened rule part-way, never "adopt"
    def ten(scores):  # the rule's ten seeds: each env's four values repeated
        return {env: [*v, *v, v[0], v[1]] for env, v in scores.items()}

    _store(tmp_path / "good", "keras_trpo", ten({**four, "Swimmer-v5": [300.0, 320.0, 310.0, 330.0]}))
    _store(tmp_path / "seeds", "keras_trpo", ten(four))
    _store(tmp_path / "wide", "keras_trpo", ten(wide))
    partial = ["--baseline", str(tmp_path / "seeds"), str(tmp_path / "wide"), "--candidate", str(tmp_path / "good"),
               "--reps", "300", "--task", "CartPole-v1:1e5", "Pendulum-v1:1e5", "Hopper-v5:1e6", "HalfCheetah-v5:1e6",
               "Swimmer-v5:1e6"]
    assert main(partial) == 1
    out = capsys.readouterr().out
    assert "Rule: holds on these 5 envs, but a new default is judged on the widened rule's six (--widened), and " \
           "Ant-v5 is not among them: not adopted yet." in out and "adopt." not in out.replace("adopted", "")
    # both of the widened rule's envs, ten seeds each: the rule is judged whole ("adopt"), not "part-way"
    _store(tmp_path / "good", "keras_trpo", ten({**four, "Swimmer-v5": [300.0, 320.0, 310.0, 330.0], "Ant-v5": wide["Ant-v5"]}))
    assert main(["--baseline", str(tmp_path / "seeds"), str(tmp_path / "wide"), "--candidate", str(tmp_path / "good"),
                 "--widened", "--reps", "300"]) == 0
    out = capsys.readouterr().out
    assert "| **6 envs, normalised** |" in out and "Rule: holds: adopt." in out and "not among them" not in out
    # a seed stored twice with different results is refused, not silently replaced
    _store(tmp_path / "other", "keras_trpo", {"Ant-v5": [1500.0, 999.0]})
    assert main(["--baseline", str(tmp_path / "seeds"), str(tmp_path / "wide"), str(tmp_path / "other"),
                 "--candidate", str(tmp_path / "cand"), "--widened", "--reps", "300"]) == 2
    err = capsys.readouterr().err
    assert "keras_trpo Ant-v5 seed 1 is stored twice with different results (1800.0 and 999.0" in err
