"""keras-trpo tune and train --config: the search space, hyperparameter files, the pruning callback, and a
tiny study end to end on the real Optuna journal storage (two worker processes, a pruned and a failed
trial, a kill and a resume)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from keras_trpo.config import ConfigError, TRPOConfig
from keras_trpo.config_file import load_config, read_config_file, write_config_file
from keras_trpo.tune.space import ZOO_TRPO_SPACE, build_space, cap_batch, parse_spec, settings_from_params

optuna = pytest.importorskip("optuna")
pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
PROBE = "tests.tune_envs:KerasTrpoTuneProbe-v0"


def _cli(*args, timeout=600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "keras_trpo", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------ search space
def test_space_specs_and_changes():
    assert parse_spec("gamma", "[0.9, 0.99]").choices == (0.9, 0.99)
    assert parse_spec("hidden_sizes", [[32], [64, 64]]).choices == ((32,), (64, 64))
    d = parse_spec("value_learning_rate", "float:1e-4:1e-2:log")
    assert (d.kind, d.low, d.high, d.log) == ("float", 1e-4, 1e-2, True)
    assert parse_spec("value_epochs", "int:1:9").kind == "int"
    assert parse_spec("gamma", "off") is None
    for bad in ("float:1:0", "uniform(0,1)", "int:0:5:log", "[1,"):
        with pytest.raises(ConfigError, match="gamma"):
            parse_spec("gamma", bad)
    with pytest.raises(ConfigError, match="nope"):
        build_space({"nope": "[1]"})
    space = build_space({"max_kl": "[0.02]", "gamma": "off"}, fixed=["n_steps"])
    assert "max_kl" in space and "max_kl_per_dim" not in space  # one dimension per TRPOConfig field
    assert "gamma" not in space and "n_steps" not in space and "value_epochs" in space
    assert set(build_space()) == set(ZOO_TRPO_SPACE)


def test_a_recurrent_policys_space_has_the_cell_size_and_the_sequence_length():
    from keras_trpo.tune.driver import study_settings
    from keras_trpo.tune.space import RECURRENT_SPACE

    def space(env, fixed=None):
        return set(study_settings(env, 1000, fixed or {}, {}, 5, 10, 10, 0).space)

    assert space("CartPoleNoVel-v1") == set(ZOO_TRPO_SPACE) | set(RECURRENT_SPACE)  # its preset is an LSTM
    assert space("CartPole-v1") == set(ZOO_TRPO_SPACE)
    assert space("CartPole-v1", {"recurrent": "gru"}) == set(ZOO_TRPO_SPACE) | set(RECURRENT_SPACE)
    assert "recurrent_units" not in space("CartPoleNoVel-v1", {"recurrent_units": 32})  # fixed, not searched
    # Every sequence length the space offers is valid with every n_steps it offers.
    for n_steps in ZOO_TRPO_SPACE["n_steps"].choices:
        for length in RECURRENT_SPACE["recurrent_sequence_length"].choices:
            TRPOConfig(recurrent="lstm", n_steps=n_steps, recurrent_sequence_length=length).validate()


def test_per_dimension_kl_and_the_zoos_batch_cap():
    params = {"max_kl_per_dim": 0.01, "hidden_sizes": "[256, 256]", "n_steps": 16, "value_batch_size": 64}
    settings = settings_from_params(params, action_dim=6)
    assert settings["max_kl"] == pytest.approx(0.06) and settings["hidden_sizes"] == (256, 256)
    assert cap_batch(settings, settings["n_steps"])["value_batch_size"] == 16
    TRPOConfig().replace(**cap_batch(settings, 16))  # a valid config


# ------------------------------------------------------------------ hyperparameter files
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_config_file_round_trip(tmp_path, suffix):
    cfg = TRPOConfig(gamma=0.98, max_kl=0.03, hidden_sizes=(32, 32), value_epochs=7)
    path = tmp_path / f"best{suffix}"
    write_config_file(path, cfg, env="CartPole-v1", timesteps=5000, comment="a comment")
    f = read_config_file(path)
    assert (f.env, f.timesteps) == ("CartPole-v1", 5000)
    loaded = load_config(path)
    assert loaded == cfg.replace(**{k: getattr(loaded, k) for k in ("rollout_backend",)})
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_an_agent_takes_the_path_of_a_config_file(tmp_path):
    import keras_trpo

    path = tmp_path / "best.yaml"
    write_config_file(path, TRPOConfig(gamma=0.97, n_steps=64, hidden_sizes=(8,)), env="CartPole-v1", timesteps=64)
    agent = keras_trpo.TRPO("CartPole-v1", config=str(path))
    assert (agent.config.gamma, agent.config.n_steps, agent.config.hidden_sizes) == (0.97, 64, (8,))
    assert agent.policy_model.get_layer("policy_torso").layers[0].units == 8
    agent.close()


@pytest.mark.parametrize("text, key", [("env: CartPole-v1\nsettings: {}\n", "settings"),
                                       ("config:\n  gamma: 0.9\n  max_kll: 0.1\n", "max_kll"),
                                       ("config: [1, 2]\n", "config"),
                                       ("timesteps: -3\n", "timesteps")])
def test_config_file_errors_name_the_key(tmp_path, text, key):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key):
        read_config_file(path)


def test_train_config_errors_are_named_without_a_trace(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("config:\n  max_kll: 0.1\n")
    proc = _cli("train", "--env", "CartPole-v1", "--config", path, "--timesteps", 100, "--out", tmp_path / "r")
    assert proc.returncode == 2 and "max_kll" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli("train", "--env", "CartPole-v1", "--out", tmp_path / "r")
    assert proc.returncode == 2 and "--timesteps is needed" in proc.stderr


def test_missing_optuna_is_a_clear_message(tmp_path):
    code = ("import sys; sys.modules['optuna'] = None\n"
            "from keras_trpo.cli import main\n"
            f"sys.exit(main(['tune', '--env', 'CartPole-v1', '--trials', '1', '--out', {str(tmp_path)!r}]))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "pip install 'keras-trpo[tune]'" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------------ the pruning callback
def test_the_callback_reports_each_evaluation_and_stops_a_hopeless_trial(tmp_path):
    import keras_trpo
    from keras_trpo.tune.trial import TrialEvaluation

    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "s.journal")))
    study = optuna.create_study(storage=storage, direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    study.add_trial(optuna.trial.create_trial(value=100.0, intermediate_values={1: 100.0, 2: 100.0, 3: 100.0, 4: 100.0}))
    trial = study.ask()
    agent = keras_trpo.TRPO("CartPole-v1", seed=0, n_steps=64)
    seen = []
    cb = TrialEvaluation(trial, total_timesteps=64 * 8, evaluations=4, episodes=1, seed=20_000,
                         evaluate=lambda a: seen.append(a.num_timesteps) or 1.0)
    agent.fit(64 * 8, callbacks=[cb], verbose=0)
    assert cb.pruned and seen == [128] and agent.num_timesteps == 128  # stopped after the first evaluation
    assert study.trials[-1].intermediate_values == {1: 1.0}
    # an evaluation above the median goes on to the end, evaluated 4 times, the last at the end
    trial = study.ask()
    cb = TrialEvaluation(trial, total_timesteps=64 * 8, evaluations=4, episodes=1, seed=20_000,
                         evaluate=lambda a: 200.0)
    agent.fit(64 * 8, callbacks=[cb], verbose=0)
    assert not cb.pruned and [t for t, _ in cb.history] == [256, 384, 512, 640] and cb.last_value == 200.0
    agent.close()


# ------------------------------------------------------------------ end to end
def _states(journal: Path, name: str) -> dict:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    study = optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(journal))))
    return {t.number: t for t in study.get_trials()}


def test_a_tiny_study_end_to_end_two_processes_pruned_failed_killed_resumed(tmp_path):
    out = tmp_path / "t"
    journal = out / "study.journal"
    args = ["tune", "--env", PROBE, "--trials", 8, "--jobs", 2, "--timesteps-per-trial", 128, "--out", out,
            "--set", "n_envs=1", "--set", "jit_compile=false", "--space", "n_steps=[64]",
            "--space", "hidden_sizes=[[8]]", "--space", "value_epochs=[1]", "--space", "cg_iters=[5]",
            "--evaluations", 2, "--eval-episodes", 2, "--startup-trials", 1]
    cmd = [sys.executable, "-m", "keras_trpo", *map(str, args)]
    first = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:  # kill the tune (SIGKILL: no chance to clean up) once two trials have finished
        while True:
            assert first.poll() is None, f"the tune ended before it was killed: {first.communicate()}"
            if journal.exists():
                done = [t for t in _states(journal, f"trpo-{PROBE}").values() if t.state.is_finished()]
                if len(done) >= 2:
                    break
            time.sleep(1)
    finally:
        first.kill()
        first.communicate()
    before = _states(journal, f"trpo-{PROBE}")
    kept = {n: (t.state, t.value) for n, t in before.items() if t.state.is_finished()}

    proc = _cli(*args)  # the same command resumes the study
    assert proc.returncode == 0, proc.stderr
    assert "resuming study" in proc.stderr
    after = _states(journal, f"trpo-{PROBE}")
    S = optuna.trial.TrialState
    assert {n: (t.state, t.value) for n, t in after.items() if n in kept} == kept  # finished trials are kept
    assert max(after) > max(before)  # numbering goes on
    # unfinished at the kill: RUNNING, or WAITING (a worker had taken it before its RUNNING record was written)
    running_at_kill = [n for n, t in before.items() if not t.state.is_finished()]
    for n in running_at_kill:  # the workers died with the tune; their trials are interrupted, not lost or counted
        attrs = after[n].user_attrs
        # A rare CI failure (2026-12-07) left such a trial FAIL without "interrupted"; say everything if it recurs
        # (the message, worker logs included, is built only when the assertion fails).
        assert after[n].state == S.FAIL and attrs.get("interrupted"), (
            f"trial {n}: {after[n].state.name}, error {attrs.get('error')!r}, attrs {sorted(attrs)}\n"
            + "".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:]
                      for p in sorted((out / "logs").glob("*.log"))))
    counted = [t for t in after.values() if t.state in (S.COMPLETE, S.PRUNED)
               or (t.state == S.FAIL and not t.user_attrs.get("interrupted"))]
    assert len(counted) == 8
    # the probe env's scores: even trials 20, odd ones 5 (pruned once an even one completed); trials 3 and 7
    # crash, unless one was running when the tune was killed (then it is interrupted, as asserted above)
    # (a worker can outlive the SIGKILLed tune for a moment and take a trial after `before` was read: such a
    # trial is interrupted too, so the crash is asserted for the ones that were not)
    crashing = [n for n in (3, 7) if n not in running_at_kill and not after[n].user_attrs.get("interrupted")]
    assert crashing
    for n in crashing:
        assert after[n].state == S.FAIL and f"simulated crash on training seed {n}" in after[n].user_attrs["error"]
        assert f"trial {n} failed: RuntimeError: probe env: simulated crash" in (out / "tune.log").read_text()
    assert all(t.value == 20.0 for t in after.values() if t.state == S.COMPLETE and t.number % 2 == 0)
    assert any(t.state == S.PRUNED for t in after.values()), {n: t.state for n, t in after.items()}
    assert all(t.number % 2 == 1 for t in after.values() if t.state == S.PRUNED)
    hosts = {json.dumps(t.user_attrs.get("worker", {}).get("pid")) for t in after.values() if t.state == S.COMPLETE}
    assert len(hosts) >= 2  # trials ran in more than one process
    # the report: the table on stdout, the best settings as a file train --config takes, the plots
    assert "rank" in proc.stdout and " 20.00 " in proc.stdout
    for name in ("best.yaml", "trials.csv", "optimization_history.png", "param_importances.png", "tune.log"):
        assert (out / name).exists(), name
    best = read_config_file(out / "best.yaml")
    assert best.env == PROBE and best.settings["hidden_sizes"] == [8] and best.settings["n_envs"] == 1
    run = _cli("train", "--config", out / "best.yaml", "--out", tmp_path / "run", "--verbose", 0,
               "--eval-episodes", 1)
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["timesteps"] >= 128 and summary["config"]["hidden_sizes"] == [8]
    assert summary["config"]["value_epochs"] == 1 and summary["config"]["n_steps"] == 64
    # --show at any time reads the study without running anything
    shown = _cli("tune", "--show", "--out", out, "--verbose", 0, timeout=120)
    assert shown.returncode == 0 and shown.stdout == proc.stdout


def test_progress_is_a_live_line_in_a_terminal_and_plain_lines_in_a_log(tmp_path):
    import io

    from keras_trpo.tune.progress import Counts, Progress

    for live in (True, False):
        stream, log = io.StringIO(), tmp_path / f"tune-{live}.log"
        p = Progress(4, log, stream=stream, live=live)
        p.update(Counts(running=2))
        p.update(Counts(complete=1, running=2, best=(-150.0, 0)))
        p.message("trial 1 failed: RuntimeError: boom")
        p.update(Counts(complete=1, pruned=1, failed=1, running=1, best=(-150.0, 0)))
        p.close()
        text = stream.getvalue()
        assert "trials 3/4 done: 1 complete, 1 pruned, 1 failed; 1 running; best -150 (trial 0)" in text
        assert ("\r" in text) == live and text.count("\n") == (2 if live else 4)
        logged = log.read_text().splitlines()
        assert len(logged) == 4 and "trial 1 failed: RuntimeError: boom" in logged[2] and "\r" not in log.read_text()


def test_an_rdb_storage_url_is_used_as_given(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    args = ["tune", "--env", PROBE, "--trials", 2, "--jobs", 1, "--timesteps-per-trial", 128, "--out", tmp_path / "o",
            "--storage", url, "--study", "rdb", "--set", "n_envs=1", "--set", "jit_compile=false",
            "--space", "n_steps=[64]", "--space", "hidden_sizes=[[8]]", "--evaluations", 1, "--eval-episodes", 1,
            "--verbose", 0]
    proc = _cli(*args)
    assert proc.returncode == 0, proc.stderr
    study = optuna.load_study(study_name="rdb", storage=url)
    assert [t.value for t in study.trials] == [20.0, 5.0] and not (tmp_path / "o" / "study.journal").exists()


def test_a_worker_that_dies_makes_the_tune_exit_1(tmp_path, monkeypatch, capsys):
    """A worker's crash or kill ends the round; the study is kept, but the exit status says it failed."""
    from keras_trpo.cli import main
    from keras_trpo.tune import driver

    def dying_workers(location, name, trials, jobs, deadline, out, verbose):
        (out / "logs").mkdir(parents=True, exist_ok=True)
        return [subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]) for _ in range(jobs)]

    monkeypatch.setattr(driver, "_start_workers", dying_workers)
    rc = main(["tune", "--env", PROBE, "--trials", "2", "--jobs", "2", "--timesteps-per-trial", "128",
               "--out", str(tmp_path / "o"), "--set", "n_envs=1"])
    err = capsys.readouterr().err
    assert rc == 1 and "error: worker(s) 0, 1 exited abnormally" in err and str(tmp_path / "o" / "logs") in err
    assert (tmp_path / "o" / "study.journal").exists()  # kept: the same command resumes it


def test_a_trial_started_when_the_study_is_full_is_not_run():
    from keras_trpo.tune.study import TuneSettings, counted
    from keras_trpo.tune.space import space_to_dict
    from keras_trpo.tune.trial import Objective, SurplusTrial

    study = optuna.create_study(direction="maximize")
    first, second, third = study.ask(), study.ask(), study.ask()  # three workers start at the same moment
    settings = TuneSettings(env="CartPole-v1", timesteps_per_trial=64, space=space_to_dict(build_space()))
    with pytest.raises(SurplusTrial):
        Objective(settings, target=2)(third)
    study.tell(third, state=optuna.trial.TrialState.FAIL)
    t = study.trials[third.number]
    assert t.user_attrs["interrupted"] and "already has 2 trials" in t.user_attrs["error"] and not counted(t)
    assert all(counted(study.trials[x.number]) for x in (first, second))


def test_a_worker_process_knows_keras_trpos_own_env_ids():
    """A tune worker imports only keras_trpo.tune.trial; the masked envs must be registered there
    too (`tune --env CartPoleNoVel-v1` crashed every worker with gymnasium's NameNotFound)."""
    code = ("from keras_trpo.tune.study import TuneSettings\n"
            "from keras_trpo.tune.space import space_to_dict, build_space\n"
            "from keras_trpo.tune.trial import Objective\n"
            "o = Objective(TuneSettings(env='CartPoleNoVel-v1', timesteps_per_trial=64, space=space_to_dict(build_space())))\n"
            "print(o.action_space)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[1], env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("Discrete(2)")


def test_a_sigterm_while_a_crash_is_recorded_marks_the_trial_interrupted(monkeypatch):
    """The kill can land while a crashed trial's error is being written (a CI run saw trial 3 left
    FAIL with neither its error nor ``interrupted``): the trial must still be marked interrupted."""
    from keras_trpo.tune.study import TuneSettings, counted
    from keras_trpo.tune.space import space_to_dict
    from keras_trpo.tune.trial import Objective

    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    objective = Objective(TuneSettings(env="CartPole-v1", timesteps_per_trial=64, space=space_to_dict(build_space())))

    def crash(_trial):
        raise RuntimeError("probe env: simulated crash")

    monkeypatch.setattr(objective, "_run", crash)
    real = trial.set_user_attr

    def set_user_attr(key, value):  # SIGTERM (as KeyboardInterrupt) arrives during the error's write
        if key == "error" and str(value).startswith("RuntimeError"):
            raise KeyboardInterrupt
        real(key, value)

    monkeypatch.setattr(trial, "set_user_attr", set_user_attr)
    with pytest.raises(KeyboardInterrupt):
        objective(trial)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    t = study.trials[trial.number]
    assert t.user_attrs["interrupted"] and t.user_attrs["error"].startswith("interrupted") and not counted(t)


def test_a_kill_between_asking_for_a_trial_and_tagging_it_is_held_until_the_tag_is_written():
    """A worker holds SIGTERM from before Optuna asks for a trial until the trial carries its tag (a CI
    run saw a trial left RUNNING with no tag, which no resume can tell is orphaned); the kill then lands
    in the objective, which marks the trial interrupted."""
    from keras_trpo.tune.study import TuneSettings, counted
    from keras_trpo.tune.space import space_to_dict
    from keras_trpo.tune.trial import Objective
    from keras_trpo.tune.worker import _Stop

    study = optuna.create_study(direction="maximize")
    objective = Objective(TuneSettings(env="CartPole-v1", timesteps_per_trial=64, space=space_to_dict(build_space())),
                          on_start=_Stop.deliver)
    objective._run = lambda trial: pytest.fail("the trial ran although a kill had arrived")
    previous = signal.signal(signal.SIGTERM, _Stop.handler)
    try:
        _Stop.hold()
        trial = study.ask()
        os.kill(os.getpid(), signal.SIGTERM)  # arrives before the tag: held, not raised here
        time.sleep(0.05)
        assert _Stop.pending
        with pytest.raises(KeyboardInterrupt):
            objective(trial)  # tags the trial, then the held kill lands
    finally:
        _Stop.holding = _Stop.pending = False
        signal.signal(signal.SIGTERM, previous)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    t = study.trials[trial.number]
    assert t.user_attrs["worker"]["pid"] == os.getpid() and t.user_attrs["interrupted"] and not counted(t)


# ------------------------------------------------------------------ several seeds per trial
def _probe_settings(seeds_per_trial, startup_trials=1):
    from keras_trpo.tune.space import space_to_dict
    from keras_trpo.tune.study import TuneSettings

    space = build_space({"n_steps": "[64]", "hidden_sizes": "[[8]]", "value_epochs": "[1]", "cg_iters": "[5]"},
                        fixed=["n_envs"])
    return TuneSettings(env=PROBE, timesteps_per_trial=64, space=space_to_dict(space),
                        fixed={"n_envs": 1, "jit_compile": False}, evaluations=1, eval_episodes=1,
                        startup_trials=startup_trials, seed=10, seeds_per_trial=seeds_per_trial).validate()


def test_a_trial_of_several_seeds_scores_their_mean_and_is_pruned_only_between_seeds_from_half_on(tmp_path):
    """The probe scores 20 after an even training seed and 5 after an odd one: a trial of K seeds trains
    seeds SEED + kK .. SEED + kK + K - 1 and reports the running mean of their final evaluations per seed."""
    from keras_trpo.tune.study import make_pruner
    from keras_trpo.tune.trial import Objective

    settings = _probe_settings(2)
    assert settings.trial_seeds(0) == [10, 11] and settings.trial_seeds(3) == [16, 17]
    study = optuna.create_study(direction="maximize", pruner=make_pruner(settings))
    trial = study.ask()
    value = Objective(settings)(trial)
    study.tell(trial, value)
    t = study.trials[0]
    assert value == 12.5 and t.user_attrs["seeds"] == [10, 11] and t.user_attrs["scores"] == [20.0, 5.0]
    assert t.intermediate_values == {1: 20.0, 2: 12.5} and [len(h) for h in t.user_attrs["evaluations"]] == [1, 1]
    assert t.user_attrs["timesteps"] == 128
    from keras_trpo.tune import report

    table = report.table(study, settings)
    assert "averaged over 2 training seeds" in table and " 20/5 " in table
    import csv
    row = next(csv.DictReader(report.write_trials_csv(study, tmp_path / "trials.csv").open()))
    assert json.loads(row["seeds"]) == [10, 11] and json.loads(row["scores"]) == [20.0, 5.0]

    # three seeds: the pruner may stop a trial after two (half, rounded up), never after the first
    settings = _probe_settings(3)
    assert settings.warmup_steps == 2 and _probe_settings(4).warmup_steps == 2 and _probe_settings(1).warmup_steps == 0
    study = optuna.create_study(direction="maximize", pruner=make_pruner(settings))
    study.add_trial(optuna.trial.create_trial(value=14.0, intermediate_values={1: 14.0, 2: 14.0, 3: 14.0}))
    trial = study.ask()  # number 1: seeds 13, 14, 15 score 5 (below 14, but one seed), 20 (mean 12.5: pruned)
    with pytest.raises(optuna.TrialPruned, match="after 2 of 3 seeds"):
        Objective(settings)(trial)
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    t = study.trials[1]
    assert t.user_attrs["seeds"] == [13, 14, 15] and t.user_attrs["scores"] == [5.0, 20.0]
    assert t.intermediate_values == {1: 5.0, 2: 12.5}


def test_seeds_per_trial_is_validated_and_a_study_made_before_it_resumes(tmp_path):
    from keras_trpo.tune.study import SETTINGS_ATTR, TuneError, create_or_resume, storage_location

    with pytest.raises(TuneError, match="seeds-per-trial must be a positive integer, got 0"):
        _probe_settings(0)
    proc = _cli("tune", "--env", PROBE, "--trials", 1, "--out", tmp_path, "--seeds-per-trial", "-1")
    assert proc.returncode == 2 and "seeds-per-trial must be a positive integer, got -1" in proc.stderr
    assert "Traceback" not in proc.stderr
    # an env that cannot be made is named at once (it was a worker's crash in its log, and exit status 0)
    proc = _cli("tune", "--env", "NoSuchEnv-v0", "--trials", 1, "--out", tmp_path / "none")
    assert proc.returncode == 2 and "cannot make the env 'NoSuchEnv-v0': NameNotFound" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "none").exists()
    # a study stored before the field existed has no seeds_per_trial: it is one seed per trial, and resumes
    location = storage_location(None, tmp_path)
    settings = _probe_settings(1)
    study, _, resumed = create_or_resume(location, "old", settings)
    old = settings.get_config()
    del old["seeds_per_trial"]
    study.set_user_attr(SETTINGS_ATTR, old)
    study, stored, resumed = create_or_resume(location, "old", settings)
    assert resumed and stored.seeds_per_trial == 1
    with pytest.raises(TuneError, match="seeds_per_trial differ"):
        create_or_resume(location, "old", _probe_settings(2))
