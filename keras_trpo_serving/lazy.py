"""Lazy package attributes (PEP 562): import a public name's module on first use, not at import. Standard
library only: keras_trpo, keras_trpo.export, keras_trpo.tune and keras_trpo_serving use it for their public names."""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_attributes(package: str, names: dict[str, str], namespace: dict[str, Any]
                    ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``names`` maps each public name to its module;
    a name, once imported, is stored in ``namespace`` (the package's globals)."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
