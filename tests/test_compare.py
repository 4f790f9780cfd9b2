"""``cfbench compare OLD NEW``: identical runs pass, a 5 % worse objective or a lost feasible
instance fails with status 1 naming the solver, runs of other instances or unreadable folders
are one-line errors with status 2."""

import io
import json
import shutil

import pandas as pd
import pytest

from conftest import run_cli

SOLVERS = ("p-max", "best-uniform")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    # 6 instances: the one-sided exact signed-rank test can reach p = 1/64 < 0.05
    out = tmp_path_factory.mktemp("compare") / "old"
    res = run_cli("run", "--problem", "urllc", "--scenario", "tiny", "--solvers", ",".join(SOLVERS),
                  "--instances", "6", "--workers", "1", "--quiet", "--out", str(out))
    assert res.returncode == 0, res.stderr
    return out


def altered_copy(run_dir, target, change_rows=None, change_manifest=None):
    shutil.copytree(run_dir, target)
    rows = pd.read_parquet(target / "results.parquet")
    if change_rows:
        rows = change_rows(rows)
    rows.to_parquet(target / "results.parquet", index=False)
    manifest = json.loads((target / "manifest.json").read_text())
    if change_manifest:
        change_manifest(manifest)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def test_a_run_against_itself_is_identical(run_dir):
    res = run_cli("compare", str(run_dir), str(run_dir))
    assert res.returncode == 0, res.stderr
    lines = {line.split()[0]: line for line in res.stdout.splitlines() if line.split()[:1] in ([s] for s in SOLVERS)}
    assert set(lines) == set(SOLVERS)
    assert all(line.rstrip().endswith("identical") for line in lines.values()), res.stdout
    assert "no regression" in res.stdout


def test_sense_from_the_registry_for_runs_that_do_not_record_it(run_dir, tmp_path):
    """Runs written before the manifest recorded ``objective_sense``: the problem says (urllc maximises)."""
    def lower(rows):
        rows.loc[rows["solver"] == "best-uniform", "objective"] *= 0.95
        return rows

    strip = lambda manifest: manifest.pop("objective_sense")  # noqa: E731
    old = altered_copy(run_dir, tmp_path / "old", change_manifest=strip)
    new = altered_copy(run_dir, tmp_path / "new", lower, strip)
    res = run_cli("compare", str(old), str(new))
    assert res.returncode == 1 and "objective maximised" in res.stdout


def test_objective_five_percent_lower_is_a_regression(run_dir, tmp_path):
    def lower(rows):
        hit = rows["solver"] == "best-uniform"
        rows.loc[hit, "objective"] *= 0.95
        return rows

    new = altered_copy(run_dir, tmp_path / "new", lower)
    res = run_cli("compare", str(run_dir), str(new))
    assert res.returncode == 1, res.stdout + res.stderr
    line = next(line for line in res.stdout.splitlines() if line.startswith("best-uniform"))
    assert "REGRESSION" in line and "-5" in line
    assert next(line for line in res.stdout.splitlines() if line.startswith("p-max")).rstrip().endswith("identical")
    assert res.stdout.splitlines()[-1].endswith("best-uniform")
    # the same change under a 10 % threshold passes; the reverse direction is an improvement
    assert run_cli("compare", str(run_dir), str(new), "--threshold", "0.1").returncode == 0
    res = run_cli("compare", str(new), str(run_dir))
    assert res.returncode == 0 and "better" in res.stdout


def test_lost_feasibility_is_a_regression(run_dir, tmp_path):
    def break_one(rows):
        rows.loc[(rows["solver"] == "p-max") & (rows["instance"] == 2), "feasible"] = False
        return rows

    new = altered_copy(run_dir, tmp_path / "new", break_one)
    res = run_cli("compare", str(run_dir), str(new), "--format", "csv")
    assert res.returncode == 1
    table = pd.read_csv(io.StringIO(res.stdout)).set_index("solver")
    assert table.loc["p-max", "lost"] == 1
    assert table.loc["p-max", "new_feasible"] == table.loc["p-max", "old_feasible"] - 1
    assert table.loc["p-max", "verdict"].startswith("REGRESSION: 1 instance(s) became infeasible")
    assert table.loc["best-uniform", "verdict"] == "identical"


def test_minimised_objective_reverses_the_direction(run_dir):
    from cfbench.compare import compare_runs, load_run

    old = load_run(run_dir)
    new = load_run(run_dir)
    new.rows = new.rows.assign(objective=new.rows["objective"] * 0.95)
    table = compare_runs(old, new, sense="min").set_index("solver")
    assert not table["regression"].any() and (table["verdict"] == "better").all()
    assert compare_runs(old, new, sense="max")["regression"].all()


def test_too_few_pairs_is_not_significant(run_dir):
    """On 4 instances even a uniform 5 % loss has p = 1/16: reported as worse, not failed, with a note."""
    from cfbench.compare import compare_runs, load_run, min_pairs, render

    old = load_run(run_dir)
    old.rows = old.rows[old.rows["instance"] < 4]
    new = load_run(run_dir)
    new.rows = old.rows.assign(objective=old.rows["objective"] * 0.95)
    table = compare_runs(old, new)
    assert not table["regression"].any() and (table["verdict"] == "worse, not significant").all()
    assert min_pairs(0.05) == 5 and min_pairs(0.01) == 7
    assert "cannot reach p < 0.05" in render(old, new, table, 0.01, 0.05, "max", "text")


def test_help():
    res = run_cli("compare", "--help")
    assert res.returncode == 0 and "--threshold" in res.stdout and "--alpha" in res.stdout


def test_different_scenario_is_one_line(run_dir, tmp_path):
    other = altered_copy(run_dir, tmp_path / "other", lambda rows: rows.assign(scenario="k20"),
                         lambda manifest: manifest.update(scenario="k20"))
    res = run_cli("compare", str(run_dir), str(other))
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.count("\n") == 1 and "'tiny'" in res.stderr and "'k20'" in res.stderr


def bad_folder(root, kind):
    """A folder that is not a readable run: absent, a results file that is not parquet, a foreign parquet."""
    folder = root / kind
    if kind == "missing":
        return folder
    folder.mkdir()
    if kind == "garbage":
        (folder / "results.parquet").write_text("not parquet")
    else:
        pd.DataFrame({"a": [1]}).to_parquet(folder / "results.parquet")
    return folder


@pytest.mark.parametrize("kind, must_mention", [("missing", "missing"), ("garbage", "cannot read"),
                                                ("foreign", "lacks column")])
def test_bad_folder_is_one_line(run_dir, tmp_path, kind, must_mention):
    res = run_cli("compare", str(run_dir), str(bad_folder(tmp_path, kind)))
    assert res.returncode == 2, res.stdout + res.stderr
    assert res.stderr.count("\n") == 1 and must_mention in res.stderr and "Traceback" not in res.stderr


@pytest.mark.parametrize("option", [["--threshold", "-1"], ["--alpha", "0"], ["--alpha", "x"]])
def test_bad_option_is_one_line(run_dir, option):
    res = run_cli("compare", str(run_dir), str(run_dir), *option)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and repr(option[1]) in res.stderr
