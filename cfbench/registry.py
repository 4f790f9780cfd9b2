"""Plugin discovery: entry points -> pluggy -> named problems and solvers.

Solver names are scoped by problem, as in benchopt: ``sca`` of ``sum-ee`` and
``sca`` of ``urllc`` are different solvers, and ``--solvers sca`` picks the one
that supports the chosen problem. Two solvers clash only when they share a
name and a problem. Failures are contained per plugin: a plugin that fails to
import, whose hook raises, or that repeats a name already taken is reported in
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
    solvers: list[Provided] = field(default_factory=list)  # names are unique per problem
    warnings: list[str] = field(default_factory=list)

    # -- lookup with one-line errors ------------------------------------------------
    def problem(self, name: str) -> Problem:
        if name not in self.problems:
            raise CfbenchError(f"unknown problem {name!r}; valid: {', '.join(sorted(self.problems)) or '(none)'}")
        return self.problems[name].cls()

    def solvers_for(self, problem: str) -> list[str]:
        return sorted(p.cls.name for p in self.solvers if problem in p.cls.problems)

    def solver_names(self) -> set[str]:
        return {p.cls.name for p in self.solvers}

    def solver(self, problem: str, name: str) -> Provided:
        """The solver called ``name`` that supports ``problem``."""
        for p in self.solvers:
            if p.cls.name == name and problem in p.cls.problems:
                return p
        raise CfbenchError(f"unknown solver {name!r} for problem {problem!r}; "
                           f"valid: {', '.join(self.solvers_for(problem)) or '(none)'}")

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
                what = (f"solver {n!r} does not support problem {problem!r}" if n in self.solver_names()
                        else f"unknown solver {n!r}")
                raise CfbenchError(f"{what}; valid for {problem!r}: all, {', '.join(valid)}")
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
    # a distribution's name is read from its metadata file on every ``.name``: read it once
    names: dict[int, str] = {}

    def dist_name(ep) -> str:
        if ep.dist is None:
            return "?"
        if id(ep.dist) not in names:
            names[id(ep.dist)] = ep.dist.name
        return names[id(ep.dist)]

    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    eps = sorted(found, key=lambda e: (dist_name(e) != "cfbench", e.name))
    for ep in eps:
        dist = dist_name(ep)
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

    for hook, what, check in (
        (pm.hook.cfbench_problems, "problem", _check_problem),
        (pm.hook.cfbench_solvers, "solver", _check_solver),
    ):
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
                first = _clash(reg, what, cls)
                if first is not None:
                    if first.cls is not cls:
                        reg.warnings.append(
                            f"plugin {plugin!r}: {what} name {cls.name!r} already provided by plugin "
                            f"{first.plugin!r}{_shared_problems(first.cls, cls)}; ignored")
                    continue
                provided = Provided(cls, plugin, dist_of.get(plugin, "?"))
                if what == "problem":
                    reg.problems[cls.name] = provided
                else:
                    reg.solvers.append(provided)
    return reg


def _clash(reg: Registry, what: str, cls) -> Provided | None:
    """The registered entry ``cls`` collides with: same problem name, or same solver
    name with a problem in common."""
    if what == "problem":
        return reg.problems.get(cls.name)
    for p in reg.solvers:
        if p.cls.name == cls.name and (p.cls is cls or set(p.cls.problems) & set(cls.problems)):
            return p
    return None


def _shared_problems(a, b) -> str:
    shared = sorted(set(getattr(a, "problems", ())) & set(getattr(b, "problems", ())))
    return f" for {', '.join(shared)}" if shared else ""
