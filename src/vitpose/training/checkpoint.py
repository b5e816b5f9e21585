"""Training checkpoints: atomic writes, full training state, RNG states of every rank.

A training checkpoint is a plain dict that ``torch.load(weights_only=True)`` reads:

* ``state_dict``: the model in the official layout (so ``vitpose.load_weights``,
  ``vitpose.load_model``, ``vitpose split`` and the original code read it as a model file);
* ``meta``: ``vitpose_config`` (the architecture as JSON, as ``vitpose.save_checkpoint`` writes),
  ``epoch`` and ``iteration``;
* ``optimizer``, ``scaler`` (mixed-precision loss scale), ``scheduler`` (the schedule is a pure
  function of the iteration; this records it with the epoch length it was computed with);
* ``epoch`` (epochs completed), ``iteration`` (optimiser steps taken), ``best`` (best validation
  value so far), ``metrics`` (the last validation results);
* ``rng``: Python, NumPy, torch (and CUDA) generator states, one entry per rank;
* ``config``: the resolved experiment config as plain dicts and lists.

Files are written through `vitpose.fileio.atomic_open` (a temporary name in the same folder,
flushed to disk and renamed over the target), so a crash or a full disk never leaves a
half-written ``latest.pth``: the previous file stays intact until the new one is complete.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vitpose.checkpoints import read_checkpoint
from vitpose.errors import CheckpointError
from vitpose.fileio import atomic_open, clean_stale_temporaries

__all__ = [
    "atomic_save",
    "atomic_copy",
    "repair_after_kill",
    "capture_rng_state",
    "restore_rng_state",
    "build_training_state",
    "load_training_state",
    "TRAINING_KEYS",
    "WriteBudget",
]

#: Keys a training checkpoint must hold to be resumed from.
TRAINING_KEYS = ("state_dict", "optimizer", "epoch", "iteration", "rng", "config")


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically (`vitpose.fileio.atomic_open`: temporary file,
    fsync, rename); stale temporaries of killed writers in the folder are removed first.

    Args:
        obj: what to save (plain containers, tensors, numbers and strings for
            ``weights_only`` loading).
        path: destination; parent folders are created.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(path.parent)
    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)
    return path


def atomic_copy(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a file atomically (e.g. ``latest.pth`` -> ``best.pth``)."""
    dst = Path(dst)
    with open(src, "rb") as source, atomic_open(dst, "wb") as handle:
        shutil.copyfileobj(source, handle, 1 << 20)
    return dst


class WriteBudget:
    """When to write ``latest.pth`` so that writing it takes at most `share` of the run's time.

    A write is due when the previous one took at most `share` of the time since it began (the
    first is always due). Times come from the caller's clock, so the rule is testable without
    sleeping.
    """

    def __init__(self, share: float) -> None:
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        self.share = share
        self._last: tuple[float, float] | None = None  # (start, duration) of the last write

    def due(self, now: float) -> bool:
        if self._last is None or self.share >= 1:
            return True
        start, duration = self._last
        return duration <= self.share * (now - start)

    def wrote(self, start: float, end: float) -> None:
        """Record a write that ran from `start` to `end`."""
        self._last = (start, max(0.0, end - start))


# --------------------------------------------------------------------------------------------
# RNG states as weights_only-safe data
# --------------------------------------------------------------------------------------------


def capture_rng_state() -> dict[str, Any]:
    """This process's Python, NumPy, torch CPU (and CUDA) generator states as plain data."""
    version, mt_state, gauss = random.getstate()
    np_state = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": {"version": version, "state": list(mt_state), "gauss": gauss},
        "numpy": {
            "kind": str(np_state[0]),
            "key": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` returned."""
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(v) for v in py["state"]), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state((
        npy["kind"], npy["key"].numpy().astype(np.uint32), int(npy["pos"]),
        int(npy["has_gauss"]), float(npy["gauss"]),
    ))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = list(state["cuda"])
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


# --------------------------------------------------------------------------------------------
# The training state
# --------------------------------------------------------------------------------------------


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_cpu(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_cpu(v) for v in value)
    return value


def build_training_state(
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler_state: Mapping[str, Any],
    epoch: int,
    iteration: int,
    iters_per_epoch: int,
    config: Mapping[str, Any],
    rng: list[dict[str, Any]],
    best: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the checkpoint dict (see the module docstring), all tensors on the CPU.

    Args:
        model: the unwrapped model (no DDP ``module.`` prefix); its ``cfg`` is recorded when it
            has a ``to_dict``.
        optimizer: its ``state_dict`` is stored.
        scaler_state: ``GradScalerStep.state_dict()``.
        epoch: epochs completed.
        iteration: optimiser steps taken.
        iters_per_epoch: iterations per epoch of this run (the schedule's time base).
        config: the resolved experiment config as plain data.
        rng: generator states indexed by rank.
        best: ``{"metric", "value", "epoch"}`` of the best validation so far, if any.
        metrics: the latest validation results, if any.

    Raises:
        CheckpointError: the model holds NaN or infinite values (never saved, so the last good
            checkpoint stays the one to resume from).
    """
    state_dict = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    bad = [k for k, v in state_dict.items()
           if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(
            f"refusing to save a model with NaN/inf values ({', '.join(bad[:5])}"
            f"{', ...' if len(bad) > 5 else ''}); the previous checkpoint is kept"
        )
    cfg = getattr(model, "cfg", None)
    meta: dict[str, Any] = {"epoch": int(epoch), "iteration": int(iteration)}
    if cfg is not None and hasattr(cfg, "to_dict"):
        meta["vitpose_config"] = json.dumps(cfg.to_dict())
    return {
        "state_dict": state_dict,
        "meta": meta,
        "optimizer": _to_cpu(optimizer.state_dict()),
        "scaler": _to_cpu(dict(scaler_state)),
        "scheduler": {"iteration": int(iteration), "iters_per_epoch": int(iters_per_epoch)},
        "epoch": int(epoch),
        "iteration": int(iteration),
        "best": dict(best) if best else None,
        "metrics": _plain_metrics(metrics),
        "rng": [_to_cpu(r) for r in rng],
        "config": dict(config),
    }


def _plain_metrics(metrics: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if metrics is None:
        return None
    out: dict[str, Any] = {}
    for name, value in metrics.items():
        if isinstance(value, Mapping):
            out[str(name)] = {str(k): float(v) for k, v in value.items()
                              if isinstance(v, (int, float))}
        elif isinstance(value, (int, float)):
            out[str(name)] = float(value)
    return out


def load_training_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training checkpoint safely and check that it can be resumed from.

    Raises:
        CheckpointError: unreadable file, or a model-only file (released weights, ``split``
            output): those go in ``model.weights``, not ``--resume``.
    """
    state = read_checkpoint(path)
    missing = [k for k in TRAINING_KEYS if k not in state]
    if missing:
        raise CheckpointError(
            f"{path} is not a training checkpoint (no {', '.join(missing)}); to start from "
            "model weights use --set model.weights=PATH instead of --resume"
        )
    repair_after_kill(path, state)
    return state


def _saved_epoch(path: Path) -> int | None:
    try:  # memory-mapped: reads the small entries, not the tensors
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(obj["epoch"])
    except Exception:  # noqa: BLE001 - unreadable or not ours: treat as absent
        return None


def repair_after_kill(path: str | os.PathLike, state: Mapping[str, Any]) -> list[Path]:
    """Finish what a run killed during its last checkpoint write left undone.

    ``latest.pth`` is written first, then copied to ``best.pth`` and ``epoch_{n}.pth``; a kill
    between those steps leaves an orphan temporary and a snapshot that the resumed run would
    never write (it continues with the next epoch). Here, in the checkpoint's folder: stale
    temporaries are removed, and the snapshots due at the checkpoint's epoch (``epoch_{n}.pth``
    every ``runtime.save_interval`` epochs; ``best.pth`` if this epoch was the best) are copied
    from it when missing or older.

    Returns:
        the snapshot files written.
    """
    path = Path(path)
    folder = path.parent
    clean_stale_temporaries(folder, include_own=True)
    written: list[Path] = []
    try:
        epoch = int(state["epoch"])
        runtime = (state.get("config") or {}).get("runtime") or {}
        interval = int(runtime.get("save_interval") or 0)
    except (TypeError, ValueError, AttributeError):
        return written
    due = []
    if interval > 0 and epoch > 0 and epoch % interval == 0:
        due.append(folder / f"epoch_{epoch}.pth")
    best = state.get("best")
    if isinstance(best, Mapping) and best.get("epoch") == epoch:
        due.append(folder / "best.pth")
    for target in due:
        if target.resolve() == path.resolve():
            continue
        if not target.exists() or _saved_epoch(target) != epoch:
            written.append(atomic_copy(path, target))
    return written
