"""The documentation site's own invariants that need no build: the `docs` extra is docs/requirements.txt,
and every public name of the three packages resolves to the module that defines (or imports) it (what the API
reference pages are generated from). .ci/docs.sh builds the site and runs its examples."""
from __future__ import annotations

import ast
import importlib.util
import os
import sys
import tomllib

from packaging.requirements import Requirement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _hook(name: str):
    """``docs/hooks/NAME.py``, the MkDocs hook, as a module (loaded once)."""
    key = f"docs_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, os.path.join(ROOT, "docs", "hooks", f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    return sys.modules[key]


def _api_pages():
    return _hook("api_pages")


def _key(req: Requirement) -> tuple:
    return req.name.lower().replace("_", "-"), str(req.specifier), tuple(sorted(req.extras))


def test_docs_extra_is_docs_requirements():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        extra = tomllib.load(f)["project"]["optional-dependencies"]["docs"]
    with open(os.path.join(ROOT, "docs", "requirements.txt")) as f:
        lines = [line.split("#")[0].strip() for line in f]
    assert sorted(_key(Requirement(d)) for d in extra) == sorted(_key(Requirement(line)) for line in lines if line)


def test_every_public_name_resolves_to_its_defining_module():
    api = _api_pages()
    for package in api.PACKAGES:
        names = api.public_names(package)
        assert names, package.name
        for name, module in names.items():
            path = os.path.join(ROOT, *module.split("."))
            path = path + ".py" if os.path.exists(path + ".py") else os.path.join(path, "__init__.py")
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read())
            defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
            defined |= {n.target.id for n in tree.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
            # or imported there (the API reference follows the import, as the package's lazy import does)
            defined |= {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
            assert name in defined, f"{package.name}.{name}: neither defined nor imported at top level of {module}"


def test_public_name_tables_are_read_without_importing():
    api = _api_pages()
    page = api.page_markdown(api.PACKAGES[1])
    assert "::: keras_trpo.export." in page and 'heading: "keras_trpo.export.to_onnx"' in page


def test_generated_benchmark_tables_match_the_stored_results():
    """A seed file committed without its table makes the docs build recompute the table (rliable's bootstrap:
    a stale reward_step and wide table took a clean-clone build from 22 s to 678 s), so say it here, at once."""
    tables = _hook("benchmark_tables")
    stale = [t.name for t in tables.TABLES if not tables.is_current(t, tables.digest(tables.input_files(t)))]
    assert not stale, (f"docs/benchmarks/generated/ is older than the results it is computed from: {', '.join(stale)}; "
                       f"run `python docs/hooks/benchmark_tables.py {' '.join(stale)}` and commit what it writes")
