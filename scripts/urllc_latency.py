"""Median per-instance latency of SCA and U-ESTPANet at K = 10 and K = 60 on one thread,
the way the runner times it (setup and an untimed warm-up first, one instance per solve).
Usage: python scripts/urllc_latency.py"""
import time, numpy as np
from cfbench.registry import build_registry
from cfbench.runner import limit_threads
limit_threads(1)
reg=build_registry(); prob=reg.problem("urllc")
for scen in ("k10","k60"):
    for name in ("sca","estpanet"):
        s=reg.solver("urllc",name).cls(); s.setup(prob,scen); limit_threads(1)
        s.solve(prob.sample(scen,1,seed=999))
        inst=prob.sample(scen,5,seed=0); ts=[]
        for i in range(5):
            t=time.perf_counter(); s.solve(inst[i]); ts.append(time.perf_counter()-t)
        import sys; th=sys.modules.get("torch").get_num_threads() if "torch" in sys.modules else "-"
        print(scen, name, f"median {np.median(ts)*1e3:.1f} ms", "torch threads", th, flush=True)
