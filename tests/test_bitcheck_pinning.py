"""benchmarks.bitcheck replays a recorded run with its configuration pinned, including the fields added to
TRPOConfig since the record (at their defaults, the behaviour the record had), so that a preset adopted
later cannot count as a change, nor hide one."""
import dataclasses
import json
from pathlib import Path

from benchmarks.bitcheck import pinned
from keras_trpo.config import TRPOConfig, default_config
from keras_trpo.config_file import MACHINE_FIELDS

ROOT = Path(__file__).resolve().parents[1]


def test_fields_added_after_a_record_are_pinned_to_their_defaults_not_to_the_envs_preset():
    stored = json.loads((ROOT / "benchmarks/results/bitcheck/cartpolenovel-lstm-s0.json").read_text())["config"]
    # as a record made before the entropy bonus and the trust-region schedule existed holds it
    recorded = {k: v for k, v in stored.items() if k not in ("entropy_coef", "max_kl_schedule")}
    config = pinned(recorded)
    assert config["entropy_coef"] == 0.0 and config["max_kl_schedule"] == "constant"
    preset = default_config("CartPoleNoVel-v1")  # what an unpinned replay would train: the env's preset, which differs
    assert preset.entropy_coef > 0.0 and preset.max_kl_schedule == "linear"
    assert {k: v for k, v in config.items() if k in recorded} == recorded  # the record's own values win
    fields = {f.name for f in dataclasses.fields(TRPOConfig)}
    assert set(config) == fields - set(MACHINE_FIELDS)  # machine-dependent fields stay the machine's
    TRPOConfig().replace(**{k: tuple(v) if k == "hidden_sizes" else v for k, v in config.items()})  # all valid
