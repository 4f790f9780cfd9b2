"""asv benchmarks for ``uccf``: batch evaluation (MR closed forms), the closed-form max-min
solvers and the ELU-CosFormer per instance. Solution quality (objective, feasible rate, gap of
every solver) is tracked in ``bench_quality.py``.

Run: ``asv run --python=same --quick --bench uccf``. Solvers run on one thread.
"""

import numpy as np

from cfbench.registry import build_registry

from .common import pinned_solver


def _problem():
    return build_registry().problem("uccf")


class Evaluate:
    """The judge on a batch of decisions: DCC clusters, random powers."""

    params = (["mr-k20", "mr-k60"], [16, 256])
    param_names = ["scenario", "n_instances"]
    timeout = 300

    def setup(self, scenario, n):
        self.problem = _problem()
        base = self.problem.sample(scenario, 16, seed=0)
        self.instances = base[np.arange(n) % 16]
        p = self.instances.params
        rng = np.random.default_rng(0)
        self.decision = {"clusters": np.asarray(self.instances.dcc_clusters, float),
                         "ul_power_mw": rng.uniform(0, p.p_max_mw, (n, p.n_ues)),
                         "dl_power_mw": rng.uniform(0, p.rho_max_mw / 4, (n, p.n_ues))}

    def time_evaluate(self, scenario, n):
        self.problem.evaluate(self.instances, self.decision)

    def peakmem_evaluate(self, scenario, n):
        self.problem.evaluate(self.instances, self.decision)


class SolverLatency:
    """One solve of one instance after setup and a warm-up, as the runner times it."""

    params = (["mr-k20", "mr-k60"], ["cf-maxmin", "dcc-maxmin", "elu-cosformer", "elu-cosformer-opt"])
    param_names = ["scenario", "solver"]
    timeout = 300
    number = 1
    repeat = (1, 20, 30.0)

    def setup(self, scenario, solver):
        self.problem, self.solver = pinned_solver("uccf", solver, scenario)
        self.instance = self.problem.sample(scenario, 1, seed=5)
        self.solver.solve(self.problem.sample(scenario, 1, seed=6))

    def time_solve(self, scenario, solver):
        self.solver.solve(self.instance)

