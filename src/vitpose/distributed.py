"""Process-group helpers with single-process defaults.

Every helper answers sensibly when ``torch.distributed`` is not initialised (rank 0, world size
1, identity reductions), so callers never branch on "am I distributed?". The process group is
created from the environment that ``torchrun`` sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``): NCCL when CUDA is available, Gloo otherwise.

This module is a leaf: it imports nothing else from ``vitpose``. It never patches ``print``.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist

__all__ = [
    "init_distributed",
    "destroy_distributed",
    "is_enabled",
    "get_rank",
    "get_world_size",
    "get_local_rank",
    "local_device_index",
    "backend_for",
    "is_main_process",
    "barrier",
    "all_reduce_mean",
    "all_reduce_sum",
    "all_gather_object",
    "broadcast_object",
    "main_first",
    "counter_add",
    "shared_set",
    "shared_get",
]

T = TypeVar("T")

_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def _env_int(name: str) -> int:
    raw = os.environ[name]
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


def init_distributed(backend: str | None = None, timeout_s: float = 1800.0) -> bool:
    """Create the default process group from the torchrun environment, if there is one.

    Args:
        backend: ``"nccl"`` or ``"gloo"``; by default NCCL when CUDA is available, else Gloo.
        timeout_s: timeout of collective operations, in seconds.

    Returns:
        True if a process group is active after the call (created now or earlier), False when
        the torchrun variables are absent and the run stays single-process.

    Raises:
        ValueError: the torchrun variables are only partly set, or not integers.
    """
    if is_enabled():
        return True
    present = [name for name in _TORCHRUN_VARS if name in os.environ]
    if not present:
        return False
    missing = [name for name in _TORCHRUN_VARS if name not in os.environ]
    if missing:
        raise ValueError(
            f"distributed launch needs {', '.join(_TORCHRUN_VARS)} in the environment; "
            f"{', '.join(missing)} missing (launch with torchrun, or unset {', '.join(present)})"
        )
    rank, world_size = _env_int("RANK"), _env_int("WORLD_SIZE")
    _env_int("LOCAL_RANK")  # must be an integer too (read again by local_device_index)
    if not 0 <= rank < world_size:
        raise ValueError(f"RANK={rank} is outside [0, WORLD_SIZE={world_size})")
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        # one GPU per process: with a per-rank CUDA_VISIBLE_DEVICES only device 0 is visible
        torch.cuda.set_device(local_device_index())
    dist.init_process_group(
        backend=backend,
        init_method="env://",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    return True


def destroy_distributed() -> None:
    """Tear down the default process group if one is active (no-op otherwise)."""
    if is_enabled():
        dist.destroy_process_group()


def is_enabled() -> bool:
    """Return True when a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Return the global rank of this process (0 when not distributed)."""
    return dist.get_rank() if is_enabled() else 0


def get_world_size() -> int:
    """Return the number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_enabled() else 1


def local_device_index() -> int:
    """The CUDA device of this process: ``LOCAL_RANK`` modulo the GPUs it can see.

    Plain torchrun shows every GPU to every process (device = local rank); clusters that give
    each process its own ``CUDA_VISIBLE_DEVICES`` show one (device 0). 0 without CUDA.
    """
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    local = int(os.environ.get("LOCAL_RANK", "0") or 0)
    return local % count if count else 0


def backend_for(device: str | torch.device | None) -> str | None:
    """The process-group backend for a run on `device`: Gloo for CPU runs (also on a machine with
    GPUs, where NCCL would be the default and cannot move CPU tensors), else None (default)."""
    if device is not None and torch.device(device).type == "cpu":
        return "gloo"
    return None


def get_local_rank() -> int:
    """Return the rank of this process on its machine (``LOCAL_RANK``; 0 when not distributed)."""
    if not is_enabled():
        return 0
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """Return True on global rank 0 (always True when not distributed)."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for every process (no-op when not distributed)."""
    if is_enabled():
        dist.barrier()


def _collective_device() -> torch.device:
    # NCCL only reduces CUDA tensors; Gloo reduces CPU tensors.
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _all_reduce(value: float | torch.Tensor, mean: bool) -> float | torch.Tensor:
    is_tensor = isinstance(value, torch.Tensor)
    if not is_enabled():
        return value.clone() if is_tensor else float(value)
    if is_tensor:
        tensor = value.detach().to(_collective_device(), copy=True)
        if not tensor.is_floating_point():
            tensor = tensor.double()
    else:
        tensor = torch.tensor(float(value), dtype=torch.float64, device=_collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    if mean:
        tensor /= get_world_size()
    if is_tensor:
        return tensor.to(value.device)
    return float(tensor.item())


def all_reduce_mean(value: float | torch.Tensor) -> float | torch.Tensor:
    """Average a number or tensor over all processes.

    Args:
        value: a Python number or a tensor of the same shape on every process.

    Returns:
        The mean, of the input's kind: a float for a number, a new tensor on the input's device
        for a tensor (integer tensors come back as float64). The input is not modified.
    """
    return _all_reduce(value, mean=True)


def all_reduce_sum(value: float | torch.Tensor) -> float | torch.Tensor:
    """Sum a number or tensor over all processes (same conventions as :func:`all_reduce_mean`)."""
    return _all_reduce(value, mean=False)


def all_gather_object(obj: Any) -> list[Any]:
    """Collect a picklable object from every process.

    Args:
        obj: this process's object.

    Returns:
        A list indexed by rank (``[obj]`` when not distributed).
    """
    if not is_enabled():
        return [obj]
    gathered: list[Any] = [None] * get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Send a picklable object from rank ``src`` to every process.

    Args:
        obj: the object on rank ``src``; ignored on the other ranks.
        src: the sending rank.

    Returns:
        Rank ``src``'s object, on every process (``obj`` itself when not distributed).
    """
    if not is_enabled():
        return obj
    box = [obj if get_rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def main_first(fn: Callable[[], T],
               catch: type[Exception] | tuple[type[Exception], ...] = Exception) -> T:
    """``fn()`` on rank 0, then on the other ranks (only ``fn()`` when not distributed).

    What rank 0 writes into a cache shared by the ranks (an exported graph, a compiled model, a
    remembered choice) the others then read instead of writing it at the same time. An
    exception of `catch` raised by ``fn`` on any rank is raised on every rank (rank 0's first;
    the others then do not run ``fn``), so that no rank waits for the others forever.
    """
    if not is_enabled():
        return fn()
    result: Any = None
    error: Exception | None = None
    if get_rank() == 0:
        try:
            result = fn()
        except catch as e:
            error = e
    error = broadcast_object(error)
    if error is None and get_rank() != 0:
        try:
            result = fn()
        except catch as e:
            error = e
    error = next((e for e in all_gather_object(error) if e is not None), None)
    if error is not None:
        raise error
    return result


# ---------------------------------------------------------------------------------------------
# Shared counters (progress of work that is not in lock-step)
# ---------------------------------------------------------------------------------------------

_LOCAL_COUNTERS: dict[str, int] = {}
_LOCAL_SHARED: dict[str, Any] = {}


def counter_add(name: str, amount: int = 1) -> int:
    """Add `amount` to the job-wide counter `name` and return its new value.

    Unlike a collective, this never waits for the other processes: it goes through the key-value
    store of the process group (the one torchrun's rendezvous set up), so ranks with different
    amounts of work can count into one total (``amount=0`` reads it). Without a process group
    the counter is local to this process.
    """
    if not is_enabled():
        _LOCAL_COUNTERS[name] = _LOCAL_COUNTERS.get(name, 0) + amount
        return _LOCAL_COUNTERS[name]
    return int(_store().add(f"vitpose/{name}", amount))


def shared_set(name: str, value: Any) -> None:
    """Publish a JSON-serialisable `value` under `name` for any process to read with
    :func:`shared_get` (no waiting: the writer goes on at once)."""
    if not is_enabled():
        _LOCAL_SHARED[name] = json.loads(json.dumps(value))
        return
    _store().set(f"vitpose/{name}", json.dumps(value))


def shared_get(name: str) -> Any:
    """The value published under `name` by :func:`shared_set` (waits until it is set, up to the
    process group's timeout; KeyError without a process group when it was never set)."""
    if not is_enabled():
        return _LOCAL_SHARED[name]
    return json.loads(_store().get(f"vitpose/{name}"))


def _store() -> dist.Store:
    from torch.distributed import distributed_c10d

    # NOTE: the default group's store (torchrun's rendezvous store) has no public accessor in
    # torch 2.x; this private one exists since 1.x.
    return distributed_c10d._get_default_store()
