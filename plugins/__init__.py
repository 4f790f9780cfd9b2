"""Solver plugins shipped with cfbench (installed as ``cfbench.plugins``)."""
