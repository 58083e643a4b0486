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
