"""The whole plugin contract of cfbench.

A plugin is a module (or object) registered under the entry-point group
``cfbench``::

    [project.entry-points.cfbench]
    my_solvers = "my_package.cfbench_plugin"

and implementing one or both hooks below with ``@cfbench.hookimpl``. Built-in
problems and solvers are registered the same way, by cfbench's own
``pyproject.toml``.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("cfbench")
hookimpl = pluggy.HookimplMarker("cfbench")


@hookspec
def cfbench_problems() -> list[type]:
    """Return the :class:`cfbench.Problem` subclasses this plugin provides.

    Called once when the registry is built (``cfbench list``, ``cfbench run``).
    Each class needs a unique ``name``.
    """


@hookspec
def cfbench_solvers() -> list[type]:
    """Return the :class:`cfbench.Solver` subclasses this plugin provides.

    Called once when the registry is built. Each class needs a unique
    ``name``, a ``kind`` in ``cfbench.SOLVER_KINDS`` and a ``problems`` tuple
    naming the problems it can solve.
    """
