"""asv benchmarks for ``sum-ee``: batch evaluation (the hot path), sampling, solver latency.

Run: ``asv run --python=same --quick`` (or ``asv run --python=same`` for stable figures).
Solver benchmarks pin one thread, as the runner does by default.
"""

import numpy as np

from cfbench.registry import build_registry

from .common import pinned_solver


def _problem():
    return build_registry().problem("sum-ee")


def _warm_solver(scenario, name, **options):
    """The problem and solver ``name`` (with ``options``) set up on ``scenario`` and warmed up on
    one instance (seed 6), on one thread, as the runner times a solve."""
    problem, solver = pinned_solver("sum-ee", name, scenario, **options)
    solver.solve(problem.sample(scenario, 1, seed=6))
    return problem, solver


class Evaluate:
    params = (["5ap-10ue", "15ap-15ue"], [64, 1024])
    param_names = ["scenario", "n_instances"]

    def setup(self, scenario, n):
        self.problem = _problem()
        self.instances = self.problem.sample(scenario, n, seed=0)
        p = self.instances.params
        rng = np.random.default_rng(0)
        self.decision = {"power_w": rng.uniform(0, p.ap_power_budget_w / p.n_ues, (n, p.n_ues, p.n_aps))}

    def time_evaluate(self, scenario, n):
        self.problem.evaluate(self.instances, self.decision)

    def peakmem_evaluate(self, scenario, n):
        self.problem.evaluate(self.instances, self.decision)


class Sample:
    params = (["5ap-10ue", "15ap-15ue"],)
    param_names = ["scenario"]

    def setup(self, scenario):
        self.problem = _problem()

    def time_sample_64(self, scenario):
        self.problem.sample(scenario, 64, seed=1)


class SolverLatency:
    """One solve of one instance after setup and a warm-up, as the runner times it."""

    params = (["5ap-10ue", "10ap-10ue", "15ap-15ue"], ["sca", "multistart-pg", "best-uniform"])
    param_names = ["scenario", "solver"]
    timeout = 300

    def setup(self, scenario, solver):
        self.problem, self.solver = _warm_solver(scenario, solver)
        self.instance = self.problem.sample(scenario, 1, seed=5)

    def time_solve(self, scenario, solver):
        self.solver.solve(self.instance)


class GnnInference:
    """The learned ``gnn`` (shipped weights): one instance, and one batch of 1024 in a single
    call (``solves_batches``), after setup and a warm-up, on one thread, with the network in
    float64 (the default) and in float32 (option ``precision``), eager and through
    ``torch.compile`` (option ``compile``; compiled in setup, a minute or two when not cached)."""

    params = (["5ap-10ue", "10ap-10ue", "15ap-15ue"], [1, 1024], ["float64", "float32"], [False, True])
    param_names = ["scenario", "n_instances", "precision", "compile"]
    timeout = 600

    def setup(self, scenario, n, precision, compile):
        self.problem, self.solver = _warm_solver(scenario, "gnn", precision=precision, compile=compile)
        self.instances = self.problem.sample(scenario, n, seed=5)

    def time_solve(self, scenario, n, precision, compile):
        self.solver.solve(self.instances)

    def peakmem_solve(self, scenario, n, precision, compile):
        self.solver.solve(self.instances)
