"""Bring stored ``urllc`` reference runs up to date after the change of ``sca``'s start.

``sca`` changed only where the ``best-uniform`` start leaves a terminal above
eps_QoS (the exact reliability test and the largest reliable set replaced the
conic phase 0); everywhere else it runs the same code on the same numbers.
So this script, for each run folder given:

1. re-solves ``sca`` on exactly those instances (the stored ``best-uniform`` row
   has ``n_violating_eps > 0``), with the runner's own isolated worker, timing
   and scoring (:func:`cfbench.runner.solve_all`, :func:`score_outcomes`), one
   thread per solve, split over ``--jobs`` workers;
2. re-solves one instance outside that set (if any) and records how far its
   decision is from the stored one (0 when the stored run came from the same
   ``sca``; runs made before later changes of ``sca`` differ in the last digits);
3. re-judges every stored decision of every solver with the current evaluator
   (the ``n_unreachable_eps`` metric became exact) and checks that no
   objective moved by more than 1e-12;
4. writes the rows and a manifest whose ``note`` records all this.

Solved rows are kept in ``DIR/resolve-sca.partial.parquet`` as they finish;
running the same command again (on any machine with that file) solves only
what is missing, and the file is removed once the run folder is updated.

    python scripts/urllc_resolve_sca.py results/reference/urllc/stress-k20 [...] --jobs 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from cfbench.manifest import git_commit
from cfbench.registry import build_registry
from cfbench.report import _replace_atomically, read_results, write_results
from cfbench.runner import score_outcomes, solve_all

CALL_BLOCK = 2  # instances per worker call between checkpoints
#: scored rows of an update in progress (kept in the run folder, so it may be committed and finished elsewhere)
CHECKPOINT = "resolve-sca.partial.parquet"


def _solve(problem, scenario, solver_cls, instances, positions: list[int], jobs: int,
           checkpoint: Path | None = None) -> pd.DataFrame:
    """Solve and score ``positions``; with ``checkpoint``, keep scored rows there as they finish.

    Each of ``jobs`` threads drives one isolated worker process over its share of the
    positions, a few instances per call; after every call the scored rows so far are
    written atomically to ``checkpoint``, and instances already there are not solved
    again, so an interrupted update loses at most the solves in flight.
    """
    done = pd.read_parquet(checkpoint) if checkpoint is not None and checkpoint.is_file() else None
    finished = set() if done is None else set(int(i) for i in done["instance"])
    todo = [p for p in positions if p not in finished]
    frames = [] if done is None else [done[done["instance"].isin(positions)]]
    if finished & set(positions):
        print(f"  {len(finished & set(positions))} instance(s) taken from {checkpoint}", flush=True)
    lock = threading.Lock()

    def work(share: list[int]) -> None:
        for start in range(0, len(share), CALL_BLOCK):
            block = instances[share[start:start + CALL_BLOCK]]
            scored = score_outcomes(problem, block, solve_all(problem, scenario, solver_cls, block, threads=1))
            with lock:
                frames.append(scored)
                if checkpoint is not None:
                    rows = pd.concat(frames, ignore_index=True)
                    _replace_atomically(checkpoint, lambda path: rows.to_parquet(path, index=False))

    shares = [todo[j::jobs] for j in range(jobs) if todo[j::jobs]]
    with ThreadPoolExecutor(max(len(shares), 1)) as pool:
        for future in [pool.submit(work, share) for share in shares]:
            future.result()
    return pd.concat(frames, ignore_index=True).sort_values("instance", kind="stable").reset_index(drop=True)


def _rejudge(problem, instances, rows: pd.DataFrame) -> pd.DataFrame:
    """Evaluate every stored valid decision again; objectives must not move."""
    out = []
    for _, frame in rows.groupby("solver", sort=False):
        frame = frame.copy().reset_index(drop=True)
        ok = frame.index[frame["status"] == "ok"].to_numpy()
        if len(ok):
            positions = frame.loc[ok, "instance"].to_numpy()
            decision = {"power_w": np.stack(frame.loc[ok, "decision_power_w"].to_numpy())}
            score = problem.evaluate(instances[list(positions)], decision)
            moved = np.nanmax(np.abs(score.objective - frame.loc[ok, "objective"].to_numpy()))
            if moved > 1e-12:
                raise SystemExit(f"error: objective of {frame['solver'][0]!r} moved by {moved:.3g} on re-judging")
            for name, v in score.metrics.items():
                frame.loc[ok, f"metric_{name}"] = np.asarray(v, dtype=float)
        out.append(frame)
    return pd.concat(out, ignore_index=True)


def update(folder: Path, jobs: int) -> None:
    rows, manifest = read_results(folder)
    registry = build_registry()
    problem = registry.problem("urllc")
    scenario, seed, n = manifest["scenario"], int(manifest["seed"]), int(manifest["n_instances"])
    instances = problem.sample(scenario, n, seed)
    if list(instances.index) != list(range(n)):
        raise SystemExit("error: expected instances 0..n-1")
    sca_cls = registry.solver("urllc", "sca").cls
    uniform = rows[rows["solver"] == "best-uniform"].set_index("instance")
    affected = sorted(int(i) for i in uniform.index[uniform["metric_n_violating_eps"] > 0])
    unaffected = [i for i in range(n) if i not in set(affected)]
    stored = rows[rows["solver"] == "sca"].set_index("instance")
    probe, probe_change = None, None
    if unaffected:
        probe = unaffected[len(unaffected) // 2]
        again = _solve(problem, scenario, sca_cls, instances, [probe], 1).iloc[0]
        old = np.asarray(stored.loc[probe, "decision_power_w"])
        probe_change = float(np.max(np.abs(np.asarray(again["decision_power_w"]) - old) / old))
        print(f"{folder.name}: instance {probe} (start unchanged) re-solved; largest relative power change "
              f"{probe_change:.3g}")
    print(f"{folder.name}: re-solving sca on {len(affected)} of {n} instances with {jobs} worker(s)", flush=True)
    checkpoint = folder / CHECKPOINT
    new = _solve(problem, scenario, sca_cls, instances, affected, jobs, checkpoint) if affected else None
    if new is not None:
        for column in ("problem", "scenario", "seed", "solver", "kind", "threads"):
            new[column] = stored[column].iloc[0]
        keep = rows[~((rows["solver"] == "sca") & rows["instance"].isin(affected))]
        rows = pd.concat([keep, new[rows.columns.intersection(new.columns)]], ignore_index=True)
        rows = rows.sort_values(["solver", "instance"], kind="stable").reset_index(drop=True)
    rows = _rejudge(problem, instances, rows)
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    manifest.setdefault("updates", []).append({
        "command": " ".join(["python", *sys.argv]),
        "created_utc": stamp,
        "git_commit": git_commit(),
        "note": (f"sca re-solved on the {len(affected)} instances where best-uniform leaves a terminal above "
                 f"eps_QoS (its start changed there), {jobs} worker(s), one thread per solve; every "
                 "decision re-judged with the current evaluator (objectives unchanged to 1e-12)"),
        "sca_instances": affected,
        "probe": {"instance": probe, "largest_relative_power_change": probe_change},
    })
    write_results(folder, rows, manifest)
    checkpoint.unlink(missing_ok=True)
    fresh = rows[(rows["solver"] == "sca") & rows["instance"].isin(affected)]
    print(f"{folder.name}: done; sca feasible on {int(fresh['feasible'].sum())} of {len(fresh)} re-solved instances")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    for folder in args.folders:
        if not (folder / "results.parquet").is_file():
            parser.error(f"{str(folder)!r} holds no results.parquet")
    for folder in args.folders:
        update(folder, args.jobs)


if __name__ == "__main__":
    main()
