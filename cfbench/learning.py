"""Shared plumbing of learned solvers: seeding, checkpoints, training logs, compilation.

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
import threading
import time
import warnings
from contextlib import contextmanager
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


def compile_for_inference(solver: str, fn: Callable, warm_calls: list[tuple], *, dynamic: bool | None = None) -> Callable:
    """``fn`` through ``torch.compile`` (inductor), compiled now by calling it on each argument
    tuple of ``warm_calls`` under ``torch.inference_mode()`` (the sizes the solver will call it
    with; the values do not matter), so no later call compiles. Inductor caches the kernels on
    disk, per thread count. It compiles in this process (``compile_threads=1``): its pool of
    compile workers would outlive a harness worker. Any failure (no C++ compiler, above all) is
    one line naming ``compile=false``. A graph that several threads call at once, or that must
    check nothing at call time: ``compile_graph``."""
    import torch

    compiled = torch.compile(fn, dynamic=dynamic)
    with _compiling(solver):
        for args in warm_calls:
            compiled(*_inference_copy(args))
    return compiled


def compile_graph(solver: str, fn: Callable, example_args: tuple, *, cpp_wrapper: bool = False) -> Callable:
    """``fn`` (tensors in, a tuple of tensors out) traced once, at the shapes of ``example_args``,
    into an FX graph (``make_fx`` on fake tensors; the tensors ``fn`` reads from its closure, its
    weights, become the graph's constants) and compiled by inductor (``torch._inductor.compile``)
    without dynamo. A call runs the compiled code and nothing else: no guards are checked, so
    several threads may call it at once (dynamo's guard checks are not thread-safe,
    pytorch/pytorch#123177), and with ``cpp_wrapper`` the code releases the GIL. In exchange the
    graph fits only the example's shapes: the returned callable takes arguments of exactly those
    shapes and dtypes (``ValueError`` naming them otherwise), made contiguous, and returns ``fn``'s
    tuple. Inductor caches the compiled graph on disk, keyed by the graph and the values of its
    constants (other weights compile anew); kernels are compiled for torch's thread count at this
    call. Compiled in this process, and any failure is one line naming ``compile=false``, as
    ``compile_for_inference``."""
    import torch
    from torch._functorch import config as functorch_config
    from torch.fx.experimental.proxy_tensor import make_fx

    expected = [(tuple(a.shape), a.dtype) for a in example_args]
    # AOTAutograd's own cache cannot key a traced graph that holds a float constant such as
    # -inf (a logged traceback per graph); inductor's graph cache, which is what saves the time, can
    with _compiling(solver, cpp_wrapper=cpp_wrapper), functorch_config.patch(enable_autograd_cache=False):
        args = [a.clone() for a in example_args]
        graph = make_fx(fn, tracing_mode="fake", _allow_non_fake_inputs=True)(*args)
        compiled = torch._inductor.compile(graph, args)

    def call(*args):
        got = [(tuple(a.shape), a.dtype) for a in args]
        if got != expected:
            raise ValueError(f"{solver}: the compiled graph takes {expected}, got {got}")
        return tuple(compiled(*(a.contiguous() for a in args)))

    return call


@contextmanager
def _compiling(solver: str, **inductor_options):
    """Inside: inference mode, inductor compiling in this process with ``inductor_options``,
    torch's own deprecation warnings silenced (not the user's concern); any failure leaves as one
    line naming ``compile=false``."""
    import torch
    from torch._inductor import config as inductor_config

    _progress_bars_on_a_thread_lock()
    try:
        with (torch.inference_mode(), warnings.catch_warnings(),
              inductor_config.patch(compile_threads=1, **inductor_options)):
            for category in (FutureWarning, DeprecationWarning):
                warnings.simplefilter("ignore", category)
            yield
    except Exception as exc:  # noqa: BLE001 - inductor raises several types; the first line says which
        message = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:200]
        raise CfbenchError(f"{solver}: compile=true failed ({message}); torch.compile needs a C++ compiler "
                           f"(g++ or clang++ on PATH); run with compile=false") from None


def _progress_bars_on_a_thread_lock() -> None:
    """torch.fx's (disabled) progress bars would create tqdm's lock as a multiprocessing semaphore,
    which a harness worker that is stopped leaves behind (a warning when ``cfbench run`` exits);
    a thread lock, set first, serves them."""
    from tqdm import tqdm

    if getattr(tqdm, "_lock", None) is None:
        tqdm.set_lock(threading.RLock())


def _inference_copy(value):
    """``value`` with every tensor in its tuples, lists and dicts cloned (called under inference
    mode: inference tensors, as ``solve`` passes them, which the compiled graphs' guards tell from
    ordinary ones)."""
    import torch

    if isinstance(value, dict):
        return {k: _inference_copy(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_inference_copy(v) for v in value)
    return value.clone() if isinstance(value, torch.Tensor) else value


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
