"""The objects every problem and solver speak: scenarios, instances, decisions, scores.

Data flows one way::

    scenario -> Problem.sample -> Instances -> Solver.solve -> Decision
             -> Problem.evaluate -> Score -> result rows

A *decision* is a plain ``dict`` mapping field names to arrays whose first axis
is the instance axis. Each problem declares its fields with
:class:`DecisionField` (name, per-instance shape, bounds), so the runner can
reject malformed output generically: a K x L power matrix, a power vector,
user and device powers, powers plus a binary association, clusters plus UL and
DL powers are all just different field lists.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

#: Solver kinds, in the order the comparison table groups them.
SOLVER_KINDS = ("baseline", "iterative", "learned", "reference")

Decision = dict  # dict[str, np.ndarray], first axis = instance


class CfbenchError(Exception):
    """A user-facing error: printed as one line by the CLI, exit status 2."""


class OptionError(CfbenchError, ValueError):
    """An option that is not declared, or a value that its declaration does not accept."""


def _parse_bool(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.strip().lower()]
    raise ValueError(value)


def _parse_int(value: Any) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise ValueError(value)


def _parse_float(value: Any) -> float:
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, str):
        return float(value.strip())
    raise ValueError(value)


def _parse_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise ValueError(value)


_BOOL_WORDS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
#: the option types, each with its parser (strings from the command line or Python values)
#: and the words an error uses for it
_OPTION_TYPES = {int: (_parse_int, "an int"), float: (_parse_float, "a float"),
                 bool: (_parse_bool, "a bool (true, false, 1, 0, yes, no)"), str: (_parse_str, "a str")}


@dataclass(frozen=True)
class Option:
    """One option a solver reads (``cfbench run --set SOLVER:KEY=VALUE``) or its ``train``
    reads (``cfbench train --set KEY=VALUE``): name, type (int, float, bool or str),
    default, a one-line help and, for a str, the values allowed (``choices``).

    A default of ``None`` means "not set" (the solver then decides, e.g. the shipped
    weights); ``None`` is accepted as a value only for such an option."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.type not in _OPTION_TYPES:
            raise TypeError(f"option {self.name!r}: type must be int, float, bool or str, got {self.type!r}")

    @property
    def type_name(self) -> str:
        return self.type.__name__

    def parse(self, value: Any, owner: str) -> Any:
        """``value`` as this option's type; :class:`OptionError` naming the option, the
        value and what is valid otherwise. ``owner`` says whose option it is."""
        if value is None and self.default is None:
            return None
        parse, words = _OPTION_TYPES[self.type]
        try:
            typed = parse(value)
        except (TypeError, ValueError):
            raise OptionError(f"option {self.name!r} of {owner} must be {words}, got {value!r}") from None
        if self.choices is not None and typed not in self.choices:
            raise OptionError(f"option {self.name!r} of {owner} must be one of {', '.join(self.choices)}, "
                              f"got {value!r}")
        return typed


def parse_options(spec: Sequence[Option], given: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """Every option of ``spec``: the typed value given, else the default. A key that
    ``spec`` does not declare, or a value its option does not accept, is an
    :class:`OptionError` naming it and what is valid."""
    declared = {o.name: o for o in spec}
    for key in given:
        if key not in declared:
            raise OptionError(f"unknown option {key!r} of {owner}; valid: {', '.join(declared) or '(none)'}")
    return {o.name: o.parse(given[o.name], owner) if o.name in given else o.default for o in spec}


@dataclass(frozen=True)
class DecisionField:
    """One named part of a decision.

    ``shape`` is the per-instance shape (the batch axis is prepended).
    ``lower`` / ``upper`` are scalars or the name of an instance array that
    broadcasts against ``shape`` (e.g. a per-terminal maximum power).
    ``binary`` fields must hold only 0 and 1 (e.g. an AP-UE association).
    """

    name: str
    shape: tuple[int, ...]
    lower: float | str | None = 0.0
    upper: float | str | None = None
    binary: bool = False
    unit: str = ""
    description: str = ""

    def bound(self, which: str, instances: "Instances") -> np.ndarray | float | None:
        value = self.lower if which == "lower" else self.upper
        if isinstance(value, str):
            arr = np.asarray(instances.arrays[value], dtype=float)
            return arr.reshape(arr.shape + (1,) * (1 + len(self.shape) - arr.ndim))
        return value


@dataclass
class Instances:
    """A batch of problem instances: named arrays sharing a leading instance axis.

    ``index`` holds each instance's position in its seeded stream, so
    ``(problem, scenario, seed, index)`` identifies an instance on any machine.
    """

    problem: str
    scenario: str
    seed: int
    index: np.ndarray
    arrays: dict[str, np.ndarray]
    params: Any = None  # the scenario's parameter dataclass

    def __post_init__(self) -> None:
        self.index = np.asarray(self.index, dtype=np.int64)
        n = len(self.index)
        for name, arr in self.arrays.items():
            if np.shape(arr)[:1] != (n,):
                raise ValueError(f"instance array {name!r} has leading size {np.shape(arr)[:1]}, expected {n}")

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, key) -> "Instances":
        if isinstance(key, (int, np.integer)):
            key = [int(key)]
        return dataclasses.replace(
            self, index=self.index[key], arrays={k: v[key] for k, v in self.arrays.items()}
        )

    def __getattr__(self, name: str) -> np.ndarray:
        arrays = self.__dict__.get("arrays")
        if arrays is not None and name in arrays:
            return arrays[name]
        raise AttributeError(name)


@dataclass
class Score:
    """What the judge says about a batch of decisions (all arrays have length n).

    ``violation`` maps each constraint name to its non-negative violation
    (0 means satisfied) in the constraint's own unit; ``metrics`` holds the
    extra per-instance quantities the papers plot: shape (n,) for a scalar per
    instance, (n, K) for one value per terminal (stored as a list per row).
    """

    objective: np.ndarray
    violation: dict[str, np.ndarray]
    feasible: np.ndarray
    metrics: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def max_violation(self) -> np.ndarray:
        if not self.violation:
            return np.zeros_like(self.objective, dtype=float)
        return np.max(np.stack([np.asarray(v, float) for v in self.violation.values()]), axis=0)


@dataclass
class Solution:
    """Optional richer return value of :meth:`Solver.solve`.

    ``iterations`` (per instance) and ``trace`` (per instance, the solver's own
    objective after each iteration) are recorded in the results; the objective
    in the table always comes from the problem's evaluator.
    """

    decision: Decision
    iterations: np.ndarray | None = None
    trace: list[list[float]] | None = None


class Problem:
    """A problem family. Subclasses set the class attributes and implement
    :meth:`scenario_params`, :meth:`decision_fields`, :meth:`sample_one` and
    :meth:`evaluate`.
    """

    name: ClassVar[str]
    title: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    #: objective sense; every problem in the suite maximises
    sense: ClassVar[str] = "max"
    objective_unit: ClassVar[str] = ""
    #: named scenarios -> parameter dataclass instances
    scenarios: ClassVar[Mapping[str, Any]]
    default_scenario: ClassVar[str]
    #: the paper's iterative method, the reference of the speed-up column
    paper_iterative_solver: ClassVar[str | None] = None
    #: ``Score.metrics`` whose mean over valid rows the comparison table shows
    table_metrics: ClassVar[tuple[str, ...]] = ()

    def scenario_params(self, scenario: str) -> Any:
        try:
            return self.scenarios[scenario]
        except KeyError:
            raise CfbenchError(
                f"unknown scenario {scenario!r} for problem {self.name!r}; "
                f"valid: {', '.join(self.scenarios)}"
            ) from None

    def decision_fields(self, scenario: str) -> Sequence[DecisionField]:
        raise NotImplementedError

    def sample_one(self, params: Any, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw one instance (arrays without the batch axis) from ``rng``."""
        raise NotImplementedError

    def sample(self, scenario: str, n: int, seed: int = 0, start: int = 0) -> Instances:
        """``n`` instances with stream indices ``start .. start + n - 1``; instance ``i`` is
        drawn from ``PCG64(SeedSequence([seed, i]))``, so any prefix of a batch is the
        smaller batch and any slice of a stream can be drawn alone, on every machine."""
        params = self.scenario_params(scenario)
        if n < 1:
            raise CfbenchError(f"number of instances must be >= 1, got {n}")
        if start < 0:
            raise CfbenchError(f"first instance index must be >= 0, got {start}")
        index = np.arange(start, start + n)
        draws = [
            self.sample_one(params, np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, int(i)]))))
            for i in index
        ]
        arrays = {k: np.stack([d[k] for d in draws]) for k in draws[0]}
        return Instances(self.name, scenario, seed, index, arrays, params)

    def evaluate(self, instances: Instances, decision: Decision) -> Score:
        raise NotImplementedError

    def report_plots(self, rows: Any, manifest: Mapping[str, Any]) -> list[tuple[str, Any]]:
        """The paper's own plot types for ``cfbench report DIR --html FILE`` (optional).

        ``rows`` is the run's ``results.parquet`` as a DataFrame, solvers in the
        comparison table's rank order (so ``cfbench.report_html.solver_colors`` of
        their order gives the colours of the generic plots), ``manifest`` its
        ``manifest.json``. Return ``(title, figure)`` pairs, each figure a
        ``matplotlib.figure.Figure`` (import matplotlib inside this method: it is the
        optional ``report`` extra). The generic plots (objective CDFs, latency,
        feasibility) are drawn for every problem; the default adds none.
        """
        return []

    # -- generic validation used by the runner -------------------------------------
    def check_decision(self, instances: Instances, decision: Any, atol: float = 1e-9) -> str | None:
        """Return ``None`` if ``decision`` fits the declared fields, else a reason."""
        n = len(instances)
        fields = self.decision_fields(instances.scenario)
        expected = {f.name: ((n, *f.shape), "") for f in fields}
        values, reason = read_decision_fields(
            decision, expected, f"a {self.name} decision has " + ", ".join(
                f"{f.name!r} {(n, *f.shape)}" for f in fields))
        if reason:
            return reason
        for f in fields:
            value = values[f.name]
            if f.binary and not np.all((value == 0) | (value == 1)):
                return f"field {f.name!r} must be binary (0 or 1)"
            lo, hi = f.bound("lower", instances), f.bound("upper", instances)
            if lo is not None and np.any(value < np.asarray(lo) - atol * (1 + np.abs(lo))):
                return f"field {f.name!r} below its lower bound"
            if hi is not None and np.any(value > np.asarray(hi) + atol * (1 + np.abs(hi))):
                return f"field {f.name!r} above its upper bound"
        return None


class Solver:
    """A method. Subclasses set ``name``, ``kind``, ``problems`` and implement
    :meth:`solve`. The harness owns timing, time limits and scoring (as in
    benchopt): ``solve`` only maps instances to decisions.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    problems: ClassVar[tuple[str, ...]]
    description: ClassVar[str] = ""
    #: True if ``solve`` handles a batch of instances in one vectorised pass (numpy, a network's
    #: forward pass) rather than one after the other: ``cfbench run --batch N`` then also times
    #: calls on N instances and reports that time per instance beside the one-at-a-time latency
    #: (whether batching pays depends on the machine: measure it, do not assume it)
    solves_batches: ClassVar[bool] = False
    #: the options ``solve`` and ``setup`` read from ``self.options`` (``cfbench list --solver NAME``)
    options_spec: ClassVar[tuple[Option, ...]] = ()
    #: the options ``train`` reads, for solvers that have one (``cfbench train --set KEY=VALUE``)
    training_options_spec: ClassVar[tuple[Option, ...]] = ()

    def __init__(self, **options: Any) -> None:
        #: every declared option, typed: the value given, else its default
        self.options = self.parse_options(options)

    @classmethod
    def parse_options(cls, given: Mapping[str, Any]) -> dict[str, Any]:
        """``given`` (``--set`` strings or Python values) checked against ``options_spec``,
        typed, with every other declared option at its default."""
        return parse_options(cls.options_spec, given, f"solver {getattr(cls, 'name', cls.__name__)!r}")

    @classmethod
    def parse_training_options(cls, given: Mapping[str, Any]) -> dict[str, Any]:
        """``given`` checked against ``training_options_spec``, typed, defaults filled in."""
        return parse_options(cls.training_options_spec, given, f"{getattr(cls, 'name', cls.__name__)} training")

    @classmethod
    def check_training(cls, problem: Problem, scenarios: Sequence[str], cfg: Mapping[str, Any]) -> None:
        """Raise :class:`CfbenchError` (one line naming the value and what is valid) if ``train``
        cannot train with the training options ``cfg`` (every declared one, typed): e.g. too few
        samples for one training batch and one validation instance. Called by ``cfbench train``
        before any work; trainable solvers override it."""

    @classmethod
    def artifacts(cls, scenario: str, options: Mapping[str, Any]) -> dict[str, Path]:
        """Files whose content, with the options, fixes this solver's decisions on
        ``scenario`` (trained weights), by name. ``cfbench run`` records each one's SHA-256 in
        the run's manifest, so that a run says which weights produced it, and refuses to
        ``--resume`` a run with other ones. ``options``: every declared option, typed. Raise
        :class:`CfbenchError` where no file fits (checked before any work). Solvers without
        such files keep this default."""
        return {}

    def setup(self, problem: Problem, scenario: str) -> None:
        """Called once per run before any solve (load weights, build DPP problems)."""
        self.problem = problem
        self.scenario = scenario

    def solve(self, instances: Instances) -> Decision | Solution:
        raise NotImplementedError

    def supports(self, problem: str) -> bool:
        return problem in self.problems


def read_decision_fields(decision: Any, expected: Mapping[str, tuple[tuple[int, ...], str]],
                         fields_hint: str) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """The fields of a decision as float arrays, or the first reason they are malformed.

    ``expected`` maps each field name to its full shape (instance axis first) and a
    description of its axes, e.g. ``"(instances, M APs, T UEs)"``; ``fields_hint`` says
    what a decision of the problem holds (it ends the message for a missing field).
    Checked in order: a mapping, every field present, numeric, of the expected shape,
    finite (the first NaN or inf named by its index). Problems then check their own
    rules (bounds, binary entries) on the returned arrays, naming the bad entry with
    :func:`describe_entry`."""
    if not isinstance(decision, Mapping):
        names = ", ".join(repr(name) for name in expected)
        return None, f"decision must be a mapping with fields {names}, got {type(decision).__name__}"
    values = {}
    for name, (shape, axes) in expected.items():
        if name not in decision:
            return None, f"missing decision field {name!r}; {fields_hint}"
        try:
            value = np.asarray(decision[name], dtype=float)
        except (TypeError, ValueError):
            return None, f"field {name!r} is not numeric"
        if value.shape != tuple(shape):
            return None, f"field {name!r} has shape {value.shape}, expected {tuple(shape)}" + (f" {axes}" if axes else "")
        bad = ~np.isfinite(value)
        if bad.any():
            return None, f"field {name!r} has NaN or inf (at index {tuple(int(i) for i in np.argwhere(bad)[0])})"
        values[name] = value
    return values, None


def describe_entry(mask: np.ndarray, value: np.ndarray, axes: Sequence[str]) -> str:
    """``"instance 0, AP 2, UE 5 has 0.5"`` for the first True entry of ``mask``; ``axes``
    names the axes after the instance axis (``("AP", "UE")``)."""
    index = tuple(int(i) for i in np.argwhere(mask)[0])
    where = ", ".join(f"{name} {i}" for name, i in zip(("instance", *axes), index))
    return f"{where} has {value[index]:.6g}"


def instance_rng(instances: Instances, i: int, stream: int) -> np.random.Generator:
    """A reproducible generator for randomised solvers, keyed on the instance
    identity and a solver-specific ``stream`` number."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([instances.seed, int(instances.index[i]), stream])))
