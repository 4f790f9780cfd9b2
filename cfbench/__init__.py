"""cfbench: one judge for power control in cell-free massive MIMO."""

from cfbench.api import (
    SOLVER_KINDS,
    CfbenchError,
    Decision,
    DecisionField,
    Instances,
    Option,
    OptionError,
    Problem,
    Score,
    Solution,
    Solver,
    instance_rng,
)
from cfbench.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "SOLVER_KINDS",
    "CfbenchError",
    "Decision",
    "DecisionField",
    "Instances",
    "Option",
    "OptionError",
    "Problem",
    "Score",
    "Solution",
    "Solver",
    "hookimpl",
    "instance_rng",
]
