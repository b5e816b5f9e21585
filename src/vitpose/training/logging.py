"""Training metrics: smoothed meters, a JSON-lines log and a rank-0 progress bar.

``SmoothedValue`` keeps a window of recent values plus a running total; ``MetricLogger`` holds
one per metric and all-reduces totals across processes when asked. ``JsonLinesWriter`` appends
one JSON object per line (iteration, epoch, loss, lr, time, data_time, memory, ...), written by
the main process only. ``progress`` wraps an iterable in tqdm on rank 0 and leaves it untouched
elsewhere. Nothing here prints; the CLI decides what reaches the console.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch

from vitpose import distributed

__all__ = [
    "SmoothedValue",
    "MetricLogger",
    "JsonLinesWriter",
    "read_json_lines",
    "peak_memory_mb",
    "progress",
    "Timer",
]

T = TypeVar("T")


def _to_float(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"expected a scalar tensor, got shape {tuple(value.shape)}")
        return float(value.detach().item())
    return float(value)


class SmoothedValue:
    """A metric seen over a window of recent updates and over the whole run.

    Args:
        window_size: how many recent values ``median``, ``avg`` and ``max`` look at.
        fmt: ``str.format`` template used by ``str()``; it may use ``median``, ``avg``,
            ``global_avg``, ``max`` and ``value``.
    """

    def __init__(self, window_size: int = 20, fmt: str = "{median:.4f} ({global_avg:.4f})") -> None:
        self.window: deque[float] = deque(maxlen=window_size)
        self.total = 0.0  # this process only
        self.count = 0
        self.fmt = fmt
        # (count, total) over all processes, from the last synchronisation; reset by update().
        self._synced: tuple[int, float] | None = None

    def update(self, value: float | torch.Tensor, n: int = 1) -> None:
        """Record ``value``, counted ``n`` times in the run-wide average (e.g. a batch mean)."""
        value = _to_float(value)
        self.window.append(value)
        self.total += value * n
        self.count += n
        self._synced = None

    def synchronize_between_processes(self) -> None:
        """Sum ``count`` and ``total`` over all processes for ``global_avg``.

        The window and the local totals stay as they are, so calling this twice is harmless.
        """
        if not distributed.is_enabled():
            return
        totals = distributed.all_reduce_sum(
            torch.tensor([float(self.count), self.total], dtype=torch.float64)
        )
        self._synced = (int(round(float(totals[0]))), float(totals[1]))

    @property
    def median(self) -> float:
        """Median of the window (nan when empty)."""
        if not self.window:
            return math.nan
        return float(torch.tensor(list(self.window), dtype=torch.float64).median().item())

    @property
    def avg(self) -> float:
        """Mean of the window (nan when empty)."""
        return sum(self.window) / len(self.window) if self.window else math.nan

    @property
    def global_avg(self) -> float:
        """Count-weighted mean over every update (after synchronising: over every process)."""
        count, total = self._synced if self._synced is not None else (self.count, self.total)
        return total / count if count else math.nan

    @property
    def max(self) -> float:
        """Largest value in the window (nan when empty)."""
        return max(self.window) if self.window else math.nan

    @property
    def value(self) -> float:
        """The latest value (nan when empty)."""
        return self.window[-1] if self.window else math.nan

    def __str__(self) -> str:
        return self.fmt.format(
            median=self.median,
            avg=self.avg,
            global_avg=self.global_avg,
            max=self.max,
            value=self.value,
        )


class MetricLogger:
    """A named set of :class:`SmoothedValue` meters.

    Args:
        delimiter: separator between meters in ``str()``.
        window_size: window of meters created on first ``update``.
    """

    def __init__(self, delimiter: str = "  ", window_size: int = 20) -> None:
        self.meters: dict[str, SmoothedValue] = {}
        self.delimiter = delimiter
        self.window_size = window_size

    def add_meter(self, name: str, meter: SmoothedValue) -> None:
        """Register a meter with its own window or format."""
        self.meters[name] = meter

    def update(self, n: int = 1, **values: float | torch.Tensor) -> None:
        """Record one value per keyword (numbers or scalar tensors), each counted ``n`` times.

        None values are ignored.
        """
        for name, value in values.items():
            if value is None:
                continue
            if name not in self.meters:
                self.meters[name] = SmoothedValue(self.window_size)
            self.meters[name].update(value, n=n)

    def __getitem__(self, name: str) -> SmoothedValue:
        return self.meters[name]

    def __contains__(self, name: str) -> bool:
        return name in self.meters

    def synchronize_between_processes(self) -> None:
        """All-reduce every meter's run-wide totals (no-op when not distributed)."""
        # Iterate in sorted order so every rank issues the collectives in the same sequence.
        for name in sorted(self.meters):
            self.meters[name].synchronize_between_processes()

    def averages(self, synchronize: bool = True) -> dict[str, float]:
        """Return each meter's run-wide average.

        Args:
            synchronize: all-reduce totals across processes first. Every process must call this
                together when distributed, with the same set of meters.

        Returns:
            ``{name: global_avg}``.
        """
        if synchronize:
            self.synchronize_between_processes()
        return {name: meter.global_avg for name, meter in self.meters.items()}

    def __str__(self) -> str:
        return self.delimiter.join(f"{name}: {meter}" for name, meter in self.meters.items())


class JsonLinesWriter:
    """Append one JSON object per line to a log file.

    Only the main process writes unless ``enabled`` is given. Tensors and numpy scalars are
    turned into Python numbers; non-finite floats are written as ``null`` so every line is
    valid JSON.

    Args:
        path: file to append to; parent folders are created.
        enabled: whether this process writes; defaults to ``distributed.is_main_process()``.
    """

    def __init__(self, path: str | Path, enabled: bool | None = None) -> None:
        self.path = Path(path)
        self.enabled = distributed.is_main_process() if enabled is None else enabled
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line; typical keys are ``iteration``, ``epoch``, ``loss``,
        ``lr``, ``time`` (s per iteration), ``data_time`` (s) and ``memory`` (MiB)."""
        if not self.enabled:
            return
        line = json.dumps({str(k): _jsonable(v) for k, v in record.items()}, allow_nan=False)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        value = value.item() if value.numel() == 1 else value.tolist()
    elif hasattr(value, "item") and hasattr(value, "dtype"):  # numpy scalar or 0-d array
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def read_json_lines(path: str | Path) -> list[dict[str, Any]]:
    """Read a file written by :class:`JsonLinesWriter` (blank lines skipped)."""
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def peak_memory_mb(device: torch.device | str | None = None) -> float:
    """Peak memory of this process in MiB.

    Args:
        device: a CUDA device reports ``torch.cuda.max_memory_allocated``; anything else reports
            the process's peak resident set size (0.0 where the platform cannot tell).

    Returns:
        Mebibytes.
    """
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Linux reports KiB, macOS bytes.
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10
    except (ImportError, OSError):
        return 0.0


def progress(
    iterable: Iterable[T],
    total: int | None = None,
    desc: str | None = None,
    enabled: bool | None = None,
    **tqdm_kwargs: Any,
) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar on the main process only.

    Args:
        iterable: what to iterate.
        total: number of items, when ``len(iterable)`` does not give it.
        desc: label shown before the bar.
        enabled: force the bar on or off; defaults to ``distributed.is_main_process()``.
        **tqdm_kwargs: passed to ``tqdm`` (e.g. ``leave=False``, ``file=...``).

    Returns:
        The tqdm-wrapped iterable, or ``iterable`` itself when the bar is off.
    """
    if enabled is None:
        enabled = distributed.is_main_process()
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    tqdm_kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, total=total, desc=desc, **tqdm_kwargs)


class Timer:
    """Measure data-loading and step time per iteration of a loop.

    Example: ``for batch in timer.wrap(loader): ...`` then read ``timer.data_time`` (seconds
    spent waiting for the batch) and ``timer.iter_time`` (seconds for the whole previous
    iteration) inside the loop body.
    """

    def __init__(self) -> None:
        self.data_time = 0.0
        self.iter_time = 0.0

    def wrap(self, iterable: Iterable[T]) -> Iterator[T]:
        """Yield from ``iterable`` while updating ``data_time`` and ``iter_time``."""
        end = time.perf_counter()
        for item in iterable:
            self.data_time = time.perf_counter() - end
            yield item
            now = time.perf_counter()
            self.iter_time = now - end
            end = now
