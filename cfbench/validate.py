"""Checks every command makes before any work starts.

A command that is going to fail should fail at once, with one line naming the
bad value and what is valid (:class:`~cfbench.api.CfbenchError`, exit status 2),
not after the first solver finished or after training: the output folder or
file must be creatable and writable, a seed must fit where it is stored, and
what a command will hold in memory must fit in this machine's memory.

Seeds. Instance streams are ``PCG64(SeedSequence([seed, i]))``, which takes any
non-negative integer, but the seed is stored in the ``seed`` column of
``results.parquet`` as an int64, so the largest seed is ``2**63 - 1``
(:data:`SEED_MAX`); every command takes the same range.

Memory. :func:`check_memory` refuses an estimate above half the memory this
machine has available now (``MemAvailable`` of ``/proc/meminfo``, else
``sysconf``); the callers' estimates are deliberately coarse and cheap (one
sampled instance times the count, a measured per-row size times the rows),
meant to stop a mistyped ``--instances 1000000000`` (which would build a
bookkeeping list of a billion entries), not to budget a run to the megabyte.

Exit statuses of ``cfbench``: 0 done; 2 bad input (one line, nothing written);
1 an unexpected exception before any work started, which is a bug in cfbench or
a plugin: it is printed as one line naming the exception's type and message
(``CFBENCH_TRACEBACK=1`` shows the traceback) rather than silently treated as
bad input. An unexpected exception once work has started (a solver crashing
the harness mid-run) keeps its full traceback: that is where it is needed to
find the bug, and the files written so far stay valid (they are replaced
atomically). 130 and 143 interrupted (Ctrl-C, SIGTERM); 141 closed pipe.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

from cfbench.api import CfbenchError

#: largest seed: the ``seed`` column of results.parquet is an int64
SEED_MAX = 2**63 - 1
#: the share of the available memory an estimate may take
MEMORY_FRACTION = 0.5
#: bytes a (solver, instance) pair of ``cfbench run`` holds: its row in the results table
#: (0.4-0.9 kB measured with per-terminal metrics of the default scenarios), the copies made
#: while concatenating and sorting the rows, and the run's bookkeeping of missing and done pairs
RUN_BYTES_PER_SOLVE = 4096
#: bytes ``cfbench dataset`` holds per shard to label besides its instances (its work unit)
DATASET_BYTES_PER_SHARD = 1024


def seed(value: int, what: str = "seed") -> int:
    """``value`` if it is a seed every command can store; a one-line error otherwise."""
    if not 0 <= value <= SEED_MAX:
        raise CfbenchError(f"{what} {value} is out of range; valid: 0 .. {SEED_MAX} (2**63 - 1)")
    return value


def number_argument(convert, accept, expected: str):
    """An argparse ``type`` that reads a number with ``convert`` (``int`` or ``float``) and
    keeps it if ``accept(value)``; otherwise one ``ArgumentTypeError`` reading
    "expected {expected}, got 'TEXT'" (which the CLI prints as its one error line)."""
    import argparse

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


def _existing_ancestor(path: Path) -> Path:
    """The nearest of ``path`` and its parents that exists (``path`` made absolute)."""
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _probe(folder: Path) -> str | None:
    """Why no file can be created in the existing folder ``folder``, or None if one can
    (tried: a temporary file is created and removed)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return "permission denied"
    try:
        fd, name = tempfile.mkstemp(prefix=".cfbench-probe-", dir=folder)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    os.close(fd)
    os.unlink(name)
    return None


def _creatable(path: Path, flag: str) -> None:
    """``path`` (absent) can be created: its nearest existing parent is a writable folder."""
    ancestor = _existing_ancestor(path)
    if not ancestor.is_dir():
        raise CfbenchError(f"{flag} {str(path)!r} cannot be created: {str(ancestor)!r} is a file, not a folder")
    why = _probe(ancestor)
    if why:
        raise CfbenchError(f"{flag} {str(path)!r} cannot be created: {str(ancestor)!r} is not writable ({why})")


def output_dir(path: Path | str, flag: str = "--out") -> Path:
    """``path`` as an output folder: an existing writable folder, or one that can be created
    (nothing is created here). A one-line error naming it otherwise."""
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise CfbenchError(f"{flag} {str(path)!r} is a file; give a folder (existing or new)")
        why = _probe(path)
        if why:
            raise CfbenchError(f"{flag} {str(path)!r} is not writable ({why})")
    else:
        _creatable(path, flag)
    return path


def is_checkpoint(path: Path) -> bool:
    """Whether ``path`` looks like a file ``torch.save`` wrote (a zip archive)."""
    return zipfile.is_zipfile(path)


def is_html(path: Path) -> bool:
    """Whether ``path`` starts like an HTML document."""
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith(b"<!doctype html") or head.startswith(b"<html")


def output_file(path: Path | str, flag: str = "--out", kind: str | None = None,
                is_kind: Callable[[Path], bool] | None = None, example: str = "model.pt") -> Path:
    """``path`` as a file to write (or replace): not a folder, in a folder that exists or
    can be created, and writable; an existing file is replaced only if ``is_kind`` says it
    is a ``kind`` (so a mistyped path never overwrites something else). A one-line error
    naming it otherwise."""
    path = Path(path)
    if path.is_dir():
        raise CfbenchError(f"{flag} {str(path)!r} is a folder; give a file name, e.g. {str(path / example)!r}")
    if path.exists() and is_kind is not None:
        try:
            same_kind = path.is_file() and is_kind(path)
        except OSError as e:
            raise CfbenchError(f"{flag} {str(path)!r} cannot be read to check what it is ({e.strerror})") from None
        if not same_kind:
            raise CfbenchError(f"{flag} {str(path)!r} exists and is not {kind}; it would be overwritten: "
                               "remove it or give another file name")
    if path.exists():
        why = _probe(path.parent)
        if why or not os.access(path, os.W_OK):
            raise CfbenchError(f"{flag} {str(path)!r} cannot be replaced ({why or 'not writable'})")
    else:
        _creatable(path, flag)
    return path


def available_memory() -> int | None:
    """Bytes of memory available now (None if this system does not say)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _size(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n_bytes < 1024 or unit == "PiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError  # unreachable


def check_memory(estimate: float, what: str, largest: str) -> None:
    """Refuse ``estimate`` bytes (for ``what``, e.g. ``"--instances 10**9 x 2 solvers"``) when
    it exceeds :data:`MEMORY_FRACTION` of the available memory; ``largest`` ends the message
    with the valid range of the value."""
    available = available_memory()
    if available is None:
        return
    limit = MEMORY_FRACTION * available
    if estimate > limit:
        raise CfbenchError(f"{what} needs about {_size(estimate)} of memory, more than the limit of {_size(limit)} "
                           f"(half of the {_size(available)} available); {largest}")


def memory_limit() -> float | None:
    """The bytes :func:`check_memory` allows (None if unknown)."""
    available = available_memory()
    return None if available is None else MEMORY_FRACTION * available


def instance_bytes(problem, scenario: str) -> int:
    """Bytes of one instance of ``scenario`` (one instance sampled; a few milliseconds)."""
    one = problem.sample(scenario, 1, 0)
    return max(1, sum(int(getattr(a, "nbytes", 0)) for a in one.arrays.values()))


def run_size(n_instances: int, n_solvers: int) -> None:
    """``cfbench run``: the rows and bookkeeping of ``n_instances`` x ``n_solvers`` solves fit."""
    limit = memory_limit()
    if limit is None:
        return
    per_instance = RUN_BYTES_PER_SOLVE * n_solvers
    check_memory(n_instances * per_instance, f"--instances {n_instances} with {n_solvers} solver(s)",
                 f"valid: 1 .. {max(1, int(limit // per_instance))}")


def sample_size(n_samples: int, scenarios: list[str], problem, flag: str, copies: int = 1) -> None:
    """``n_samples`` instances of each scenario held at once (``copies`` times, e.g. the
    tensors a trainer derives from them) fit."""
    limit = memory_limit()
    if limit is None:
        return
    per_sample = copies * sum(instance_bytes(problem, s) for s in scenarios)
    check_memory(n_samples * per_sample, f"{flag} {n_samples} of {problem.name} {', '.join(scenarios)}",
                 f"valid: 1 .. {max(1, int(limit // per_sample))}")


def dataset_size(n_samples: int, shard_size: int, scenarios: list[str], problem, workers: int) -> None:
    """``cfbench dataset``: the work units of ``n_samples`` per scenario (one per shard) and
    ``workers`` shards in memory at once (instances and labels: twice the instances) fit."""
    limit = memory_limit()
    if limit is None:
        return
    shard = 2 * shard_size * max(instance_bytes(problem, s) for s in scenarios)
    check_memory(workers * shard, f"--shard-size {shard_size} with {workers} worker(s)",
                 f"valid: 1 .. {max(1, int(limit // (workers * shard / shard_size)))}")
    n_shards = -(-n_samples // shard_size)
    check_memory(n_shards * DATASET_BYTES_PER_SHARD + workers * shard,
                 f"--samples {n_samples} in shards of {shard_size}",
                 f"valid: 1 .. {max(1, int((limit - workers * shard) // DATASET_BYTES_PER_SHARD) * shard_size)}")
