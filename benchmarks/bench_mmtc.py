"""asv benchmarks for ``mmtc``: batch evaluation, OPC per drop, opc-fast per drop and per batch,
the GNN's inference per drop and per batch.

Run: ``asv run --python=same --quick --bench mmtc``. Solvers run on one thread (the GNN also on two).
The paper gives no timings, only O((K_u + K_d)^3.5) per Dinkelbach step;
``scripts/mmtc_opc_scaling.py`` fits the measured growth.
"""

import numpy as np

from cfbench.registry import build_registry
from cfbench.runner import limit_threads

from .common import pinned_solver


def _problem():
    return build_registry().problem("mmtc")


class Evaluate:
    params = (["ku2-kd10-m10-ms5", "scale-k32"], [64, 1024])
    param_names = ["scenario", "n_instances"]
    timeout = 300

    def setup(self, scenario, n):
        self.problem = _problem()
        base = self.problem.sample(scenario, 64, seed=0)
        self.instances = base[np.arange(n) % 64]
        p = self.instances.params
        rng = np.random.default_rng(0)
        self.decision = {"user_power_w": rng.uniform(0, p.user_max_power_w, (n, p.n_users)),
                         "device_power_w": rng.uniform(0, p.device_max_power_w, (n, p.n_devices))}

    def time_evaluate(self, scenario, n):
        self.problem.evaluate(self.instances, self.decision)

    def peakmem_evaluate(self, scenario, n):
        self.problem.evaluate(self.instances, self.decision)


class SolverLatency:
    """One solve of one drop after setup and a warm-up, as the runner times it."""

    params = (["tiny", "ku2-kd10-m10-ms5"], ["opc", "opc-fast", "g-fpc", "het-gnn"])
    param_names = ["scenario", "solver"]
    timeout = 600
    number = 1
    repeat = (1, 3, 60.0)

    def setup(self, scenario, solver):
        self.problem, self.solver = pinned_solver("mmtc", solver, scenario)
        self.instance = self.problem.sample(scenario, 1, seed=5)
        self.solver.solve(self.problem.sample(scenario, 1, seed=6))

    def time_solve(self, scenario, solver):
        self.solver.solve(self.instance)


class FastOpcBatch:
    """opc-fast on a batch (the label-generation path): time per batch of 64 drops."""

    params = (["tiny", "ku2-kd10-m10-ms5"],)
    param_names = ["scenario"]
    timeout = 600
    number = 1
    repeat = (1, 2, 120.0)

    def setup(self, scenario):
        self.problem, self.solver = pinned_solver("mmtc", "opc-fast", scenario)
        self.instances = self.problem.sample(scenario, 64, seed=7)

    def time_solve_batch_of_64(self, scenario):
        self.solver.solve(self.instances)


class GnnInference:
    """het-gnn under ``torch.inference_mode()`` on ``threads`` torch threads (the harness's
    ``--threads``): one drop and a batch of 256 drops. ``time_solve`` is the solver's ``solve``
    (inputs from the LSF and the readout included), ``time_forward`` the network alone;
    ``track_torch_threads`` records the thread count the timings ran with. Divide by
    ``n_instances`` for the time per drop (``scripts/mmtc_gnn_speed.py`` prints that table, with
    an earlier version alongside). ``compile``: the option of that name (inductor, compiled in
    setup: about a minute when inductor's cache does not hold the graphs); ``time_forward`` then
    times the compiled forward in the solver's chunks, which run on ``threads`` threads at once."""

    params = (["ku2-kd10-m10-ms5", "scale-k32"], [1, 256], [False, True], [1, 2])
    param_names = ["scenario", "n_instances", "compile", "threads"]
    timeout = 600

    def setup(self, scenario, n, compile, threads):
        import torch

        from cfbench.plugins.mmtc_gnn import network_inputs

        self.problem, self.solver = pinned_solver("mmtc", "het-gnn", scenario, compile=compile)
        limit_threads(threads)
        self.torch = torch
        self.instances = self.problem.sample(scenario, n, seed=8)
        self.inputs = network_inputs(self.instances, self.solver.checkpoint["input"])
        self.solver.solve(self.instances)
        self.time_forward(scenario, n, compile, threads)

    def time_solve(self, scenario, n, compile, threads):
        self.solver.solve(self.instances)

    def time_forward(self, scenario, n, compile, threads):
        with self.torch.inference_mode():
            self.solver.forward(*self.inputs)

    def track_torch_threads(self, scenario, n, compile, threads):
        return self.torch.get_num_threads()

    track_torch_threads.unit = "threads"
