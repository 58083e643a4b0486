"""keras_trpo_serving.edge.compare_actions: the action check check_arm64.sh runs on emulated arm64 (and a
user can run on a real board). It must pass on matching outputs and fail on any real difference."""
import json

import numpy as np
import pytest

from keras_trpo_serving import OnnxPolicy
from keras_trpo_serving.edge.compare_actions import compare, load_reference, main, max_abs_diff
from keras_trpo_serving.tests.conftest import fixture_path, reference


def test_exporter_fixtures_match_their_references(named_policy):
    name, policy, ref = named_policy
    result = compare(policy, ref)
    assert result["ok"], result
    assert result["observations"] == len(ref["obs"]) and result["actions_differing"] == 0
    expected_params = {"logits"} if "logits" in ref else {"mean", "log_std"}
    assert set(result["params"]) == expected_params
    # The reported figure is the plain largest absolute difference.
    act = policy.act(ref["obs"]).astype(np.float64)
    assert result["max_abs_action_diff"] == float(np.abs(act - ref["action"]).max())


def test_one_changed_discrete_action_fails():
    ref = reference("discrete")
    ref["action"] = ref["action"].copy()
    ref["action"][5] += 1
    result = compare(OnnxPolicy(fixture_path("discrete")), ref)
    assert not result["ok"] and not result["actions_ok"]
    assert result["actions_differing"] == 1 and result["max_abs_action_diff"] == 1.0


def test_continuous_action_off_by_more_than_atol_fails_and_within_passes():
    ref = reference("gaussian")
    policy = OnnxPolicy(fixture_path("gaussian"))
    near, far = dict(ref), dict(ref)
    near["action"] = ref["action"] + np.float32(2e-6)
    far["action"] = ref["action"].copy()
    far["action"][3, 1] += np.float32(1e-3)
    assert compare(policy, near)["actions_ok"]
    result = compare(policy, far)
    assert not result["ok"] and result["actions_differing"] == 1
    assert result["max_abs_action_diff"] == pytest.approx(1e-3, rel=1e-3)


def test_distribution_parameters_are_checked_even_when_actions_agree():
    ref = reference("discrete")
    ref["logits"] = ref["logits"] + np.float32(1e-3)  # argmax unchanged: same actions
    result = compare(OnnxPolicy(fixture_path("discrete")), ref)
    assert result["actions_ok"] and not result["params"]["logits"]["ok"] and not result["ok"]
    assert result["params"]["logits"]["max_abs_diff"] == pytest.approx(1e-3, rel=1e-2)


def test_wrong_shapes_are_an_error_not_a_broadcast():
    with pytest.raises(ValueError, match=r"shape \(3,\) here, \(3, 1\) in the reference"):
        max_abs_diff(np.zeros(3), np.zeros((3, 1)))
    assert max_abs_diff(np.zeros((0, 2)), np.zeros((0, 2))) == 0.0


def test_reference_without_actions_is_refused(tmp_path):
    path = tmp_path / "ref.npz"
    np.savez(path, obs=np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="has no action array"):
        load_reference(str(path))


def test_command_line_exit_codes(tmp_path, capsys):
    model, ref = fixture_path("discrete"), reference("discrete")
    good = tmp_path / "good.npz"
    np.savez(good, **ref)
    assert main(["--model", model, "--reference", str(good)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["observations"] == len(ref["obs"]) and report["machine"]

    bad = tmp_path / "bad.npz"
    np.savez(bad, **{**ref, "action": ref["action"] + 1})
    assert main(["--model", model, "--reference", str(bad)]) == 1
    assert json.loads(capsys.readouterr().out)["actions_differing"] == len(ref["obs"])

    assert main(["--model", model, "--reference", str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz" in capsys.readouterr().err
