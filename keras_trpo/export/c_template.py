"""The C export's template files (``keras_trpo/export/c``) and the two text operations that turn
them into one policy's files: resolving their ``#if KT_...`` conditions and renaming.

The templates are real C: ``c/policy.c`` (the runtime) and ``c/policy.h`` (the API), written for
the name ``policy``. What varies between policies is chosen by ``#if`` over ``KT_`` flags (0 or
1, all defined: ``c_source.config_flags``), so a compiler and a linter read the templates as
they are (with ``c/example/``'s data, or any plan's from ``c_source.template_data``). For an
export, ``resolve`` keeps the branches the policy takes and drops the directives, so the files
written hold only the code that policy runs; other conditionals (``__cplusplus``, the include
guard) are left to the compiler.
"""
from __future__ import annotations

import re
from importlib import resources
from typing import Optional

from keras_trpo.export.errors import ExportError

TEMPLATE_NAME = "policy"  # the name the templates are written for
_DIRECTIVE = re.compile(r"^\s*#\s*(if|ifdef|ifndef|elif|else|endif)\b(.*)$")
_FLAG = re.compile(r"\bKT_[A-Z0-9_]+\b")
_CONDITION_TOKENS = re.compile(r"^(\s|\(|\)|and|or|not|[01])*$")


def template(file: str) -> str:
    """The text of a template file in ``keras_trpo/export/c``."""
    return (resources.files(__package__) / "c" / file).read_text()


def _condition(kind: str, expression: str, flags: dict[str, bool]) -> Optional[bool]:
    """The value of a directive's condition over ``KT_`` flags, or None if it names none (a
    condition for the compiler, such as ``__cplusplus``, written out as it is)."""
    expression = re.sub(r"/\*.*?\*/|//.*$", "", expression).strip()
    names = _FLAG.findall(expression)
    if not names:
        return None
    if kind not in ("if", "elif"):
        raise ExportError(f"C template: use '#if {names[0]}', not '#{kind}' (every KT_ flag is defined, 0 or 1)")
    unknown = [n for n in names if n not in flags]
    if unknown:
        raise ExportError(f"C template: unknown condition {unknown[0]}")
    python = _FLAG.sub(lambda m: str(int(flags[m.group(0)])), expression)
    python = python.replace("&&", " and ").replace("||", " or ").replace("!", " not ")
    if not _CONDITION_TOKENS.match(python):
        raise ExportError(f"C template: condition {expression!r} mixes KT_ flags with other terms")
    # Only 0, 1, and, or, not and parentheses are left (checked above): a boolean expression.
    return bool(eval(python, {"__builtins__": {}}, {}))  # noqa: S307


def resolve(text: str, flags: dict[str, bool]) -> str:
    """``text`` with every ``#if`` / ``#elif`` / ``#else`` / ``#endif`` over ``KT_`` flags
    applied: the lines of the branches taken, without the directives. Other conditionals are
    written out as they are (the templates put no directive inside a comment)."""
    out: list[str] = []
    stack: list[list] = []  # per open conditional: [over KT_ flags, in the branch taken now, a branch taken]

    def emitting() -> bool:
        return all(frame[1] for frame in stack if frame[0])

    for number, line in enumerate(text.splitlines(keepends=True), 1):
        m = _DIRECTIVE.match(line)
        if not m:
            if emitting():
                out.append(line)
            continue
        kind, rest = m.groups()
        if kind in ("if", "ifdef", "ifndef"):
            value = _condition(kind, rest, flags)
            if value is None and emitting():
                out.append(line)
            stack.append([value is not None, bool(value), bool(value)])
            continue
        if not stack:
            raise ExportError(f"C template line {number}: #{kind} without #if")
        frame = stack[-1]
        if kind == "elif":
            value = _condition(kind, rest, flags)
            if (value is not None) != frame[0]:
                raise ExportError(f"C template line {number}: #elif mixes KT_ flags with other conditions")
            if frame[0]:
                frame[1] = not frame[2] and bool(value)
                frame[2] = frame[2] or bool(value)
                continue
        elif kind == "else" and frame[0]:
            frame[1], frame[2] = not frame[2], True
            continue
        elif kind == "endif":
            stack.pop()
            if frame[0]:
                continue
        if emitting():
            out.append(line)
    if stack:
        raise ExportError("C template: #if without #endif")
    return "".join(out)


def rename(text: str, name: str) -> str:
    """The templates' ``policy_...`` / ``POLICY_...`` identifiers and ``policy.h`` / ``policy.c``
    file names with the export's name instead (a path such as ``c/policy.c`` names the template)."""
    text = re.sub(rf"(?<!/)\b{TEMPLATE_NAME}(?=_|\.h\b|\.c\b)", name, text)
    return re.sub(rf"\b{TEMPLATE_NAME.upper()}(?=_)", name.upper(), text)
