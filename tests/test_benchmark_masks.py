"""The action-mask benchmark's counting (benchmarks/maskcount.py) and table (benchmarks/masks.py)."""

import gymnasium as gym
import numpy as np
import pytest

import keras_trpo.joint_limits  # noqa: F401 - registers JointLimits-v0
from benchmarks import masks
from benchmarks.maskcount import CountInvalid, forbidden, masked_episodes
from benchmarks.seedstore import FORMAT, seed_path, write_record


def test_forbidden_reads_sb3_contribs_layouts_and_any_forbidden_part_forbids():
    assert forbidden(gym.spaces.Discrete(3), 1, np.array([1, 0, 1]))
    assert not forbidden(gym.spaces.Discrete(3), np.array([2]), np.array([1, 0, 1]))
    assert forbidden(gym.spaces.Discrete(3, start=5), 6, np.array([1, 0, 1]))  # action 6 is entry 1
    md = gym.spaces.MultiDiscrete([2, 3])
    mask = np.array([1, 0, 0, 1, 0])  # sub-space 0: only 0; sub-space 1: only 1
    assert not forbidden(md, [0, 1], mask)
    assert forbidden(md, [1, 1], mask) and forbidden(md, [0, 2], mask) and forbidden(md, [1, 2], mask)
    mb = gym.spaces.MultiBinary(2)
    mask = np.array([1, 0, 0, 1])  # bit 0 must be 0, bit 1 must be 1
    assert not forbidden(mb, [0, 1], mask)
    assert forbidden(mb, [1, 1], mask) and forbidden(mb, [1, 0], mask)
    assert not forbidden(md, [1, 2], None)


def test_forbidden_rejects_a_mask_of_the_wrong_size_and_box_actions():
    with pytest.raises(ValueError, match="5 entries per row, got shape \\(1, 4\\)"):
        forbidden(gym.spaces.MultiDiscrete([2, 3]), [0, 0], np.ones(4))
    with pytest.raises(ValueError, match="Box actions cannot be masked"):
        forbidden(gym.spaces.Box(-1, 1, (2,)), [0.0, 0.0], np.ones(2))


def test_count_invalid_counts_the_steps_in_which_the_env_refused_a_command():
    env = CountInvalid(gym.make("JointLimits-v0"))
    rng = np.random.default_rng(0)
    env.reset(seed=3)
    refused = 0
    for _ in range(300):
        _, _, terminated, truncated, info = env.step(rng.integers(0, 3, 3))
        refused += info["invalid_actions"] > 0  # the env's refusals, computed from its own state
        if terminated or truncated:
            env.reset()
    assert env.steps == 300 and env.invalid == refused > 0


def test_masked_episodes_hands_the_mask_over_and_counts_against_it():
    def obeys(obs, mask):  # the first valid command of each joint
        return mask.reshape(3, 3).argmax(axis=1)

    def ignores(obs, mask):  # always "move down": refused wherever a joint is at its lower limit
        return np.zeros(3, np.int64)

    _, none = masked_episodes("JointLimits-v0", obeys, 3, 10_000)
    _, some = masked_episodes("JointLimits-v0", ignores, 3, 10_000)
    assert none == 0 and some > 0


def _record(out, arm, impl, env, seed, eval_mean, ev, tr, curve=(-50.0, -50.0, -50.0), requested=1000):
    r = {"format": FORMAT, "impl": impl, "env": env, "seed": seed, "request": {"timesteps": requested, "overrides": {}},
         "eval_mean": eval_mean, "steps_per_s": 100.0, "timesteps": 1000, "cpu_s": 4.0 + seed,
         "invalid_actions_eval": ev, "invalid_actions_train": tr,
         "curve": {"timesteps": [300, 500, 1000], "return": list(curve)}}
    write_record(seed_path(f"{out}/{arm}", impl, env, seed), r)


def test_table_rows_per_task_and_arm_with_invalid_counts(tmp_path, capsys):
    for s in range(4):
        _record(tmp_path, "masked", "keras_trpo", "Taxi-v4", s, 7.0 + s, 0, 0, curve=(0.0, 5.0, 7.0))
        # Taxi's threshold is a training return of 0: two of the four unmasked seeds reach it, at step 500
        _record(tmp_path, "unmasked", "keras_trpo", "Taxi-v4", s, 1.0, s, 10 * s,
                curve=(-9.0, 1.0 if s < 2 else -1.0, -1.0))
    _record(tmp_path, "maskable_ppo", "sb3-contrib-MaskablePPO", "Taxi-v4", 0, 5.0, 0, None)
    assert masks.cmd_table(["--out", str(tmp_path), "--reps", "200"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| Taxi")]
    assert len(rows) == 3
    masked, unmasked, ppo = (row.split(" | ") for row in rows)
    assert masked[1:3] == ["keras_trpo, masks", "4"] and masked[3].startswith("8.5 ")  # IQM of 7, 8, 9, 10
    assert masked[5:] == ["100", "183", "0", "0 |"]  # median of 1000 steps / 4, 5, 6, 7 CPU s: (200 + 166.7) / 2
    assert unmasked[7:] == ["6", "15 |"]  # 0+1+2+3 in evaluation; mean of 0, 10, 20, 30 in training
    assert ppo[8] == "? |"  # a record without the training count says so
    assert masked[4] == "300" and unmasked[4] == "500 (2 of 4 seeds)" and ppo[4] == "not reached"


def test_other_arms_and_tasks_go_to_a_second_table(tmp_path, capsys):
    _record(tmp_path, "masked", "keras_trpo", "Taxi-v4", 0, 8.0, 0, 0, requested=100_000)  # one of masks.TASKS
    write_record(seed_path(f"{tmp_path}/recurrent_masked", "keras_trpo", "JointLimitsMemory-v0", 0),
                 {"format": FORMAT, "impl": "keras_trpo", "env": "JointLimitsMemory-v0", "seed": 0, "eval_mean": -3.0,
                  "request": {"timesteps": 100_000, "overrides": {}}, "steps_per_s": 1.0})
    assert masks.cmd_table(["--out", str(tmp_path), "--reps", "200"]) == 0
    tables = capsys.readouterr().out.split("\n\n")
    assert "| Taxi-v4 (100,000) | keras_trpo, masks |" in tables[0] and "JointLimitsMemory" not in tables[0]
    assert "| JointLimitsMemory-v0 (100,000) | keras_trpo LSTM, masks | 1 | -3.00" in tables[2]


def test_first_reaching_reads_the_training_curve():
    r = {"curve": {"timesteps": [100, 200, 300], "return": [-5.0, None, 1.0]}}
    assert masks.first_reaching(r, 0.0) == 300 and masks.first_reaching(r, -5.0) == 100
    assert masks.first_reaching(r, 2.0) is None


def test_run_interleaves_the_arms_seed_by_seed(capsys):
    assert masks.cmd_run(["--arms", "unmasked", "maskable_ppo", "--seeds", "3-4", "--sb3-python", "/sb3/python",
                          "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert "--set action_masks=off --task Taxi-v4:1e5 JointLimits-v0:1e5 --seeds 3 " in lines[0]
    assert lines[0].endswith("--jobs 1") and "--sb3-python" not in lines[0]
    assert "--impl maskable_ppo" in lines[1] and "--seeds 3 " in lines[1]
    assert lines[1].endswith("--sb3-python /sb3/python")
    assert "--seeds 4 " in lines[2] and "--seeds 4 " in lines[3]
