"""Heavy modules imported on first use, so that listing solvers stays fast.

``cfbench list`` imports every plugin module to read its solver classes; a plugin
that imports cvxpy (about a second) at its top would make every listing pay for
it. ``cp = lazy_import("cvxpy")`` at a module's top reads like the import and
imports cvxpy the first time an attribute (``cp.Variable``) is looked up, i.e.
when a solver is set up or solves, never when it is only listed.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for the module ``name`` and imports it at the first attribute lookup."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # copy, pickle and introspection must not trigger the import
            raise AttributeError(attr)
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        state = "imported" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r} ({state})>"


def lazy_import(name: str) -> Any:
    """A stand-in for ``import name`` that defers the import to the first use."""
    return LazyModule(name)
