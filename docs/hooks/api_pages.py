"""The API reference pages, one per package, generated from the packages' public-name tables.

Nothing is imported (importing keras_trpo would import TensorFlow): each package's ``__init__.py`` is
read with ``ast``. A public name is one in ``__all__``; where it is defined comes from the package's
``_LAZY`` map (name -> module) if it has one, else from the ``from MODULE import NAME`` that brings it
in, else from the one module of the package that defines it at top level. So when a module moves,
the next build follows the package's own table, and a name that cannot be found fails the build.
mkdocstrings (griffe, static analysis) then renders each name from its defining module.
"""
from __future__ import annotations

import ast
import os
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class Package:
    name: str  # dotted import name
    title: str
    intro: str

    @property
    def directory(self) -> str:
        return os.path.join(ROOT, *self.name.split("."))

    @property
    def page(self) -> str:
        return f"reference/{self.name}.md"


PACKAGES = (
    Package("keras_trpo", "keras_trpo", "Training: the agent, its configuration, and the errors it raises. "
            "Needs TensorFlow and Keras."),
    Package("keras_trpo.export", "keras_trpo.export", "Export to ONNX, ORT, LiteRT (.tflite), C and SavedModel; "
            "every function verifies the file it writes against the agent."),
    Package("keras_trpo_serving", "keras_trpo_serving", "Running an exported policy without TensorFlow "
            "(numpy and onnxruntime; ai-edge-litert for .tflite; a C compiler for the C export)."),
)


class PublicNameError(RuntimeError):
    pass


_DATA_NODES = (ast.Expression, ast.Dict, ast.DictComp, ast.comprehension, ast.Constant, ast.Tuple, ast.List,
               ast.Set, ast.Name, ast.Load, ast.Store)


def _literal_dict(node: ast.AST, where: str) -> dict[str, str]:
    """``_LAZY``: a dict of string constants, possibly built with ``**{n: "mod" for n in (...)}``."""
    for sub in ast.walk(node):
        if not isinstance(sub, _DATA_NODES):
            raise PublicNameError(f"{where}: _LAZY uses {type(sub).__name__}, which this generator cannot evaluate")
    value = eval(compile(ast.Expression(node), where, "eval"), {"__builtins__": {}}, {})  # noqa: S307 - data only
    if not isinstance(value, dict):
        raise PublicNameError(f"{where}: _LAZY is not a dict")
    return value


def _eval_all(node: ast.AST, lazy: dict[str, str], where: str) -> list[str]:
    """``__all__``: a literal, or an expression over ``_LAZY`` such as ``sorted(_LAZY) + ["__version__"]``."""
    names = {"sorted": sorted, "list": list, "tuple": tuple, "_LAZY": lazy}
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id not in names:
            raise PublicNameError(f"{where}: __all__ uses {sub.id!r}, which this generator cannot evaluate")
        if isinstance(sub, ast.Attribute):
            raise PublicNameError(f"{where}: __all__ uses an attribute, which this generator cannot evaluate")
    value = eval(compile(ast.Expression(node), where, "eval"), {"__builtins__": {}}, names)  # noqa: S307
    return [str(v) for v in value]


def _top_level_names(tree: ast.Module) -> set[str]:
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
        elif isinstance(node, ast.Assign):
            found.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found.add(node.target.id)
    return found


def defining_module(package_name: str, name: str) -> str:
    """The module of a package that defines ``name`` at top level (for the hooks that need one)."""
    return _defining_module(Package(package_name, package_name, ""), name)


def _defining_module(package: Package, name: str) -> str:
    """The one module of the package (subpackages included) that defines ``name`` at top level."""
    hits = []
    for folder, dirs, files in os.walk(package.directory):
        dirs[:] = sorted(d for d in dirs if d not in ("tests", "__pycache__") and not d.startswith("."))
        for file in sorted(files):
            if not file.endswith(".py") or file == "__init__.py" and folder == package.directory:
                continue
            path = os.path.join(folder, file)
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read(), path)
            if name in _top_level_names(tree):
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                hits.append(rel[: -len(".__init__")] if rel.endswith(".__init__") else rel)
    if len(hits) != 1:
        raise PublicNameError(f"{package.name}.{name}: defined in {len(hits)} modules ({', '.join(hits) or 'none'}); "
                              "add it to the package's _LAZY map or import it in __init__.py")
    return hits[0]


def public_names(package: Package) -> dict[str, str]:
    """Public name -> the module that defines it, in ``__all__``'s order."""
    init = os.path.join(package.directory, "__init__.py")
    with open(init, encoding="utf-8") as f:
        tree = ast.parse(f.read(), init)
    lazy: dict[str, str] = {}
    all_node = None
    imported: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets):
            lazy = _literal_dict(node.value, init)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            all_node = node.value
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                imported[alias.asname or alias.name] = node.module
    if all_node is None:
        raise PublicNameError(f"{init}: no __all__")
    own = _top_level_names(tree)
    result: dict[str, str] = {}
    for name in _eval_all(all_node, lazy, init):
        if name in lazy:
            result[name] = lazy[name]
        elif name in imported:
            result[name] = imported[name]
        elif name in own:
            result[name] = package.name
        else:
            result[name] = _defining_module(package, name)
    return result


def page_markdown(package: Package) -> str:
    names = public_names(package)
    lines = [f"# `{package.title}`", "", package.intro, "",
             "Every public name of the package, generated from its docstrings "
             f"(the list is the package's `__all__`).", "",
             "| name | defined in |", "|---|---|"]
    lines += [f"| [`{package.name}.{n}`](#{package.name}.{n}) | `{m}` |" for n, m in names.items()]
    for name, module in names.items():
        public = f"{package.name}.{name}"
        # the anchor is the public name, so links survive a move; the heading shows it with the signature
        lines += ["", f'<a id="{public}"></a>', "", f"::: {module}.{name}", "    options:",
                  f'      heading: "{public}"', f'      toc_label: "{public}"', "      show_root_heading: true",
                  "      heading_level: 2", ""]
    return "\n".join(lines) + "\n"


def on_files(files, config, **kwargs):  # MkDocs hook
    from mkdocs.structure.files import File

    for package in PACKAGES:
        files.append(File.generated(config, package.page, content=page_markdown(package)))
    return files


if __name__ == "__main__":
    for p in PACKAGES:
        print(p.name, public_names(p))
