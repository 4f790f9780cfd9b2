"""Shared plumbing of learned solvers: seeding, checkpoints, training logs.

Checkpoints are plain dicts of tensors, numbers, strings and lists saved with
``torch.save`` and read back with ``torch.load(weights_only=True)``, which
refuses to unpickle arbitrary objects: a shipped or downloaded weight file
cannot run code. torch is imported lazily so that the harness and the
non-learned solvers never pay for it.
"""

from __future__ import annotations

import os
import pickle
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from cfbench.api import CfbenchError, Option, parse_options

CHECKPOINT_FORMAT = 1


def training_options(solver: str, spec: tuple[Option, ...], options: dict[str, Any]) -> dict[str, Any]:
    """Every training option of ``spec``: the typed value set (not None), else its default.
    An undeclared key or an ill-typed value is a one-line error naming it and what is valid."""
    return parse_options(spec, {k: v for k, v in options.items() if v is not None}, f"{solver} training")


def seed_everything(seed: int) -> None:
    """Seed Python, numpy's legacy global generator and torch (CPU)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def save_checkpoint(path: Path, checkpoint: dict[str, Any]) -> Path:
    """Write ``checkpoint`` (plain types and tensors only) atomically."""
    import torch

    path = Path(path)
    if path.is_dir():
        raise CfbenchError(f"cannot write the checkpoint to {str(path)!r}: it is a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        torch.save({"format": CHECKPOINT_FORMAT, **checkpoint}, tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # the previous checkpoint (if any) stays, and no .tmp beside it
        raise
    return path


def check_training_sizes(solver: str, *, n_train: int, n_validation: int, batch_size: int, epochs: int,
                         samples_flag: str = "--samples", validation_flag: str = "validation_fraction") -> None:
    """One-line errors for a training set that cannot train: no training instance, no
    validation instance, a batch size or epoch count below 1. ``n_train`` and
    ``n_validation`` are per scenario, as the solver's ``train`` splits them."""
    if epochs < 1:
        raise CfbenchError(f"{solver} training: epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise CfbenchError(f"{solver} training: batch_size must be >= 1, got {batch_size}")
    if n_validation < 1:
        raise CfbenchError(f"{solver} training: {validation_flag} gives {n_validation} validation instance(s); "
                           f"valid: >= 1")
    if n_train < 1:
        raise CfbenchError(f"{solver} training: {samples_flag} leaves {n_train} training instance(s) after "
                           f"{n_validation} for validation; give more samples")


def _unpickling_cause(exc: Exception) -> str:
    """The line of torch's weights-only refusal that names what was refused (e.g. ``Trying to
    load unsupported GLOBAL posix.system ...``), not its advice around it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    named = [line for line in lines if "GLOBAL" in line or "nsupported" in line]
    return ((named or lines or ["(no message)"])[0])[:200]


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (no arbitrary code on load)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CfbenchError(f"no weight file {str(path)!r}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CfbenchError(f"refusing to load {str(path)!r}: not plain tensors and data "
                           f"(weights_only=True): {_unpickling_cause(exc)}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:  # truncated or not a torch file at all
        raise CfbenchError(f"cannot read {str(path)!r} as a checkpoint (damaged or not a torch file): "
                           f"{_unpickling_cause(exc)}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CfbenchError(f"{str(path)!r} is not a cfbench checkpoint (format {CHECKPOINT_FORMAT})")
    return checkpoint


@dataclass
class TrainingLog:
    """Per-epoch history plus wall time; ``report`` receives each finished epoch."""

    report: Callable[[dict], None] | None = None
    history: list[dict] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def epoch(self, **values: float) -> None:
        values = {"elapsed_s": time.perf_counter() - self.started, **values}
        self.history.append(values)
        if self.report is not None:
            self.report(values)

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started
