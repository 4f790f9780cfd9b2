"""asv benchmarks for ``uccf``: batch evaluation (MR closed forms), the closed-form max-min
solvers and the ELU-CosFormer per instance, and the mean min SE of the solvers (``track_``).

Run: ``asv run --python=same --quick --bench uccf``. Solvers run on one thread.
"""

import numpy as np

from cfbench.registry import build_registry
from cfbench.runner import limit_threads


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
        limit_threads(1)
        registry = build_registry()
        self.problem = registry.problem("uccf")
        self.solver = registry.solver("uccf", solver).cls()
        self.solver.setup(self.problem, scenario)
        limit_threads(1)
        self.instance = self.problem.sample(scenario, 1, seed=5)
        self.solver.solve(self.problem.sample(scenario, 1, seed=6))

    def time_solve(self, scenario, solver):
        self.solver.solve(self.instance)


class Quality:
    """Mean min SE (bit/s/Hz) and feasible share of a solver on 20 ``mr-k40`` instances (seed 0)."""

    params = (["cf-maxmin", "dcc-maxmin", "full-power", "elu-cosformer", "elu-cosformer-opt"],)
    param_names = ["solver"]
    timeout = 300
    unit = "bit/s/Hz"

    def setup(self, solver):
        limit_threads(1)
        registry = build_registry()
        problem = registry.problem("uccf")
        instances = problem.sample("mr-k40", 20, seed=0)
        s = registry.solver("uccf", solver).cls()
        s.setup(problem, "mr-k40")
        out = s.solve(instances)
        self.score = problem.evaluate(instances, out.decision if hasattr(out, "decision") else out)

    def track_mean_min_se(self, solver):
        return float(np.mean(self.score.objective))

    def track_feasible_share(self, solver):
        return float(np.mean(self.score.feasible))
