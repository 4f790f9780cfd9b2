"""``cfbench list | run | report | compare | dataset | train``.

Bad input (unknown problem, scenario or solver, a bad number, a solver option
the solver does not declare or a value its declaration refuses) prints one line
``cfbench: error: ...`` naming the bad value and the valid choices and exits
with status 2, before any work starts; no traceback. So are output folders and files that
cannot be written, seeds out of range, counts whose memory estimate exceeds what
the machine has, training sets too small to train on, and foreign or corrupted
run folders (the checks live in :mod:`cfbench.validate`, whose docstring lists
the exit statuses). Output cut short by a closed pipe (``cfbench list | head``)
ends quietly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import signal
import sys
from pathlib import Path

from cfbench import __version__, validate
from cfbench.api import CfbenchError, OptionError
from cfbench.compare import DEFAULT_ALPHA, DEFAULT_THRESHOLD, compare_dirs, fraction, probability
from cfbench.manifest import build_manifest
from cfbench.registry import build_registry
from cfbench.executors import EXECUTORS, default_block, make_executor, plan_units
from cfbench.lazy import lazy_import
from cfbench.report import (EMPTY_COLUMNS, FORMATS, RESULTS_FILE, comparison_table, format_table, read_results, status_summary,
                            write_results)

pd = lazy_import("pandas")  # imported by the commands that read or write results, not by 'cfbench list'


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints usage too)
        raise CfbenchError(message)


_positive_int = validate.number_argument(int, lambda v: v >= 1, "a positive integer")
_positive_seconds = validate.number_argument(float, lambda v: 0 < v < float("inf"), "a positive number of seconds")
_positive_float = validate.number_argument(float, lambda v: 0 < v < float("inf"), "a positive number")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed, got {text!r}") from None
    if not 0 <= value <= validate.SEED_MAX:
        raise argparse.ArgumentTypeError(f"expected an integer seed in 0 .. {validate.SEED_MAX} (2**63 - 1), "
                                         f"got {text!r}")
    return value


def _warn(registry) -> None:
    for w in registry.warnings:
        print(f"cfbench: warning: {w}", file=sys.stderr)


def _text_table(rows: list[list], headers: list[str]) -> str:
    """A plain text table (what ``format_table(..., "text")`` prints, without pandas)."""
    from tabulate import tabulate

    return tabulate([[str(v) for v in row] for row in rows], headers=headers, tablefmt="simple",
                    disable_numparse=True)


def cmd_list(args) -> int:
    reg = build_registry()
    _warn(reg)
    if args.solver:
        return _describe_solver(reg, args.solver, args.problem)
    print("Problems")
    rows = []
    for name, prov in sorted(reg.problems.items()):
        if args.problem and name != args.problem:
            continue
        prob = prov.cls()
        for scen, params in prob.scenarios.items():
            default = " (default)" if scen == prob.default_scenario else ""
            fields = "; ".join(f"{f.name} {f.shape} {f.unit}".strip() for f in prob.decision_fields(scen))
            rows.append([name, scen + default, fields, getattr(params, "description", ""), prov.distribution])
    if args.problem and not rows:
        reg.problem(args.problem)  # the one-line error naming the valid problems
    print(_text_table(rows, ["problem", "scenario", "decision", "description", "plugin"]))
    print("\nSolvers")
    rows = [[p.cls.name, p.cls.kind, ", ".join(p.cls.problems), f"{p.plugin} ({p.distribution})", p.cls.description]
            for p in sorted(reg.solvers, key=lambda p: (tuple(p.cls.problems), p.cls.name))
            if not args.problem or args.problem in p.cls.problems]
    print(_text_table(rows, ["solver", "kind", "problems", "plugin", "description"]))
    print("\nOptions of a solver: cfbench list --solver NAME")
    return 0


def _option_rows(spec) -> list[list]:
    return [[o.name, o.type_name + (f" ({', '.join(o.choices)})" if o.choices else ""),
             "-" if o.default is None else o.default, o.help] for o in spec]


def _describe_solver(reg, name: str, problem: str | None) -> int:
    """``cfbench list --solver NAME``: what the solver is and the options it reads."""
    matches = [p for p in reg.solvers if p.cls.name == name and (problem is None or problem in p.cls.problems)]
    if not matches:
        if problem is not None:
            reg.solver(problem, name)  # the one-line error naming the problem's solvers
        raise CfbenchError(f"unknown solver {name!r}; valid: {', '.join(sorted(reg.solver_names()))}")
    if len(matches) > 1:
        problems = sorted(q for p in matches for q in p.cls.problems)
        raise CfbenchError(f"several solvers are called {name!r} (for {', '.join(problems)}); "
                           f"choose one with --problem")
    cls, provided = matches[0].cls, matches[0]
    print(f"{cls.name}: {cls.description}" if cls.description else cls.name)
    print(f"kind {cls.kind}; problems {', '.join(cls.problems)}; plugin {provided.plugin} ({provided.distribution})")
    headers = ["option", "type", "default", "help"]
    if cls.options_spec:
        print(f"\nOptions (cfbench run --set {cls.name}:KEY=VALUE)")
        print(_text_table(_option_rows(cls.options_spec), headers))
    else:
        print("\nNo options.")
    if hasattr(cls, "train"):
        print(f"\nTraining options (cfbench train --solver {cls.name} --set KEY=VALUE)")
        print(_text_table(_option_rows(cls.training_options_spec), headers) if cls.training_options_spec
              else "(none declared)")
    return 0


def _solver_options(cls, given: dict) -> tuple[dict, dict]:
    """``given`` (``--set`` strings) checked against the solver's declared options: the
    given ones typed, and every option as the solver will use it. The solver is built
    once with them so that its own checks (ranges, lists of names) fail here too,
    before any work, as one line."""
    used = cls.parse_options(given)
    typed = {key: used[key] for key in given}
    try:
        cls(**typed)
    except OptionError:
        raise
    except (CfbenchError, ValueError, TypeError) as exc:
        raise CfbenchError(f"solver {cls.name!r}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") \
            from None
    return typed, used


def _artifacts(cls, scenario: str, options: dict) -> dict[str, dict]:
    """The solver's artifact files (``Solver.artifacts``, e.g. trained weights) with their
    SHA-256, for the manifest; a missing file is a one-line error before any work."""
    out = {}
    for name, path in cls.artifacts(scenario, options).items():
        path = Path(path)
        if not path.is_file():
            raise CfbenchError(f"solver {cls.name!r}: no {name} file {str(path)!r}")
        out[name] = {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return out


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


class _Terminated(Exception):
    """SIGTERM reached ``cfbench run``: stop like Ctrl-C, keeping the finished rows."""


def _raise_terminated(signum, frame):
    raise _Terminated()


def _resume_command(argv: list[str], out: Path | str) -> str:
    """The ``cfbench run`` command line ``argv`` (without the program name) made to finish ``out``."""
    argv = [a for a in argv if a not in ("--resume", "--overwrite", "--append")]
    if "--out" not in argv and not any(a.startswith("--out=") for a in argv):
        argv += ["--out", str(out)]
    return " ".join(["cfbench", *argv, "--resume"])


def cmd_run(args) -> int:
    reg = build_registry()
    _warn(reg)
    problem = reg.problem(args.problem)
    scenario = args.scenario or problem.default_scenario
    problem.scenario_params(scenario)
    solvers = reg.select_solvers(args.problem, args.solvers)
    out = Path(args.out) if args.out else Path("results") / (
        f"{args.problem}-{scenario}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    modes = [flag for flag in ("append", "overwrite", "resume") if getattr(args, flag)]
    if len(modes) > 1:
        raise CfbenchError(f"--{modes[0]} and --{modes[1]} exclude each other; choose one")
    validate.output_dir(out)
    existing = (out / RESULTS_FILE).exists()
    if existing and not modes:
        raise CfbenchError(f"{str(out)!r} already holds results.parquet; choose another --out, "
                           "pass --append to add solvers to it, --resume to finish it, or --overwrite")
    if not existing and modes and modes[0] in ("append", "resume"):
        raise CfbenchError(f"--{modes[0]}: {str(out)!r} holds no run (no results.parquet); check --out, "
                           f"or drop --{modes[0]} to start a new run there")
    given: dict[str, dict] = {}
    for name, key, value in args.set or []:
        if name not in solvers:
            raise CfbenchError(f"--set names solver {name!r}, which this run does not include; "
                               f"solvers of this run: {', '.join(solvers)}")
        given.setdefault(name, {})[key] = value
    classes = {s: reg.solver(args.problem, s).cls for s in solvers}
    solver_options: dict[str, dict] = {}   # the options set, typed
    options_used: dict[str, dict] = {}     # every declared option, defaults filled in
    for s in solvers:
        typed, options_used[s] = _solver_options(classes[s], given.get(s, {}))
        if typed:
            solver_options[s] = typed
    artifacts = {s: _artifacts(classes[s], scenario, options_used[s]) for s in solvers}
    validate.run_size(args.instances, len(solvers))
    executor = make_executor(args.executor, args.workers, args.scheduler)
    manifest = build_manifest(
        problem=problem, scenario=scenario, n_instances=args.instances, seed=args.seed, timeout_s=args.timeout,
        threads=args.threads, warnings=reg.warnings,
        solvers={s: {"kind": p.cls.kind, "plugin": p.plugin, "distribution": p.distribution,
                     **({"options": solver_options[s]} if s in solver_options else {}),
                     "options_used": options_used[s],
                     **({"artifacts": artifacts[s]} if artifacts[s] else {})}
                 for s, p in ((s, reg.solver(args.problem, s)) for s in solvers)},
    )
    manifest["execution"] = {**executor.describe(), "memory_limit_mb": args.memory_limit, "batch": args.batch}
    _begin_work()
    kept = pd.DataFrame()
    if existing and args.append:
        kept, manifest = _appendable(out, manifest, solvers)
    elif existing and args.resume:
        kept, manifest = _resumable(out, manifest, solvers, classes)
    done = set(zip(kept["solver"], kept["instance"])) if len(kept) else set()
    missing = {s: [i for i in range(args.instances) if (s, i) not in done] for s in solvers}
    block = args.block or default_block(args.instances, getattr(executor, "workers", 1))
    if args.batch:  # a unit holds whole batches
        block = -(-max(block, args.batch) // args.batch) * args.batch
    units = plan_units(args.problem, scenario, args.seed, {s: m for s, m in missing.items() if m}, block,
                       options=solver_options, timeout_s=args.timeout, threads=args.threads,
                       memory_limit_mb=args.memory_limit, batch=args.batch)
    n_total = len(solvers) * args.instances
    order = {s: k for k, s in enumerate(solvers)}

    def ordered(frames: list[pd.DataFrame]) -> pd.DataFrame:
        rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=EMPTY_COLUMNS)
        if len(rows):
            rows = rows.assign(_order=rows["solver"].map(order).fillna(-1)).sort_values(
                ["_order", "instance"], kind="stable").drop(columns="_order").reset_index(drop=True)
        return rows

    from tqdm import tqdm

    frames: list[pd.DataFrame] = [kept] if len(kept) else []
    # one bar per solver: solvers differ in cost by orders of magnitude, so one bar over all solves
    # would sit near its end while the slowest solver still has most of the time to go
    width = max(map(len, solvers))
    bars = {s: tqdm(total=args.instances, initial=args.instances - len(missing[s]), desc=s.ljust(width),
                    unit="solve", position=k, file=sys.stderr, disable=args.quiet or None, dynamic_ncols=True)
            for k, s in enumerate(solvers)}

    def close_bars() -> None:
        for b in bars.values():
            b.close()
    manifest["complete"] = False
    write_results(out, ordered(frames), manifest)  # the folder is a valid (partial) run from here on
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        for frame in executor.map(units):
            frames.append(frame)
            for name, count in frame["solver"].value_counts().items():
                bars[name].update(int(count))
            write_results(out, ordered(frames), manifest)
    except (KeyboardInterrupt, _Terminated) as exc:
        close_bars()
        n_done = sum(map(len, frames))
        print(f"cfbench: interrupted; {n_done} of {n_total} solves kept in {out}; resume with:\n"
              f"  {_resume_command(sys.argv[1:], out)}", file=sys.stderr)
        return 143 if isinstance(exc, _Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    close_bars()
    rows = ordered(frames)
    # complete: every solver the folder names has a row for every instance (an --append to an
    # unfinished run leaves it unfinished)
    pairs = set(zip(rows["solver"], rows["instance"]))
    manifest["complete"] = all((s, i) in pairs for s in manifest["solvers"] for i in range(args.instances))
    write_results(out, rows, manifest)
    _print_table(rows, manifest, "text")
    print(f"\nresults: {out / RESULTS_FILE}")
    return 0


def _appendable(out: Path, manifest: dict, solvers: list[str]) -> tuple[pd.DataFrame, dict]:
    """Rows of an earlier run in ``out`` to keep (all but ``solvers``, which are rerun) and
    the merged manifest. The earlier run must be on the same instances."""
    rows, old = read_results(out)
    for key in ("problem", "scenario", "seed", "n_instances", "threads"):
        if old.get(key) != manifest[key]:
            raise CfbenchError(f"cannot --append to {str(out)!r}: its {key} is {old.get(key)!r}, this run's is "
                               f"{manifest[key]!r}")
    kept = rows[~rows["solver"].isin(solvers)]
    merged = dict(manifest)
    merged["solvers"] = {**{s: v for s, v in old.get("solvers", {}).items() if s not in solvers}, **manifest["solvers"]}
    merged["appended"] = old.get("appended", []) + [{"command": manifest["command"], "solvers": solvers,
                                                    "created_utc": manifest["created_utc"]}]
    merged["created_utc"] = old.get("created_utc", manifest["created_utc"])
    merged["command"] = old.get("command", manifest["command"])
    return kept, merged


def _resumable(out: Path, manifest: dict, solvers: list[str], classes: dict[str, type]) -> tuple[pd.DataFrame, dict]:
    """Rows of an interrupted (or finished) run in ``out`` to keep, and its manifest. The
    run must be the same: problem, scenario, seed, instance count, threads and solver options
    (compared as the solver uses them, so ``true`` and ``1`` are the same; ``classes`` maps a
    solver name to its class)."""
    rows, old = read_results(out)
    for key in ("problem", "scenario", "seed", "n_instances", "threads"):
        if old.get(key) != manifest[key]:
            raise CfbenchError(f"cannot --resume {str(out)!r}: its {key} is {old.get(key)!r}, this run's is "
                               f"{manifest[key]!r}")
    for s in solvers:
        before = old.get("solvers", {}).get(s, {}).get("options", {})
        now = manifest["solvers"][s].get("options", {})
        if s in old.get("solvers", {}) and _used(classes[s], before) != _used(classes[s], now):
            raise CfbenchError(f"cannot --resume {str(out)!r}: solver {s!r} ran with options {before!r}, "
                               f"this run gives {now!r}")
        then = old.get("solvers", {}).get(s, {}).get("artifacts")
        now = manifest["solvers"][s].get("artifacts", {})
        if then is not None and then != now:
            changed = sorted(k for k in then.keys() | now.keys() if then.get(k) != now.get(k))
            raise CfbenchError(f"cannot --resume {str(out)!r}: solver {s!r} ran with other {', '.join(changed)} "
                               "(their SHA-256 differ); rerun it with --append, or resume with the files it used")
    merged = dict(old)
    merged["solvers"] = {**old.get("solvers", {}), **manifest["solvers"]}
    merged["resumed"] = old.get("resumed", []) + [{"command": manifest["command"],
                                                  "created_utc": manifest["created_utc"],
                                                  "execution": manifest["execution"]}]
    return rows, merged


def _used(cls, options: dict) -> dict | None:
    """``options`` as the solver would use them; ``None`` if it no longer accepts them."""
    try:
        return cls.parse_options(options)
    except OptionError:
        return None


def cmd_report(args) -> int:
    if args.html:
        validate.output_file(args.html, "--html", kind="an HTML file", is_kind=validate.is_html, example="report.html")
    rows, manifest = read_results(Path(args.dir))
    if len(rows):
        _print_table(rows, manifest, args.format)
    else:
        print(f"{manifest.get('problem')} / {manifest.get('scenario')}: no finished solves yet")
    if args.html:
        from cfbench.report_html import write_html

        print(f"html: {write_html(args.html, rows, manifest)}", file=sys.stderr)
    if manifest.get("complete") is False:
        expected = len(manifest.get("solvers", {})) * int(manifest.get("n_instances", 0))
        command = manifest.get("command", "cfbench run ...").split()[1:]
        print(f"cfbench: note: incomplete run, {len(rows)} of {expected} solves; finish it with:\n"
              f"  {_resume_command(command, args.dir)}", file=sys.stderr)
    return 0


def cmd_compare(args) -> int:
    text, status = compare_dirs(args.old, args.new, args.threshold, args.alpha, args.format)
    print(text)
    return status


def _option(text: str) -> tuple[str, str]:
    """``KEY=VALUE``; the value stays a string, typed later by the option's declaration."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _solver_option(text: str) -> tuple[str, str, str]:
    name, sep, rest = text.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected SOLVER:KEY=VALUE, got {text!r}")
    try:
        key, value = _option(rest)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected SOLVER:KEY=VALUE, got {text!r}") from None
    return name, key, value


def _scenario_list(problem, text: str) -> list[str]:
    """Comma-separated scenario names, each checked against the problem's."""
    scenarios = [s.strip() for s in text.split(",") if s.strip()]
    if not scenarios:
        raise CfbenchError(f"empty scenario list {text!r}; valid: {', '.join(problem.scenarios)}")
    for s in scenarios:
        problem.scenario_params(s)
    return scenarios


def cmd_train(args) -> int:
    reg = build_registry()
    _warn(reg)
    problem = reg.problem(args.problem)
    scenarios = _scenario_list(problem, args.scenario)
    provided = reg.solver(args.problem, args.solver)
    trainable = sorted(p.cls.name for p in reg.solvers if args.problem in p.cls.problems and hasattr(p.cls, "train"))
    if not hasattr(provided.cls, "train"):
        raise CfbenchError(f"solver {args.solver!r} is not trainable; trainable for {args.problem!r}: "
                           f"{', '.join(trainable) or '(none)'}")
    options = dict(args.set or [])
    for key in ("epochs", "samples", "init"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    used = provided.cls.parse_training_options(options)  # before torch is imported or any work starts
    options = {key: used[key] for key in options}
    provided.cls.check_training(problem, scenarios, used)
    if isinstance(used.get("samples"), int):
        validate.sample_size(used["samples"] + max(0, used.get("validation") or 0), scenarios, problem,
                             "--samples")
    if args.out is not None:
        validate.output_file(args.out, kind="a weights file (torch checkpoint)", is_kind=validate.is_checkpoint)
    _begin_work()
    import torch

    torch.set_num_threads(args.threads)

    def report(values: dict) -> None:
        shown = "  ".join(f"{k} {v:.5g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        print(shown, file=sys.stderr, flush=True)

    path = provided.cls.train(problem, scenarios, seed=args.seed, out=args.out, report=report, **options)
    print(f"weights: {path}")
    return 0


def cmd_dataset(args) -> int:
    from tqdm import tqdm

    from cfbench import dataset

    reg = build_registry()
    _warn(reg)
    problem = reg.problem(args.problem)
    scenarios = _scenario_list(problem, args.scenario)
    provided = reg.solver(args.problem, args.labels)
    if args.seed is None:
        args.seed = dataset.DEFAULT_SEED
    options, _ = _solver_options(provided.cls, dict(args.set or []))  # checked here, before any work
    for folder in (Path(args.out), *(Path(args.out) / s for s in scenarios)):
        validate.output_dir(folder)
    executor = make_executor(args.executor, args.workers, args.scheduler)
    validate.dataset_size(args.samples, args.shard_size, scenarios, problem, getattr(executor, "workers", None) or 1)
    _begin_work()
    n_shards = -(-args.samples // args.shard_size)
    bar = tqdm(total=len(scenarios) * n_shards * args.shard_size, desc="labelling", unit="sample",
               file=sys.stderr, disable=args.quiet or None)
    try:
        for s in scenarios:
            bar.set_postfix_str(s)
            manifest = dataset.build(problem, args.labels, options, s, args.samples, Path(args.out), seed=args.seed,
                                     shard_size=args.shard_size, executor=executor, threads=args.threads,
                                     on_progress=bar.update, version=__version__)
            bar.write(f"{Path(args.out) / s}: {manifest['samples']} samples, labels by {args.labels}, "
                      f"{manifest['label_seconds_total']:.0f} s of labelling in total")
    except KeyboardInterrupt:
        bar.close()
        print(f"cfbench: interrupted; finished shards kept in {args.out}; rerun the same command to resume",
              file=sys.stderr)
        return 130
    bar.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cfbench", description="Benchmark power control methods for cell-free massive MIMO.")
    parser.add_argument("--version", action="version", version=f"cfbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{list,run,report,compare,dataset,train}",
                                parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("list", help="problems with their scenarios; solvers with kind, problems and plugin",
                       description="List registered problems (with scenarios) and solvers (with kind, "
                                   "supported problems and the plugin distribution that provides them); "
                                   "with --solver, one solver and the options it reads.")
    p.add_argument("--solver", metavar="NAME", help="describe this solver and its options (with their types, "
                                                     "defaults and help)")
    p.add_argument("--problem", help="only this problem (needed with --solver when several problems have a "
                                     "solver of that name)")
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
    p.add_argument("--append", action="store_true",
                   help="add (or rerun) these solvers in an existing --out run on the same instances")
    p.add_argument("--set", type=_solver_option, action="append", metavar="SOLVER:KEY=VALUE",
                   help="a solver option, e.g. het-gnn:weights=FILE (repeatable; recorded in the manifest; "
                        "'cfbench list --solver NAME' lists a solver's options)")
    p.add_argument("--resume", action="store_true",
                   help="finish an interrupted run in --out: solve only the (solver, instance) pairs it lacks")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="where solves run: 'local' (default, a pool of worker processes) or 'dask' "
                        "(pip install 'cfbench[dask]')")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="solves at once (default: the number of cores; with dask, the LocalCluster's workers)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="address of a running dask.distributed scheduler (default: start a LocalCluster)")
    p.add_argument("--block", type=_positive_int, default=None,
                   help="instances per unit of work (default: about 8 units per worker and solver, at most 16)")
    p.add_argument("--batch", type=_positive_int, default=None, metavar="N",
                   help="also time solvers that solve batches on N instances per call and report the per-instance "
                        "time (throughput) beside the one-at-a-time latency")
    p.add_argument("--memory-limit", type=_positive_float, default=None, metavar="MB",
                   help="address-space limit per worker process; a solver past it gets an 'error' row")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="print the comparison table of stored results",
                       description="Recompute the comparison table from DIR/results.parquet.")
    p.add_argument("dir", metavar="DIR", help="folder written by 'cfbench run'")
    p.add_argument("--format", choices=FORMATS[1:] + ("text",), default="text",
                   help="markdown, csv, json or text (default text)")
    p.add_argument("--html", metavar="FILE", default=None,
                   help="also write a self-contained HTML page: manifest, table and plots (needs matplotlib)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="per-solver changes between two runs on the same instances; exit 1 on a "
                                       "regression",
                       description="Pair the rows of two runs of the same problem, scenario and seed on their "
                                   "instances and print per solver the change in objective (with a one-sided "
                                   "Wilcoxon signed-rank test), feasibility and median latency. Exit status 1 "
                                   "when a solver's objective got worse beyond --threshold with p < --alpha or an "
                                   "instance became infeasible, 0 otherwise, 2 on bad input.")
    p.add_argument("old", metavar="DIR1", help="the reference run folder")
    p.add_argument("new", metavar="DIR2", help="the run folder to check against it")
    p.add_argument("--threshold", type=fraction, default=DEFAULT_THRESHOLD, metavar="REL",
                   help=f"relative worsening of a mean objective that counts (default {DEFAULT_THRESHOLD:g} = "
                        f"{100 * DEFAULT_THRESHOLD:g} %%)")
    p.add_argument("--alpha", type=probability, default=DEFAULT_ALPHA,
                   help=f"significance level of the paired test (default {DEFAULT_ALPHA:g})")
    p.add_argument("--format", choices=FORMATS[1:] + ("text",), default="text",
                   help="markdown, csv, json or text (default text)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("dataset", help="label seeded instances with a solver (training data; resumable)",
                       description="Draw seeded instances of one or more scenarios, label them with a solver "
                                   "in shards and store DIR/<scenario>/shard-*.npz plus manifest.json "
                                   "(format: cfbench.dataset). Rerunning the command resumes or extends it.")
    p.add_argument("--problem", required=True, help="problem name (see 'cfbench list')")
    p.add_argument("--scenario", required=True, help="scenario, or comma-separated scenarios")
    p.add_argument("--labels", required=True, metavar="SOLVER", help="solver whose decisions are the labels")
    p.add_argument("--samples", type=_positive_int, required=True, help="instances per scenario")
    p.add_argument("--seed", type=_seed, default=None, help="instance stream seed (default: cfbench.dataset.DEFAULT_SEED)")
    p.add_argument("--shard-size", type=_positive_int, default=32, help="instances per shard (default 32)")
    p.add_argument("--set", type=_option, action="append", metavar="KEY=VALUE", help="label solver option")
    p.add_argument("--threads", type=_positive_int, default=1, help="threads per worker (default 1)")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="where shards are labelled: 'local' (default) or 'dask' (pip install 'cfbench[dask]')")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="shards at once (default: the number of cores)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="address of a running dask.distributed scheduler (default: start a LocalCluster)")
    p.add_argument("--out", metavar="DIR", required=True, help="dataset folder (one subfolder per scenario)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_dataset)

    p = sub.add_parser("train", help="train a learned solver and write its weights",
                       description="Train a learned solver on seeded instances of one or more scenarios "
                                   "(comma-separated; one model across them) and write a checkpoint.")
    p.add_argument("--solver", required=True, help="learned solver name (see 'cfbench list')")
    p.add_argument("--problem", required=True, help="problem name")
    p.add_argument("--scenario", required=True, help="scenario, or comma-separated scenarios for one model")
    p.add_argument("--seed", type=_seed, default=0, help="training seed (default 0)")
    p.add_argument("--epochs", type=_positive_int, default=None, help="epochs (default: the solver's)")
    p.add_argument("--samples", type=_positive_int, default=None, help="instances per scenario (default: the solver's)")
    p.add_argument("--init", metavar="FILE", default=None, help="start from this checkpoint (fine-tuning)")
    p.add_argument("--set", type=_option, action="append", metavar="KEY=VALUE", help="other training option")
    p.add_argument("--threads", type=_positive_int, default=2, help="torch threads (default 2)")
    p.add_argument("--out", metavar="FILE", default=None, help="checkpoint path (default under results/weights/)")
    p.set_defaults(func=cmd_train)
    return parser


def _one_line(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped (``\\r``, ``\\x00``):
    a bad value given on the command line cannot break the error line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


_working = False  # set once a command has checked its input and starts its work


def _begin_work() -> None:
    global _working
    _working = True


def main(argv: list[str] | None = None) -> int:
    global _working
    _working = False
    try:
        args = build_parser().parse_args(argv)
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe shows up here, not at exit
        return status
    except CfbenchError as exc:
        print(f"cfbench: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader stopped reading (``cfbench list | head``): stop quietly, and point stdout
        # at /dev/null so that the interpreter's last flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command ended by a closed pipe
    except Exception as exc:
        # a bug (cfbench's or a plugin's), not bad input: before any work one line naming it, exit 1;
        # during the work its traceback, where it is needed (cfbench.validate's docstring)
        if _working or os.environ.get("CFBENCH_TRACEBACK"):
            raise
        message = _one_line(str(exc).strip().splitlines()[0]) if str(exc).strip() else ""
        print(f"cfbench: internal error: {type(exc).__name__}{': ' + message if message else ''} "
              f"(a bug; CFBENCH_TRACEBACK=1 shows where)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
