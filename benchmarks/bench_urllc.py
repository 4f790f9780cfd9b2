"""asv benchmarks for ``urllc``: batch evaluation, SCA, L-BFGS-B and U-ESTPANet latency.

Run: ``asv run --python=same --quick --bench urllc``. Solver benchmarks pin one
thread, as the runner does by default; U-ESTPANet runs under
``torch.inference_mode()`` with ``torch.get_num_threads() == 1`` (recorded by
``track_torch_threads``). The paper's figures are 4.23 s (K = 10) and 14.21 s
(K = 60) for 20 SCA iterations and 0.36 ms per U-ESTPANet forward pass.
"""

import numpy as np

from cfbench.registry import build_registry

from .common import pinned_solver


def _problem():
    return build_registry().problem("urllc")


class Evaluate:
    params = (["k10", "k60", "stress-k60"], [64, 1024])
    param_names = ["scenario", "n_instances"]
    timeout = 300

    def setup(self, scenario, n):
        self.problem = _problem()
        # sampling draws the (M, K, L) channel estimates too; evaluation needs only beta
        base = self.problem.sample(scenario, 64, seed=0)
        self.instances = base[np.arange(n) % 64]
        p = self.instances.params
        rng = np.random.default_rng(0)
        self.decision = {"power_w": np.exp(rng.uniform(np.log(p.p_min_w), np.log(p.p_max_w), (n, p.n_terminals)))}

    def time_evaluate(self, scenario, n):
        self.problem.evaluate(self.instances, self.decision)

    def peakmem_evaluate(self, scenario, n):
        self.problem.evaluate(self.instances, self.decision)


class SolverLatency:
    """One solve of one instance after setup and a warm-up, as the runner times it."""

    params = (["k10", "k60", "stress-k60"], ["estpanet", "sca", "lbfgs", "best-uniform"])
    param_names = ["scenario", "solver"]
    timeout = 600
    number = 1
    repeat = (1, 3, 60.0)

    def setup(self, scenario, solver):
        self.problem, self.solver = pinned_solver("urllc", solver, scenario)
        self.instance = self.problem.sample(scenario, 1, seed=5)
        self.solver.solve(self.problem.sample(scenario, 1, seed=6))

    def time_solve(self, scenario, solver):
        self.solver.solve(self.instance)

    def track_torch_threads(self, scenario, solver):
        import sys

        torch = sys.modules.get("torch")
        return torch.get_num_threads() if torch is not None else 0


class EstpanetBatch:
    """U-ESTPANet on a batch of 64 ``k50`` instances (the fast-paths issue's 1 ms per instance),
    each CNN width and precision, one thread, ``torch.inference_mode()`` (inside ``solve``);
    ``track_mean_omega`` is the evaluator's mean Omega of that batch, so a variant that gets
    faster by getting worse shows up too."""

    params = (["paper", "narrow"], ["float32", "bfloat16"])
    param_names = ["cnn", "precision"]
    timeout = 300

    def setup(self, cnn, precision):
        self.problem, self.solver = pinned_solver("urllc", "estpanet", "k50", cnn=cnn, precision=precision)
        self.instances = self.problem.sample("k50", 64, seed=3)
        self.solver.solve(self.instances[:8])

    def time_solve_batch_of_64(self, cnn, precision):
        self.solver.solve(self.instances)

    def track_mean_omega(self, cnn, precision):
        return float(self.problem.evaluate(self.instances, self.solver.solve(self.instances)).objective.mean())

    track_mean_omega.unit = "Omega"
