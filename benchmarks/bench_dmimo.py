"""asv benchmarks for ``dmimo``: batch evaluation at the default scenario, solver latency per
instance on ``small`` and ``m60-t30`` and one ``ao`` subproblem (24) on both. Solution quality
(objective, feasible rate, gap of every solver) is tracked in ``bench_quality.py``.

Run: ``asv run --python=same --quick --bench dmimo``. Solvers run on one thread.
"""

import numpy as np

from cfbench.physics.association import lsf_fraction_association
from cfbench.registry import build_registry
from cfbench.runner import limit_threads

from .common import pinned_solver


def _problem():
    return build_registry().problem("dmimo")


class Evaluate:
    """The judge on a batch of random decisions (random eta, the 95 % rule plus random links)."""

    params = (["m60-t30", "small"], [16, 256])
    param_names = ["scenario", "n_instances"]
    timeout = 300

    def setup(self, scenario, n):
        self.problem = _problem()
        base = self.problem.sample(scenario, 16, seed=0)
        self.instances = base[np.arange(n) % 16]
        rng = np.random.default_rng(0)
        d = lsf_fraction_association(self.instances.beta, 0.95)
        d = np.maximum(d, rng.random(d.shape) < 0.05)
        self.decision = {"eta": rng.uniform(0, 1, d.shape[::2]), "d": d.astype(float)}

    def time_evaluate(self, scenario, n):
        self.problem.evaluate(self.instances, self.decision)

    def peakmem_evaluate(self, scenario, n):
        self.problem.evaluate(self.instances, self.decision)


class SolverLatency:
    """One solve of one instance after setup and a warm-up, as the runner times it."""

    params = (["small", "m60-t30"], ["ao", "full-power", "all-serve"])
    param_names = ["scenario", "solver"]
    timeout = 300
    number = 1
    repeat = (1, 5, 60.0)

    def setup(self, scenario, solver):
        self.problem, self.solver = pinned_solver("dmimo", solver, scenario)
        self.instance = self.problem.sample(scenario, 1, seed=5)
        self.solver.solve(self.problem.sample(scenario, 1, seed=6))

    def time_solve(self, scenario, solver):
        self.solver.solve(self.instance)


class AssociationStep:
    """One subproblem (24) of ``ao`` (candidate links, Clarabel) from the 95 % rule after a power
    step, compiled and warmed up first: the step that dominated ``ao`` at paper scale."""

    params = (["small", "m60-t30"],)
    param_names = ["scenario"]
    timeout = 300
    number = 1
    repeat = (1, 10, 60.0)

    def setup(self, scenario):
        from cfbench.plugins import dmimo_ao

        limit_threads(1)
        problem = _problem()
        instances = problem.sample(scenario, 1, seed=0)
        self.model = model = dmimo_ao.InstanceModel(instances, 0)
        subproblems = dmimo_ao.Subproblems()
        self.d = dmimo_ao.initial_association("lsf95", model.beta)
        self.eta, self.perf, _ = dmimo_ao.power_step(subproblems, model, self.d, np.ones(model.n_ues), 1.0)
        self.links = dmimo_ao.CandidateLinks(model, self.d, dmimo_ao.DEFAULTS["candidates"])
        self.sub = subproblems.association(self.links, model.params.pre_log)
        self.time_step(scenario)

    def time_step(self, scenario):
        self.sub.step(self.model, self.eta, self.d, self.perf, 1.0, self.links)

