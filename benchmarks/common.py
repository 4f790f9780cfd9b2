"""What the benchmark suites share: a solver set up as the runner times it."""

from cfbench.registry import build_registry
from cfbench.runner import limit_threads


def pinned_solver(problem_name: str, solver_name: str, scenario: str, **options):
    """The problem and solver ``solver_name`` (with ``options``) set up on ``scenario``, on one
    thread: the thread pools are pinned before setup and again after it, since a learned
    solver's setup imports torch, whose intra-op pool starts afterwards."""
    limit_threads(1)
    registry = build_registry()
    problem = registry.problem(problem_name)
    solver = registry.solver(problem_name, solver_name).cls(**options)
    solver.setup(problem, scenario)
    limit_threads(1)
    return problem, solver
