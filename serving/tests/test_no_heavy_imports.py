"""serving/ must run where only numpy and onnxruntime are installed."""
import ast
import pathlib

FORBIDDEN = {"tensorflow", "keras", "tf_keras", "tf2onnx", "tensorflow_probability", "keras_trpo", "export", "torch", "onnx"}


def test_serving_sources_import_nothing_heavy():
    root = pathlib.Path(__file__).resolve().parents[1]
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(root)}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_requirements_are_minimal():
    req = pathlib.Path(__file__).resolve().parents[1] / "requirements.txt"
    names = {line.split(">")[0].split("=")[0].split("<")[0].strip().lower()
             for line in req.read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert names == {"numpy", "onnxruntime"}
