"""``cfbench list | run | report``.

Bad input (unknown problem, scenario or solver, a bad number) prints one line
``cfbench: error: ...`` naming the bad value and the valid choices and exits
with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import pandas as pd

from cfbench import __version__
from cfbench.api import CfbenchError
from cfbench.manifest import build_manifest
from cfbench.registry import build_registry
from cfbench.report import FORMATS, comparison_table, format_table, read_results, status_summary, write_results
from cfbench.runner import run


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints usage too)
        raise CfbenchError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed, got {text!r}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _warn(registry) -> None:
    for w in registry.warnings:
        print(f"cfbench: warning: {w}", file=sys.stderr)


def cmd_list(args) -> int:
    reg = build_registry()
    _warn(reg)
    print("Problems")
    rows = []
    for name, prov in sorted(reg.problems.items()):
        prob = prov.cls()
        for scen, params in prob.scenarios.items():
            default = " (default)" if scen == prob.default_scenario else ""
            fields = "; ".join(f"{f.name} {f.shape} {f.unit}".strip() for f in prob.decision_fields(scen))
            rows.append([name, scen + default, fields, getattr(params, "description", ""), prov.distribution])
    print(format_table(pd.DataFrame(rows, columns=["problem", "scenario", "decision", "description", "plugin"]),
                       "text"))
    print("\nSolvers")
    rows = [[p.cls.name, p.cls.kind, ", ".join(p.cls.problems), f"{p.plugin} ({p.distribution})", p.cls.description]
            for p in sorted(reg.solvers, key=lambda p: (tuple(p.cls.problems), p.cls.name))]
    print(format_table(pd.DataFrame(rows, columns=["solver", "kind", "problems", "plugin", "description"]), "text"))
    return 0


def _print_table(rows: pd.DataFrame, manifest: dict, fmt: str) -> None:
    table = comparison_table(rows, manifest.get("paper_iterative_solver"), manifest.get("table_metrics", ()))
    if fmt == "text":
        unit = manifest.get("objective_unit", "")
        print(f"{manifest.get('problem')} / {manifest.get('scenario')}: {rows['instance'].nunique()} instances, "
              f"seed {manifest.get('seed')}, {manifest.get('threads')} thread(s), "
              f"objective {'in ' + unit if unit else 'dimensionless'}")
    print(format_table(table, fmt))
    summary = status_summary(rows)
    if summary and fmt == "text":
        print("\nNon-ok rows:\n" + summary)


def cmd_run(args) -> int:
    reg = build_registry()
    _warn(reg)
    problem = reg.problem(args.problem)
    scenario = args.scenario or problem.default_scenario
    problem.scenario_params(scenario)
    solvers = reg.select_solvers(args.problem, args.solvers)
    out = Path(args.out) if args.out else Path("results") / (
        f"{args.problem}-{scenario}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    if (out / "results.parquet").exists() and not args.overwrite:
        raise CfbenchError(f"{str(out)!r} already holds results.parquet; choose another --out or pass --overwrite")
    manifest = build_manifest(
        problem=problem, scenario=scenario, n_instances=args.instances, seed=args.seed, timeout_s=args.timeout,
        threads=args.threads, warnings=reg.warnings,
        solvers={s: {"kind": p.cls.kind, "plugin": p.plugin, "distribution": p.distribution}
                 for s, p in ((s, reg.solver(args.problem, s)) for s in solvers)},
    )
    from tqdm import tqdm

    frames: list[pd.DataFrame] = []
    bar = tqdm(total=len(solvers) * args.instances, desc="solving", unit="solve", file=sys.stderr,
               disable=args.quiet or None)
    try:
        for frame in run(reg, args.problem, scenario, solvers, n_instances=args.instances, seed=args.seed,
                         timeout_s=args.timeout, threads=args.threads, on_solve=lambda: bar.update(1)):
            frames.append(frame)
            bar.set_postfix_str(f"done {frame['solver'].iloc[0]}")
            write_results(out, pd.concat(frames, ignore_index=True), manifest)
    except KeyboardInterrupt:
        bar.close()
        if frames:
            print(f"cfbench: interrupted; rows of {len(frames)} finished solver(s) kept in {out}", file=sys.stderr)
        return 130
    bar.close()
    rows = pd.concat(frames, ignore_index=True)
    _print_table(rows, manifest, "text")
    print(f"\nresults: {out / 'results.parquet'}")
    return 0


def cmd_report(args) -> int:
    rows, manifest = read_results(Path(args.dir))
    _print_table(rows, manifest, args.format)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cfbench", description="Benchmark power control methods for cell-free massive MIMO.")
    parser.add_argument("--version", action="version", version=f"cfbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{list,run,report}", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("list", help="problems with their scenarios; solvers with kind, problems and plugin",
                       description="List registered problems (with scenarios) and solvers (with kind, "
                                   "supported problems and the plugin distribution that provides them).")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run solvers on seeded instances and print the comparison table",
                       description="Run solvers on seeded instances of a problem scenario, score every decision "
                                   "with the problem's evaluator, print the comparison table and write "
                                   "DIR/results.parquet and DIR/manifest.json.")
    p.add_argument("--problem", required=True, help="problem name (see 'cfbench list')")
    p.add_argument("--scenario", help="scenario name (default: the problem's default scenario)")
    p.add_argument("--solvers", default="all", help="'all' or a comma-separated list of solver names")
    p.add_argument("--instances", type=_positive_int, default=16, help="number of instances (default 16)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the instance stream (default 0)")
    p.add_argument("--timeout", type=_positive_seconds, default=None, metavar="SEC",
                   help="per-solve time limit in seconds; a solve past it gets status 'timeout'")
    p.add_argument("--threads", type=_positive_int, default=1, help="threads per solver process (default 1)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: a new folder under results/)")
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="print the comparison table of stored results",
                       description="Recompute the comparison table from DIR/results.parquet.")
    p.add_argument("dir", metavar="DIR", help="folder written by 'cfbench run'")
    p.add_argument("--format", choices=FORMATS[1:] + ("text",), default="text",
                   help="markdown, csv, json or text (default text)")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except CfbenchError as exc:
        print(f"cfbench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
