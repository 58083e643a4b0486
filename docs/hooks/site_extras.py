"""What the pages show that is computed at build time, so that it cannot drift from the code.

- ``<!-- output: python -m keras_trpo presets Hopper-v5 -->`` on a line of its own becomes that
  command's output (run from the repository root with its code first on the path; a failing command
  fails the build). Only ``python -m`` of the project's own packages is allowed.
- ``<!-- openapi: cartpole -->`` becomes the OpenAPI document that ``python -m keras_trpo_serving http``
  serves for a CartPole-v1 policy: routes, answers and status codes, then the whole document.
- Pages with ``math: true`` in their front matter: ``$$ ... $$`` (display) and ``$ ... $`` (inline)
  become MathML, which browsers render themselves (no script, nothing fetched).
- The table between ``<!-- config-fields -->`` and ``<!-- /config-fields -->`` is checked against
  ``keras_trpo.TRPOConfig``'s fields and defaults (read with ``ast``): a field added, removed or given
  another default fails the build until the table says so.
- The figures stored under benchmarks/results/ are published as benchmarks/figures/NAME.png.
"""
from __future__ import annotations

import ast
import importlib
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_pages import PACKAGES, ROOT, defining_module, public_names  # noqa: E402

FIGURE_DIRS = ("benchmarks/results", "benchmarks/results/tune/Pendulum-v1")
OUTPUT = re.compile(r"^<!-- output: (python -m (?:keras_trpo|keras_trpo_serving|benchmarks)[\w.]*(?: [^>]*)?) -->$", re.M)
OPENAPI = re.compile(r"^<!-- openapi: (\w+) -->$", re.M)
FENCE = re.compile(r"^( *)(```|~~~).*?^\1\2\s*$", re.M | re.S)


# ------------------------------------------------------------------ command output
def command_output(command: str) -> str:
    args = command.split()[1:]  # drop "python": this interpreter runs it
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="2", COLUMNS="100")
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"docs: `{command}` failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return f"```text title=\"$ {command}\"\n{done.stdout.rstrip()}\n```"


# ------------------------------------------------------------------ OpenAPI
INF = "inf"
CARTPOLE_METADATA = {  # what the export writes for a CartPole-v1 policy (keras_trpo/export's metadata)
    "keras_trpo_version": "0.1.0", "env_id": "CartPole-v1", "distribution": "categorical",
    "observation_space": json.dumps({"type": "Box", "shape": [4], "dtype": "float32",
                                     "low": [-4.8, "-inf", -0.41887903, "-inf"], "high": [4.8, "inf", 0.41887903, "inf"]}),
    "action_space": json.dumps({"type": "Discrete", "shape": [], "dtype": "int64", "n": 2, "start": 0}),
    "obs_normalization": "none", "outputs": "action,logits", "inputs": "obs",
    "recurrent": "", "state_size": "0", "state_reset": "",
}


def _import(package: str, name: str):
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)  # this checkout's code, as the API pages document it
    return getattr(importlib.import_module(defining_module(package, name)), name)


def openapi_markdown(which: str) -> str:
    if which != "cartpole":
        raise ValueError(f"docs: no OpenAPI example named {which!r}")
    parse_metadata = _import("keras_trpo_serving", "parse_metadata")
    openapi_document = _import("keras_trpo_serving", "openapi_document")
    meta = parse_metadata(CARTPOLE_METADATA, "CartPole-v1 example")
    doc = openapi_document(meta.as_dict(), meta.observation_space, meta.action_space, authenticated=True,
                           noise_width=2, state_size=0)
    lines = ["| route | what | answers |", "|---|---|---|"]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            codes = ", ".join(f"`{c}`" for c in op["responses"])
            lines.append(f"| `{method.upper()} {path}` | {op.get('summary', '')} | {codes} |")
    statuses: dict[str, str] = {}
    for methods in doc["paths"].values():
        for op in methods.values():
            for code, answer in op["responses"].items():
                if code != "200":
                    statuses.setdefault(code, answer["description"])
    lines += ["", "| status | when (from the document's responses) |", "|--:|---|"]
    lines += [f"| {code} | {statuses[code]} |" for code in sorted(statuses)]
    schemas = doc["components"]["schemas"]
    lines += ["", "The request body of `POST /v1/act`:", "",
              "```json", json.dumps(doc["paths"]["/v1/act"]["post"]["requestBody"]["content"]["application/json"]["schema"],
                                     indent=2), "```", "",
              "`Observation`, `Action` and `Noise` for this policy:", "", "```json",
              json.dumps({k: schemas[k] for k in ("Observation", "Action", "Noise") if k in schemas}, indent=2), "```", "",
              '??? example "The whole document (`GET /openapi.json`, CartPole-v1, served with a token)"', "",
              "    ```json"]
    lines += ["    " + line for line in json.dumps(doc, indent=2).splitlines()]
    lines += ["    ```", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------ math
def _mathml(latex: str, display: bool) -> str:
    from latex2mathml.converter import convert

    # Inside a <span>: Python-Markdown takes a line that starts with <math> for a block of raw HTML, which
    # would cut a paragraph or a list item in two.
    mathml = convert(latex.strip(), display="block" if display else "inline").replace("\n", "")
    return f'<span class="math">{mathml}</span>'


def math_to_mathml(markdown: str) -> str:
    """$$...$$ and $...$ outside code to MathML (code blocks and inline code are left alone)."""
    parts, last = [], 0
    for m in FENCE.finditer(markdown):
        parts.append(("text", markdown[last:m.start()]))
        parts.append(("code", m.group(0)))
        last = m.end()
    parts.append(("text", markdown[last:]))
    out = []
    for kind, chunk in parts:
        if kind == "code":
            out.append(chunk)
            continue
        chunk = re.sub(r"\$\$(.+?)\$\$", lambda m: _mathml(m.group(1), True), chunk, flags=re.S)
        pieces = re.split(r"(`[^`\n]*`)", chunk)  # inline code stays as it is
        pieces = [p if p.startswith("`") else re.sub(r"(?<![\\$\w])\$([^$\n]+?)\$(?!\w)",
                                                     lambda m: _mathml(m.group(1), False), p) for p in pieces]
        out.append("".join(pieces))
    return "".join(out)


# ------------------------------------------------------------------ config fields
CONFIG_TABLE = re.compile(r"<!-- config-fields -->\n(.*?)<!-- /config-fields -->", re.S)


def config_defaults() -> dict[str, str]:
    """TRPOConfig's fields and their defaults as source text, from the module the package names."""
    module = public_names(PACKAGES[0])["TRPOConfig"]
    path = os.path.join(ROOT, *module.split(".")) + ".py"
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TRPOConfig")
    return {n.target.id: ast.unparse(n.value) for n in cls.body
            if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) and n.value is not None}


def check_config_table(markdown: str, page: str) -> None:
    m = CONFIG_TABLE.search(markdown)
    if not m:
        return
    documented = dict(re.findall(r"^\| `(\w+)` \| `([^`]*)` \|", m.group(1), re.M))
    actual = config_defaults()
    problems = [f"{k} is not documented" for k in actual if k not in documented]
    problems += [f"{k} is documented but is not a TRPOConfig field" for k in documented if k not in actual]
    problems += [f"{k}: the table says {documented[k]}, the code {actual[k]}"
                 for k in actual if k in documented and documented[k] != actual[k]]
    if problems:
        raise ValueError(f"docs: {page}'s configuration table disagrees with TRPOConfig: " + "; ".join(problems))


# ------------------------------------------------------------------ MkDocs hooks
def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    markdown = OUTPUT.sub(lambda m: command_output(m.group(1)), markdown)
    markdown = OPENAPI.sub(lambda m: openapi_markdown(m.group(1)), markdown)
    check_config_table(markdown, page.file.src_uri)
    if page.meta.get("math"):
        markdown = math_to_mathml(markdown)
    return markdown


def on_files(files, config, **kwargs):
    from mkdocs.structure.files import File

    for rel in FIGURE_DIRS:
        folder = os.path.join(ROOT, rel)
        for name in sorted(os.listdir(folder)):
            if name.endswith(".png"):
                files.append(File.generated(config, f"benchmarks/figures/{name}", abs_src_path=os.path.join(folder, name)))
    return files
