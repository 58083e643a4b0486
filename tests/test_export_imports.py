"""keras_trpo/export imports in one direction: no module imports, directly or through others, a module
that imports it back, counting the imports inside functions too (they hide a circle, they do not
remove it). Read from the source with ``ast``: nothing is imported, so this runs in milliseconds."""
import ast
from pathlib import Path

PACKAGE = "keras_trpo.export"
ROOT = Path(__file__).resolve().parents[1]


def _modules(package: str) -> dict[str, Path]:
    folder = ROOT / Path(*package.split("."))
    return {f"{package}.{p.stem}" if p.stem != "__init__" else package: p for p in sorted(folder.glob("*.py"))}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``path`` imports, anywhere in the file (``from P import m`` of a
    submodule ``m`` counts as importing ``P.m``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names} & set(modules)
            found |= subs or ({node.module} & set(modules))
    return found


def import_graph(package: str = PACKAGE) -> dict[str, set[str]]:
    modules = _modules(package)
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_in_the_export_package():
    graph = import_graph()
    assert len(graph) > 20 and f"{PACKAGE}.verify" in graph
    assert cycles(graph) == []


def test_the_formats_reach_the_agent_only_through_the_description():
    """Only description.py reads the agent: the harness and the adapters import it, not each other's internals."""
    graph = import_graph()
    for fmt in ("onnx_export", "ort", "tflite", "saved_model", "c_export"):
        assert f"{PACKAGE}.description" in graph[f"{PACKAGE}.{fmt}"], fmt
        assert f"{PACKAGE}.verify" in graph[f"{PACKAGE}.{fmt}"], fmt
    assert not {m for m in graph[f"{PACKAGE}.verify"] if m.rsplit(".", 1)[1] in (
        "onnx_export", "ort", "tflite", "tflm", "saved_model", "c_export")}
