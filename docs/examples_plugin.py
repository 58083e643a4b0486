"""pytest plugin: runs the Python and shell examples of the docs site and the READMEs.

Used with pytest-markdown-docs (``pytest --markdown-docs -p examples_plugin FILES.md``, with docs/ on the
path; .ci/docs.sh does it), through its two documented hooks:

- ``pytest_markdown_docs_markdown_it``: the Markdown parser, with one rule added that decides, for each
  Python or shell fence, whether it runs. A fence whose first line is ``# Not run by the docs tests:
  REASON`` does not (``notest``); a shell fence becomes a Python call of ``run_shell`` on its text. A
  Python or shell fence the parser cannot see (indented into an admonition or a tab) is an error.
- ``pytest_markdown_docs_globals``: gives ``run_shell`` to those calls.

Each Markdown file runs in a temporary directory of its own, in which ``runs/cartpole/agent.keras`` and
``runs/cartpole/policy.onnx`` already exist (a CartPole agent trained for 2,048 steps, once per session),
so that pages can start from "a trained agent" without training one each.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON = {"python", "py", "python3"}
SHELL = {"bash", "sh", "shell", "console"}
NOT_RUN = re.compile(r"^\s*#\s*Not run by the docs tests:\s*(\S.*)$")
FENCE_LINE = re.compile(r"^[ \t]*(```|~~~)[ \t]*\{?\.?(python|py|python3|bash|sh|shell|console)\b", re.M)
SHELL_TIMEOUT = 600

_counts = {"run": 0, "not_run": 0}
_not_run: list[str] = []
_dirs: dict[Path, Path] = {}


class UnmarkedBlockError(Exception):
    pass


def _decide(state) -> None:
    """markdown-it core rule: mark each Python/shell fence as run or not run."""
    fences = [t for t in state.tokens if t.type == "fence"]
    seen = 0
    for token in fences:
        words = token.info.split()
        lang = words[0].lstrip("{.").rstrip("}") if words else ""
        if lang not in PYTHON | SHELL:
            continue
        seen += 1
        first = token.content.split("\n", 1)[0]
        reason = NOT_RUN.match(first)
        if reason:
            token.info = "python notest"
            _counts["not_run"] += 1
            _not_run.append(reason.group(1))
            continue
        if "notest" in words:
            raise UnmarkedBlockError(
                f"a fence marked notest at line {token.map[0] + 1} must say why in its first line: "
                "'# Not run by the docs tests: REASON'")
        _counts["run"] += 1
        if lang in SHELL:
            token.info = "python"
            token.content = f"run_shell({token.content!r})\n"
        else:
            token.info = "python"
    in_source = len(FENCE_LINE.findall(state.src))
    if in_source != seen:
        raise UnmarkedBlockError(
            f"{in_source} Python/shell fences in the text but {seen} seen by the parser: a fence indented into "
            "an admonition or a tab is neither run nor marked; move it out")


@pytest.hookimpl(tryfirst=True)
def pytest_markdown_docs_markdown_it():
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark")
    md.core.ruler.push("docs_examples_decide", _decide)
    return md


def run_shell(script: str) -> None:
    """Run a shell example with bash -euo pipefail in the page's directory; fail on a non-zero exit."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("MPLBACKEND", "Agg")
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, timeout=SHELL_TIMEOUT,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise AssertionError(f"the shell example exited with {done.returncode}:\n{script}")


def pytest_markdown_docs_globals():
    return {"run_shell": run_shell}


@pytest.fixture(scope="session")
def trained_cartpole(tmp_path_factory) -> Path:
    """runs/cartpole/agent.keras and policy.onnx, made once per session in-process."""
    import keras_trpo
    from keras_trpo import export

    out = tmp_path_factory.mktemp("artifacts") / "cartpole"
    out.mkdir()
    agent = keras_trpo.TRPO("CartPole-v1", seed=0)
    agent.fit(2048, verbose=0)
    agent.save(str(out / "agent.keras"))
    export.to_onnx(agent, str(out / "policy.onnx"))
    return out


@pytest.fixture(autouse=True)
def _page_directory(request, tmp_path_factory, monkeypatch):
    """Each Markdown file's examples run in one directory of their own, in file order."""
    path = Path(request.node.path)
    if path.suffix != ".md":
        yield
        return
    if path not in _dirs:
        d = tmp_path_factory.mktemp(path.stem)
        if "runs/cartpole/" in path.read_text(encoding="utf-8") and path.name != "getting-started.md":
            shutil.copytree(request.getfixturevalue("trained_cartpole"), d / "runs" / "cartpole")
        _dirs[path] = d
    monkeypatch.chdir(_dirs[path])
    monkeypatch.syspath_prepend(str(ROOT))
    yield


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    reasons: dict[str, int] = {}
    for r in _not_run:
        reasons[r] = reasons.get(r, 0) + 1
    terminalreporter.write_sep("-", "docs examples")
    terminalreporter.write_line(f"code blocks: {_counts['run']} run, {_counts['not_run']} marked not run")
    for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"  not run ({n}): {reason}")
