"""Plugin discovery: entry points -> pluggy -> named problems and solvers.

Failures are contained per plugin: a plugin that fails to import, whose hook
raises, or that repeats a name already taken is reported in
``Registry.warnings`` (one line each, naming the plugin) and the rest loads.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from typing import Iterable

import pluggy

from cfbench import hookspecs
from cfbench.api import SOLVER_KINDS, CfbenchError, Problem, Solver

ENTRY_POINT_GROUP = "cfbench"


@dataclass(frozen=True)
class Provided:
    cls: type
    plugin: str        # plugin (entry-point) name
    distribution: str  # distribution that declared the entry point


@dataclass
class Registry:
    problems: dict[str, Provided] = field(default_factory=dict)
    solvers: dict[str, Provided] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    # -- lookup with one-line errors ------------------------------------------------
    def problem(self, name: str) -> Problem:
        if name not in self.problems:
            raise CfbenchError(f"unknown problem {name!r}; valid: {', '.join(sorted(self.problems)) or '(none)'}")
        return self.problems[name].cls()

    def solvers_for(self, problem: str) -> list[str]:
        return sorted(n for n, p in self.solvers.items() if problem in p.cls.problems)

    def select_solvers(self, problem: str, spec: str) -> list[str]:
        valid = self.solvers_for(problem)
        if spec.strip() == "all":
            if not valid:
                raise CfbenchError(f"no solver supports problem {problem!r}")
            return valid
        names = [s.strip() for s in spec.split(",") if s.strip()]
        if not names:
            raise CfbenchError(f"empty solver list {spec!r}; valid: all, {', '.join(valid)}")
        for n in names:
            if n not in valid:
                why = "does not support" if n in self.solvers else "unknown solver"
                raise CfbenchError(
                    f"{why} {n!r}" + (f" for problem {problem!r}" if n in self.solvers else "")
                    + f"; valid for {problem!r}: all, {', '.join(valid)}"
                )
        return list(dict.fromkeys(names))


def _plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("cfbench")
    pm.add_hookspecs(hookspecs)
    return pm


def _check_problem(cls) -> str | None:
    if not (isinstance(cls, type) and issubclass(cls, Problem)):
        return f"{cls!r} is not a cfbench.Problem subclass"
    if not getattr(cls, "name", None):
        return f"problem class {cls.__name__} has no name"
    return None


def _check_solver(cls) -> str | None:
    if not (isinstance(cls, type) and issubclass(cls, Solver)):
        return f"{cls!r} is not a cfbench.Solver subclass"
    if not getattr(cls, "name", None):
        return f"solver class {cls.__name__} has no name"
    if getattr(cls, "kind", None) not in SOLVER_KINDS:
        return f"solver {cls.name!r} has kind {getattr(cls, 'kind', None)!r}; valid: {', '.join(SOLVER_KINDS)}"
    if not isinstance(getattr(cls, "problems", None), (tuple, list)):
        return f"solver {cls.name!r} must declare a tuple of problems"
    return None


def build_registry(extra_plugins: Iterable[tuple[str, object]] = ()) -> Registry:
    """Load every ``cfbench`` entry point, then ``extra_plugins`` (name, module) pairs."""
    reg = Registry()
    pm = _plugin_manager()
    dist_of: dict[str, str] = {}
    eps = sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.dist.name != "cfbench" if e.dist else True, e.name))
    for ep in eps:
        dist = ep.dist.name if ep.dist else "?"
        if pm.has_plugin(ep.name):
            reg.warnings.append(f"plugin {ep.name!r} from {dist} ignored: a plugin of that name is already loaded")
            continue
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:  # noqa: BLE001 - contained per plugin by design
            reg.warnings.append(f"plugin {ep.name!r} from {dist} failed to load: {type(exc).__name__}: {exc}")
            continue
        dist_of[ep.name] = dist
    for name, module in extra_plugins:
        pm.register(module, name=name)
        dist_of[name] = "(registered in code)"

    for hook, table, check in (
        (pm.hook.cfbench_problems, reg.problems, _check_problem),
        (pm.hook.cfbench_solvers, reg.solvers, _check_solver),
    ):
        what = "problem" if table is reg.problems else "solver"
        # get_hookimpls() lists plugins in registration order: built-ins first
        for impl in hook.get_hookimpls():
            plugin = impl.plugin_name
            try:
                classes = list(impl.function() or [])
            except Exception as exc:  # noqa: BLE001
                reg.warnings.append(f"plugin {plugin!r}: {hook.name} raised {type(exc).__name__}: {exc}")
                continue
            for cls in classes:
                problem = check(cls)
                if problem:
                    reg.warnings.append(f"plugin {plugin!r}: {problem}; ignored")
                    continue
                if cls.name in table:
                    first = table[cls.name]
                    if first.cls is cls:
                        continue
                    reg.warnings.append(
                        f"plugin {plugin!r}: {what} name {cls.name!r} already provided by plugin {first.plugin!r}; ignored"
                    )
                    continue
                table[cls.name] = Provided(cls, plugin, dist_of.get(plugin, "?"))
    return reg
