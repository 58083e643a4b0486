"""The two distributions' metadata agree with the code and with the requirements files.

Building the wheels and installing them outside the checkout is .ci/check_wheels.sh's job (it
needs the package index); these checks are the ones that can drift silently between releases.
"""
import importlib
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

import keras_trpo

ROOT = Path(__file__).resolve().parents[1]


def _toml(path):
    return tomllib.loads((ROOT / path).read_text())


def _requirements(path):
    """Requirement objects of a requirements file (comments and blank lines skipped)."""
    out = []
    for line in (ROOT / path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out.append(Requirement(line))
    return out


def _key(req):
    return req.name.lower().replace("_", "-"), str(req.specifier), tuple(sorted(req.extras))


def test_base_dependencies_are_the_requirements_files_ranges():
    project = _toml("pyproject.toml")["project"]
    pinned = {_key(r) for r in _requirements("requirements.txt")}
    for dep in project["dependencies"]:
        assert _key(Requirement(dep)) in pinned, f"{dep} differs from requirements.txt"
    extras = project["optional-dependencies"]
    for dep in extras["video"]:
        assert _key(Requirement(dep)) in {_key(r) for r in _requirements("keras_trpo_serving/requirements-video.txt")}
    assert [_key(Requirement(d)) for d in extras["litert"]] == [_key(r) for r in _requirements("keras_trpo_serving/requirements-litert.txt")]
    assert not any(Requirement(d).name == "tensorflow" for d in extras["video"] + extras["litert"])


def test_serving_distribution_needs_no_tensorflow():
    serving = _toml("keras_trpo_serving/pyproject.toml")
    assert serving["project"]["name"] == "keras-trpo-serving"
    names = {r.name.lower() for r in _requirements("keras_trpo_serving/requirements.txt")}
    assert names == {"numpy", "onnxruntime"}
    hook = serving["tool"]["hatch"]["metadata"]["hooks"]["requirements_txt"]
    assert hook["files"] == ["requirements.txt"]
    for files in hook["optional-dependencies"].values():
        for f in files:
            assert not {"tensorflow", "keras", "tf2onnx"} & {r.name.lower() for r in _requirements(f"keras_trpo_serving/{f}")}


def test_versions_agree_and_the_changelog_has_this_one():
    assert re.fullmatch(r"\d+\.\d+\.\d+", keras_trpo.__version__)
    root = _toml("pyproject.toml")
    assert root["project"]["dynamic"] == ["version"] and root["tool"]["hatch"]["version"]["path"] == "keras_trpo/__init__.py"
    assert _toml("keras_trpo_serving/pyproject.toml")["project"]["version"] == keras_trpo.__version__
    assert re.search(rf"^## \[{re.escape(keras_trpo.__version__)}\] - \d{{4}}-\d\d-\d\d$",
                     (ROOT / "CHANGELOG.md").read_text(), re.M)


def test_license_is_mit_in_both_distributions():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and (ROOT / "keras_trpo_serving" / "LICENSE").read_text() == text
    assert _toml("pyproject.toml")["project"]["license"] == _toml("keras_trpo_serving/pyproject.toml")["project"]["license"] == "MIT"


def test_console_commands_point_at_real_functions():
    for path in ("pyproject.toml", "keras_trpo_serving/pyproject.toml"):
        for name, target in _toml(path)["project"]["scripts"].items():
            module, func = target.split(":")
            assert callable(getattr(importlib.import_module(module), func)), (name, target)


def test_the_wheel_holds_every_package_of_the_code():
    wheel = _toml("pyproject.toml")["tool"]["hatch"]["build"]["targets"]["wheel"]
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in ("tests", "benchmarks")}
    assert set(wheel["packages"]) == packages  # a new top-level package must be listed (or excluded here)
