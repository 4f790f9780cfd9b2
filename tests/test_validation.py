"""Bad input to every command fails before any work, as one line with exit status 2, and
loses nothing on disk: output paths that cannot be written, seeds out of range, counts
beyond the memory estimate, training sets too small, foreign or corrupted run folders."""

import json
import os
import shutil
from pathlib import Path

import pytest

from cfbench import validate
from cfbench.cli import main
from conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real (tiny) run folder; tests copy it before changing anything."""
    out = tmp_path_factory.mktemp("validation") / "run"
    res = run_cli("run", "--problem", "sum-ee", "--scenario", "tiny", "--solvers", "equal,nearest-ap",
                  "--instances", "2", "--workers", "1", "--quiet", "--out", str(out))
    assert res.returncode == 0, res.stderr
    return out


def snapshot(folder):
    """Every file under ``folder`` with its bytes."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(capsys, argv, status=2):
    """Run ``cfbench argv`` in this process; its stderr, which must be one error line."""
    capsys.readouterr()
    assert main([str(a) for a in argv]) == status
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("cfbench: error: " if status == 2 else "cfbench: internal error: ")
    return lines[0]


RUN = ["run", "--problem", "sum-ee", "--scenario", "tiny", "--solvers", "equal", "--instances", "1",
       "--workers", "1", "--quiet"]


# -- report, --resume and --append on foreign or corrupted folders -------------------------------

def _corrupt(folder, name, content):
    (folder / name).write_bytes(content)


@pytest.mark.parametrize("name, content, must_mention", [
    ("results.parquet", None, ["results.parquet", "not a readable parquet file"]),   # truncated
    ("results.parquet", b"", ["results.parquet", "not a readable parquet file"]),
    ("results.parquet", b"PAR1 not really", ["not a readable parquet file"]),
    ("manifest.json", b"[1, 2", ["manifest.json", "not valid JSON"]),
    ("manifest.json", b"[1, 2]", ["manifest.json", "JSON object expected", "array"]),
    ("manifest.json", b"\xff\xfe{}", ["manifest.json", "not UTF-8"]),
    ("manifest.json", b'{"n_instances": "many"}', ["'n_instances'", "string"]),
    ("manifest.json", b'{"solvers": [1]}', ["'solvers'", "array"]),
    ("manifest.json", b'{"command": 7, "complete": false}', ["'command'", "number"]),
])
def test_report_on_a_corrupted_run_is_one_line(run_dir, tmp_path, capsys, name, content, must_mention):
    folder = tmp_path / "run"
    shutil.copytree(run_dir, folder)
    if content is None:
        content = (run_dir / name).read_bytes()[:200]
    _corrupt(folder, name, content)
    before = snapshot(folder)
    line = one_line_error(capsys, ["report", folder])
    for text in must_mention:
        assert text in line
    assert snapshot(folder) == before


def test_report_on_a_foreign_parquet_names_the_missing_columns(tmp_path, capsys):
    import pandas as pd

    pd.DataFrame({"a": [1, 2]}).to_parquet(tmp_path / "results.parquet")
    line = one_line_error(capsys, ["report", tmp_path])
    assert "missing column(s)" in line and "objective" in line and "feasible" in line


def test_report_on_rows_with_a_wrongly_typed_column(run_dir, tmp_path, capsys):
    import pandas as pd

    shutil.copytree(run_dir, tmp_path / "run")
    rows = pd.read_parquet(run_dir / "results.parquet")
    rows.assign(feasible=rows["feasible"].map(str)).to_parquet(tmp_path / "run" / "results.parquet")
    assert "column 'feasible'" in one_line_error(capsys, ["report", tmp_path / "run"])


def test_report_on_an_empty_folder_and_on_a_file(tmp_path, capsys):
    assert "no results.parquet" in one_line_error(capsys, ["report", tmp_path])
    (tmp_path / "f").write_text("x")
    assert "no results.parquet" in one_line_error(capsys, ["report", tmp_path / "f"])


@pytest.mark.parametrize("mode", ["--resume", "--append"])
def test_resume_and_append_on_a_corrupted_run_lose_nothing(run_dir, tmp_path, capsys, mode):
    folder = tmp_path / "run"
    shutil.copytree(run_dir, folder)
    _corrupt(folder, "manifest.json", b"[]")
    before = snapshot(folder)
    assert "manifest.json" in one_line_error(capsys, [*RUN, "--out", folder, mode])
    assert snapshot(folder) == before


@pytest.mark.parametrize("mode", ["--resume", "--append"])
def test_resume_and_append_without_a_run_are_refused(tmp_path, capsys, mode):
    """A mistyped --out with --resume must not silently start a fresh run somewhere else."""
    line = one_line_error(capsys, [*RUN, "--out", tmp_path / "typo", mode])
    assert mode in line and "holds no run" in line and str(tmp_path / "typo") in line
    assert not (tmp_path / "typo").exists()


def test_more_workers_than_the_machine_can_run_is_refused_before_work(tmp_path, capsys):
    cap = 4 * (os.cpu_count() or 1)
    line = one_line_error(capsys, [*RUN, "--out", tmp_path / "w", "--workers", cap + 1])
    assert f"--workers {cap + 1}" in line and f"at most {cap}" in line
    assert not (tmp_path / "w").exists()
    assert main([*RUN, "--out", str(tmp_path / "ok"), "--workers", str(cap)]) == 0


def test_append_to_a_run_of_another_seed_loses_nothing(run_dir, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(run_dir, folder)
    before = snapshot(folder)
    line = one_line_error(capsys, ["run", "--problem", "sum-ee", "--scenario", "tiny", "--solvers", "best-uniform",
                                   "--instances", "2", "--seed", "5", "--quiet", "--out", folder, "--append"])
    assert "seed" in line and "5" in line
    assert snapshot(folder) == before


# -- output paths -------------------------------------------------------------------------------

def test_run_out_that_is_a_file_fails_before_solving(tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("keep me")
    line = one_line_error(capsys, [*RUN, "--out", target])
    assert str(target) in line and "is a file" in line
    assert target.read_text() == "keep me"
    line = one_line_error(capsys, [*RUN, "--out", target / "sub"])
    assert "is a file, not a folder" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes to read-only folders")
def test_run_out_in_a_read_only_folder_fails_before_solving(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        line = one_line_error(capsys, [*RUN, "--out", locked / "new"])
        assert "not writable" in line and str(locked) in line
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_output_checks_create_nothing(tmp_path):
    """The probe leaves no file behind and creates no folder."""
    assert validate.output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert validate.output_dir(tmp_path) == tmp_path
    assert validate.output_file(tmp_path / "c" / "w.pt") == tmp_path / "c" / "w.pt"
    assert list(tmp_path.iterdir()) == []


def test_train_out_that_is_a_folder_fails_before_training(tmp_path, capsys):
    line = one_line_error(capsys, ["train", "--solver", "estpanet", "--problem", "urllc", "--scenario", "tiny",
                                   "--samples", "4", "--epochs", "1", "--out", tmp_path])
    assert str(tmp_path) in line and "is a folder" in line
    assert list(tmp_path.iterdir()) == []


def test_train_out_never_overwrites_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    """A mistyped --out naming some other file is refused before training, the file untouched;
    an existing checkpoint may be replaced (retraining shipped weights)."""
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    line = one_line_error(capsys, ["train", "--solver", "estpanet", "--problem", "urllc", "--scenario", "tiny",
                                   "--samples", "4", "--epochs", "1", "--out", notes])
    assert str(notes) in line and "not a weights file" in line
    assert notes.read_text() == "keep me" and sorted(tmp_path.iterdir()) == [notes]
    shipped = next((ROOT / "plugins" / "weights").glob("*.pt"))
    assert validate.is_checkpoint(shipped) and not validate.is_checkpoint(notes)


def test_report_html_never_overwrites_a_file_that_is_not_html(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(RUN + ["--out", str(run_dir)]) == 0
    data = tmp_path / "data.csv"
    data.write_text("a,b\n1,2\n")
    capsys.readouterr()
    line = one_line_error(capsys, ["report", run_dir, "--html", data])
    assert "not an HTML file" in line and data.read_text() == "a,b\n1,2\n"
    line = one_line_error(capsys, ["report", run_dir, "--html", tmp_path])
    assert "is a folder" in line
    pytest.importorskip("matplotlib")   # the page's plots (cfbench[report]; the test extra has it)
    page = tmp_path / "page.html"
    assert main(["report", str(run_dir), "--html", str(page)]) == 0
    assert main(["report", str(run_dir), "--html", str(page)]) == 0      # its own output may be replaced
    assert validate.is_html(page)


def test_dataset_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "f").write_text("keep me")
    line = one_line_error(capsys, ["dataset", "--problem", "mmtc", "--scenario", "tiny", "--labels", "upc",
                                   "--samples", "2", "--out", tmp_path / "f"])
    assert "is a file" in line and (tmp_path / "f").read_text() == "keep me"


def test_dataset_with_a_broken_manifest_is_one_line(tmp_path, capsys):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "manifest.json").write_bytes(b"{not json")
    line = one_line_error(capsys, ["dataset", "--problem", "mmtc", "--scenario", "tiny", "--labels", "upc",
                                   "--samples", "2", "--workers", "1", "--quiet", "--out", tmp_path])
    assert "manifest.json" in line
    assert (tmp_path / "tiny" / "manifest.json").read_bytes() == b"{not json"


# -- seeds --------------------------------------------------------------------------------------

@pytest.mark.parametrize("command", [RUN, ["dataset", "--problem", "mmtc", "--scenario", "tiny", "--labels", "upc",
                                           "--samples", "2", "--workers", "1", "--quiet"],
                                     ["train", "--solver", "estpanet", "--problem", "urllc", "--scenario", "tiny",
                                      "--samples", "4", "--epochs", "1", "--threads", "1"]])
@pytest.mark.parametrize("seed", [2**64, 2**63])
def test_seed_beyond_int64_is_refused_at_parsing(tmp_path, capsys, command, seed):
    out = tmp_path / ("w.pt" if command[0] == "train" else "out")
    line = one_line_error(capsys, [*command, "--seed", seed, "--out", out])
    assert str(seed) in line and str(validate.SEED_MAX) in line
    assert list(tmp_path.iterdir()) == []


def test_the_largest_seed_runs_and_is_stored(tmp_path):
    import pandas as pd

    res = run_cli(*RUN, "--seed", str(validate.SEED_MAX), "--out", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    assert set(pd.read_parquet(tmp_path / "run" / "results.parquet")["seed"]) == {validate.SEED_MAX}


# -- memory estimates ---------------------------------------------------------------------------

def test_a_billion_instances_are_refused_at_once(tmp_path, capsys):
    line = one_line_error(capsys, [*RUN, "--instances", 10**9, "--out", tmp_path / "run"])
    assert "--instances 1000000000" in line and "limit" in line and "valid: 1 .. " in line
    assert list(tmp_path.iterdir()) == []


def test_memory_limit_names_estimate_limit_and_range(monkeypatch):
    monkeypatch.setattr(validate, "available_memory", lambda: 2 * 1024**3)
    validate.run_size(1000, 2)  # 8 MiB
    with pytest.raises(validate.CfbenchError) as err:
        validate.run_size(10**6, 2)
    message = str(err.value)
    assert "7.6 GiB" in message and "1.0 GiB" in message and f"1 .. {2**30 // 8192}" in message
    monkeypatch.setattr(validate, "available_memory", lambda: None)
    validate.run_size(10**12, 2)  # nothing known: not refused


def test_dataset_and_train_sizes_are_checked(tmp_path, capsys):
    line = one_line_error(capsys, ["dataset", "--problem", "mmtc", "--scenario", "tiny", "--labels", "upc",
                                   "--samples", 10**13, "--out", tmp_path / "d"])
    assert "--samples 10000000000000" in line
    line = one_line_error(capsys, ["train", "--solver", "estpanet", "--problem", "urllc", "--scenario", "tiny",
                                   "--samples", 10**9, "--out", tmp_path / "w.pt"])
    assert "--samples 1000000000" in line
    assert list(tmp_path.iterdir()) == []


# -- training sets too small ----------------------------------------------------------------------

@pytest.mark.parametrize("args, must_mention", [
    (["--solver", "estpanet", "--problem", "urllc", "--samples", "1"], ["--samples", "0 training"]),
    (["--solver", "estpanet", "--problem", "urllc", "--set", "epochs=0"], ["epochs", "0"]),
    (["--solver", "estpanet", "--problem", "urllc", "--set", "batch_size=0"], ["batch_size", "0"]),
    (["--solver", "elu-cosformer", "--problem", "uccf", "--set", "validation=0"], ["validation", "0"]),
    (["--solver", "het-gnn", "--problem", "mmtc", "--samples", "1"], ["--samples", "0 training"]),
    (["--solver", "het-gnn", "--problem", "mmtc", "--set", "constraints=c9"], ["'c9'", "c3-c5"]),
])
def test_training_sets_that_cannot_train_fail_up_front(tmp_path, capsys, args, must_mention):
    line = one_line_error(capsys, ["train", *args, "--scenario", "tiny", "--out", tmp_path / "w.pt"])
    for text in must_mention:
        assert text in line
    assert list(tmp_path.iterdir()) == []


def test_a_failed_checkpoint_write_leaves_the_old_file_and_no_tmp(tmp_path, monkeypatch):
    import torch

    from cfbench.learning import save_checkpoint

    target = tmp_path / "w.pt"
    target.write_bytes(b"old")

    def broken_save(obj, path):
        open(path, "wb").write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(target, {"x": 1})
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]
    with pytest.raises(validate.CfbenchError):
        save_checkpoint(tmp_path, {"x": 1})


def test_a_failed_results_write_leaves_the_old_files_and_no_tmp(run_dir, tmp_path):
    import pandas as pd

    from cfbench.report import write_results

    folder = tmp_path / "run"
    shutil.copytree(run_dir, folder)
    before = snapshot(folder)
    with pytest.raises(ValueError):  # pyarrow.ArrowInvalid
        write_results(folder, pd.DataFrame({"a": [object()]}), {})  # pyarrow cannot store it
    assert snapshot(folder) == before


# -- the last resort ------------------------------------------------------------------------------

def test_an_unexpected_exception_before_work_is_one_line_exit_1(monkeypatch, capsys):
    import cfbench.cli

    def broken():
        raise RuntimeError("plugin table is broken\nsecond line")

    monkeypatch.setattr(cfbench.cli, "build_registry", broken)
    line = one_line_error(capsys, ["list"], status=1)
    assert "RuntimeError: plugin table is broken" in line
    monkeypatch.setenv("CFBENCH_TRACEBACK", "1")
    with pytest.raises(RuntimeError):
        main(["list"])


def test_a_failed_shard_write_leaves_no_tmp(tmp_path, monkeypatch):
    import numpy as np

    from cfbench.dataset import write_shard

    def broken(path, **arrays):
        open(path, "wb").write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError):
        write_shard(tmp_path / "shard-000000.npz", {"index": np.arange(2)})
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_init_checkpoint_is_one_line(tmp_path, capsys):
    from cfbench.learning import save_checkpoint

    good = save_checkpoint(tmp_path / "good.pt", {"x": 1})
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:200])
    line = one_line_error(capsys, ["train", "--solver", "estpanet", "--problem", "urllc", "--scenario", "tiny",
                                   "--samples", "4", "--epochs", "1", "--threads", "1", "--init", tmp_path / "cut.pt",
                                   "--out", tmp_path / "w.pt"])
    assert "cut.pt" in line and "damaged" in line
    assert not (tmp_path / "w.pt").exists()
