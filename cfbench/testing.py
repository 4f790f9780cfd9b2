"""Conformance kit for plugin authors, in the spirit of scikit-learn's ``check_estimator``.

    from cfbench.testing import check_solver
    check_solver(MySolver)                   # every problem it declares, tiny scenarios
    check_solver(MySolver, problem="sum-ee", scenario="5ap-10ue")

Each check raises ``AssertionError`` with a message saying what the contract
expects. The checks use the problem's own ``check_decision`` and ``evaluate``,
exactly as the runner does.

The solver is first run the way ``cfbench run`` runs it
(:func:`cfbench.runner.solve_all`: its own worker process, set-up and an untimed
warm-up there, one instance per call, a time limit, the decision sent back between
processes), so a solver that hangs, kills its process or returns something that
cannot be sent fails the kit with the runner's own status (``timeout``, ``error``)
instead of only in a real run; only then is it run in this process for the
finer checks.
"""

from __future__ import annotations

import numpy as np

from cfbench.api import SOLVER_KINDS, Solution, Solver
from cfbench.registry import build_registry
from cfbench.runner import solve_all


def _decision(out):
    return out.decision if isinstance(out, Solution) else out


def check_solver(solver_cls: type, problem: str | None = None, scenario: str | None = None,
                 n_instances: int = 3, seed: int = 12345, options: dict | None = None,
                 check_batch_consistency: bool = True, timeout_s: float = 60.0) -> None:
    """Check ``solver_cls`` against the solver contract on every problem it declares.

    Checks: class attributes; every instance solved in an isolated worker as the
    runner does (status ``ok`` within ``timeout_s`` per instance, decision sent back
    intact and equal to the in-process one); ``setup`` then ``solve`` on a batch and on single
    instances; decisions pass the problem's declared fields (shape, finite,
    bounds); the evaluator scores them with a finite objective; output is
    reproducible (same instances -> same decision); and, unless
    ``check_batch_consistency`` is false, solving a batch equals solving its
    instances one by one (the runner solves one instance at a time).
    """
    assert isinstance(solver_cls, type) and issubclass(solver_cls, Solver), "a solver must subclass cfbench.Solver"
    assert isinstance(getattr(solver_cls, "name", None), str) and solver_cls.name, "set a non-empty class attribute `name`"
    assert getattr(solver_cls, "kind", None) in SOLVER_KINDS, f"`kind` must be one of {SOLVER_KINDS}"
    assert isinstance(solver_cls.problems, tuple) and solver_cls.problems, "`problems` must be a non-empty tuple"
    registry = build_registry()
    names = [problem] if problem else list(solver_cls.problems)
    for name in names:
        assert name in solver_cls.problems, f"{solver_cls.name!r} does not declare problem {name!r}"
        prob = registry.problem(name)
        scen = scenario or ("tiny" if "tiny" in prob.scenarios else prob.default_scenario)
        instances = prob.sample(scen, n_instances, seed)
        where = f"{solver_cls.name} on {name}/{scen}"
        isolated = solve_all(prob, scen, solver_cls, instances, options=options, timeout_s=timeout_s,
                             setup_timeout_s=max(120.0, 10.0 * timeout_s))
        for i, outcome in enumerate(isolated):
            assert outcome.status == "ok", (
                f"{where}: instance {i} in an isolated worker (as `cfbench run` solves it): "
                f"{outcome.status}: {outcome.message}")
        solver = solver_cls(**(options or {}))
        solver.setup(prob, scen)
        batch = _decision(solver.solve(instances))
        reason = prob.check_decision(instances, batch)
        assert reason is None, f"{where}: invalid decision: {reason}"
        for i, outcome in enumerate(isolated):
            for f in prob.decision_fields(scen):
                np.testing.assert_allclose(
                    np.asarray(outcome.decision[f.name], float)[0], np.asarray(batch[f.name], float)[i],
                    rtol=1e-5, atol=1e-9,
                    err_msg=f"{where}: instance {i}: field {f.name!r} from the isolated worker differs from "
                            "the in-process batch",
                )
        score = prob.evaluate(instances, batch)
        assert np.all(np.isfinite(score.objective)), f"{solver_cls.name} on {name}/{scen}: non-finite objective"
        again = _decision(solver.solve(instances))
        for f in prob.decision_fields(scen):
            np.testing.assert_allclose(
                np.asarray(again[f.name], float), np.asarray(batch[f.name], float), rtol=1e-6, atol=1e-12,
                err_msg=f"{solver_cls.name} on {name}/{scen}: field {f.name!r} differs between two identical calls",
            )
        if check_batch_consistency:
            for i in range(n_instances):
                single = _decision(solver.solve(instances[i]))
                for f in prob.decision_fields(scen):
                    np.testing.assert_allclose(
                        np.asarray(single[f.name], float)[0], np.asarray(batch[f.name], float)[i],
                        rtol=1e-5, atol=1e-9,
                        err_msg=f"{solver_cls.name} on {name}/{scen}: instance {i} solved alone differs from the batch",
                    )
