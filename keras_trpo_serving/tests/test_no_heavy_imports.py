"""keras_trpo_serving/ must run where only numpy and onnxruntime are installed (or numpy and ai-edge-litert)."""
import ast
import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

SERVING = pathlib.Path(__file__).resolve().parents[1]
ROOT = SERVING.parent
# Never in keras_trpo_serving/: the training stack. (What CI greps for.)
FORBIDDEN = {"tensorflow", "keras", "tf_keras", "tf2onnx", "tensorflow_probability", "keras_trpo"}
# Not in the runtime either: other heavy or build-time packages. make_fixtures.py alone may use
# onnx, since it runs once in another venv to write the committed fixtures.
NOT_AT_RUNTIME = {"export", "torch", "onnx", "jax", "gymnasium"}
ALLOWED = {"tests/make_fixtures.py": {"onnx"}, "cli.py": {"gymnasium"},  # cli imports gymnasium lazily
           "video.py": {"gymnasium"},  # only for `run --video`, lazily
           "edge/closed_loop.py": {"gymnasium"},  # a check script that plays episodes, lazily
           "ros2/bridge.py": {"gymnasium"}}  # a gymnasium env on the ROS 2 node's topics, lazily


def _imports(path: pathlib.Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")):
            names.append(node.args[0].value)  # importlib.import_module("tensorflow") counts too
    return [n.split(".")[0] for n in names]


def test_serving_sources_import_nothing_heavy():
    offenders = []
    for path in sorted(SERVING.rglob("*.py")):
        rel = path.relative_to(SERVING).as_posix()
        for name in _imports(path):
            if name in FORBIDDEN or (name in NOT_AT_RUNTIME and name not in ALLOWED.get(rel, ())):
                offenders.append(f"keras_trpo_serving/{rel}: {name}")
    assert offenders == []


def test_plain_grep_finds_no_forbidden_import_lines():
    # The same check as a line grep, as CI does it, so a dynamic trick the AST walk misses still shows.
    pattern = re.compile(r"^\s*(import|from)\s+(tensorflow|keras|tf_keras|tf2onnx|tensorflow_probability|keras_trpo)\b")
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in SERVING.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.match(line)]
    assert hits == []
    assert not (ROOT / "benchmarks" / "serving_latency.py").exists() or not any(
        pattern.match(line) for line in (ROOT / "benchmarks" / "serving_latency.py").read_text().splitlines())


def test_importing_serving_and_acting_loads_no_tensorflow():
    # A fresh interpreter: what the pytest process has imported does not count.
    code = (
        "import sys, numpy as np\n"
        "import keras_trpo_serving, keras_trpo_serving.server, keras_trpo_serving.cli\n"
        "from keras_trpo_serving import OnnxPolicy\n"
        f"p = OnnxPolicy({str(SERVING / 'tests' / 'fixtures' / 'linear_gaussian.onnx')!r}, seed=0)\n"
        "p.act(np.zeros(5)); p.act(np.zeros((3, 5)), deterministic=False)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'keras', 'tf2onnx', 'tensorflow_probability', 'keras_trpo', 'onnx', 'gymnasium', 'torch'))\n"
        "assert 'tensorflow' not in sys.modules\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None, reason="ai-edge-litert is not installed")
def test_litert_policies_load_and_act_without_onnxruntime():
    # A LiteRT-only device has no onnxruntime: any import of it in this process fails, as there.
    fixtures = SERVING / "tests" / "fixtures"
    code = (
        "import sys, importlib.abc, numpy as np\n"
        "class NoOrt(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'onnxruntime':\n"
        "            raise ImportError('onnxruntime is not installed here')\n"
        "sys.meta_path.insert(0, NoOrt())\n"
        "import keras_trpo_serving.litert_policy\n"
        "from keras_trpo_serving.litert_policy import LiteRtPolicy\n"
        "from keras_trpo_serving import load_policy, ExportedPolicy, LiteRtPolicy as L2\n"
        "import keras_trpo_serving.policy, keras_trpo_serving.c_policy, keras_trpo_serving.server, keras_trpo_serving.cli\n"
        f"p = LiteRtPolicy({str(fixtures / 'litert_gaussian.tflite')!r}, seed=0)\n"
        "p.act(np.zeros(p.obs_shape)); p.act(np.zeros((3, *p.obs_shape)), deterministic=False)\n"
        f"r = load_policy({str(fixtures / 'recurrent_dict.tflite')!r})\n"  # Dict observation, recurrent
        "assert isinstance(r, L2) and r.is_recurrent and r.obs_keys\n"
        "r.act({k: np.zeros(s[0]) for k, s in r._in_specs.items()})\n"
        "assert 'onnxruntime' not in sys.modules, 'onnxruntime was imported'\n"
        "try:\n"
        "    from keras_trpo_serving import OnnxPolicy\n"  # lazy: asking for it is what needs onnxruntime
        "except ImportError:\n"
        "    print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_requirements_are_minimal():
    req = SERVING / "requirements.txt"
    lines = [line.strip() for line in req.read_text().splitlines() if line.strip() and not line.startswith("#")]
    names = {re.split(r"[<>=!~;\[ ]", line, maxsplit=1)[0].lower() for line in lines}
    assert names == {"numpy", "onnxruntime"}
    for line in lines:  # compatible ranges, not pins: an edge box has its own wheels
        assert ">=" in line and "<" in line and "==" not in line, line
