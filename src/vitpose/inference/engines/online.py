"""Calibrating during a job: ``--backend auto`` on a job long enough to repay a calibration.

The job's first call runs on the safe engine (our eager torch float32) at once, so the first
result never waits. Before its second call, `CalibratingEngine` asks for the candidates
(``prepare``: `select_engine` builds and gates them, as an up-front calibration does) and then
times them on the job's own calls: each call goes to the next candidate in turn (every
candidate passed the accuracy gate, so each call's heatmaps are a result of the job), and
after `ROUNDS` timed calls of each the fastest is kept (``decide`` records and remembers it).
Each turn of a candidate is two calls, and only the second is timed: the first warms it up
and lets the previous candidate's threads go idle (ONNX Runtime's and OpenMP's threads spin for
a while after a call; the engine called right after one ran 25-35% slower, measured on a 2-core
Zen 4, so a round robin of single timed calls always handicapped the same candidate). From
then on every call goes to the fastest, and the others are released. Candidates more than
`near_tie` times slower than the fastest after their first timed call leave the rotation early.

What the job pays for it: the candidates' export, compilation and gate (announced by one log
line before they start) and the calls the slower candidates ran. What it gets: the rest of the
job on the fastest engine, and the choice remembered for every later job.

A candidate that fails on a job call (a runtime error at a new shape) leaves the rotation and
the call runs again on the safe engine: the job never fails because of a calibration.

The engine's `backend`, `dtype` and `label` are those of the engine that ran the last call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch

from .base import Engine
from .choice import fastest

__all__ = ["ROUNDS", "CalibratingEngine"]

log = logging.getLogger(__name__)

#: turns of each candidate (an untimed call, then a timed one); the fastest timed call counts
ROUNDS = 2


class CalibratingEngine(Engine):
    """The safe engine first, then the fastest of the gated candidates, timed on the job's calls.

    Args:
        safe: the engine of the first call (and of any call a candidate fails), labelled
            `safe_label` among the candidates.
        prepare: builds and gates the candidates: label -> engine of those that passed (the
            safe engine may be among them; it is added when missing). Called once, before the
            job's second call. An exception in it leaves the job on the safe engine.
        decide: called once with each candidate's seconds per crop by call size (rows), the
            accumulated calibration overhead (seconds spent in ``prepare``) and the calls
            timed; returns the label to keep (it also records and remembers the choice).
        near_tie: candidates slower than this factor times the fastest after their first
            timed call leave the rotation.
        rounds: turns of each candidate (an untimed call, then a timed one).
        chunk: while timing, a job call of more rows is run in parts of this many rows, each
            a call of the next candidate.
        release: called after the losers are dropped (gives their memory back).
        clock: seconds now (`time.perf_counter`; tests inject a clock that the fake engines
            advance, so that no test depends on a machine's timing).
    """

    def __init__(self, safe: Engine, safe_label: str,
                 prepare: Callable[[], Mapping[str, Engine]],
                 decide: Callable[[dict[str, dict[int, float]], float, int], str], *,
                 near_tie: float = 1.5, rounds: int = ROUNDS, chunk: int = 8,
                 release: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.safe, self.safe_label = safe, safe_label
        self.model = getattr(safe, "model", None)  # whose weights the safe engine runs
        self._prepare, self._decide, self._release = prepare, decide, release
        self.near_tie, self.rounds = float(near_tie), max(1, int(rounds))
        self.chunk = max(1, int(chunk))
        self.current: Engine = safe
        self.state = "first"  # first -> timing -> done
        self._lock = threading.Lock()
        self._engines: dict[str, Engine] = {}
        self._order: list[str] = []
        self._turn = 0
        self._last: str | None = None  # the engine of the previous call
        self._settled: str | None = None  # the engine whose untimed call just ran
        self._samples: dict[str, dict[int, float]] = {}
        self._timed: dict[str, int] = {}
        self._calls_timed = 0
        self._overhead = 0.0
        self._clock = clock
        #: set by the owner of the safe engine's model (`build_estimator`): frees its weights
        #: when another engine was chosen
        self.free_safe: Callable[[], None] | None = None

    # -- what the engine is now ----------------------------------------------------------------
    @property
    def backend(self) -> str:  # type: ignore[override]
        return self.current.backend

    @property
    def dtype(self) -> torch.dtype:  # type: ignore[override]
        return self.current.dtype

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return self.current.device

    @property
    def compiled(self) -> bool:  # type: ignore[override]
        return self.current.compiled

    @property
    def done(self) -> bool:
        """Whether the calibration is over (every call now goes to one engine)."""
        return self.state == "done"

    def describe(self) -> dict[str, Any]:
        facts = self.current.describe()
        if not self.done:
            facts["calibration"] = f"under way ({self.state})"
        return facts

    # -- calls ---------------------------------------------------------------------------------
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.state == "done":
            return self.current(images)
        with self._lock:
            if self.state == "first":
                out = self.safe(images)
                self.state = "prepare"
                return out
            if self.state == "prepare":
                self._start()
            if self.state == "timing":
                return self._timed_calls(images)
            return self.current(images)

    def _start(self) -> None:
        t0 = self._clock()
        try:
            engines = dict(self._prepare())
        except Exception as e:  # noqa: BLE001 - a calibration never fails the job
            log.warning("the engine calibration failed (%s: %s): the job goes on with %s",
                        type(e).__name__, e, self.safe_label)
            engines = {}
        self._overhead += self._clock() - t0
        engines.setdefault(self.safe_label, self.safe)
        self._engines = engines
        self._order = list(engines)
        self._samples = {n: {} for n in engines}
        self._timed = dict.fromkeys(engines, 0)
        self._last = self.safe_label  # it ran the job's first call
        if len(engines) == 1:
            self._finish()
        else:
            self.state = "timing"

    def _next(self) -> str:
        """The engine of the next call: the one whose untimed call just ran (for its timed
        call), else those without a timed call first (so that the slower ones leave early),
        then in turn."""
        if self._settled is not None and self._settled in self._order:
            return self._settled
        first = [n for n in self._order if self._timed[n] == 0]
        if first:
            return first[0]
        name = self._order[self._turn % len(self._order)]
        self._turn += 1
        return name

    def _timed_calls(self, images: torch.Tensor) -> torch.Tensor:
        """A job call while timing: in parts of at most `chunk` rows, each a timed call of the
        next engine (a job that batches many crops per call is timed in as few calls); what
        is left when the choice is made runs on the chosen engine in one call."""
        outs, i = [], 0
        while i < len(images):
            if self.state != "timing":
                outs.append(self.current(images[i:]))
                break
            part = images[i:i + self.chunk]
            outs.append(self._timed_call(part))
            i += len(part)
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def _timed_call(self, images: torch.Tensor) -> torch.Tensor:
        name = self._next()
        engine = self._engines[name]
        self.current = engine
        t0 = self._clock()
        try:
            out = engine(images)
        except Exception as e:  # noqa: BLE001 - the candidate leaves; the call runs again
            if name == self.safe_label:
                raise
            log.warning("engine %s failed on a call of the job (%s: %s): not a candidate any "
                        "more", name, type(e).__name__, e)
            self._drop(name)
            self.current = self.safe
            out = self.safe(images)
            self._last, self._settled = self.safe_label, None
            self._maybe_finish()
            return out
        seconds = self._clock() - t0
        timed = name == self._last  # it ran the previous call too: warm, the others idle
        self._last = name
        if not timed:
            self._settled = name
        else:
            self._settled = None
            rows = int(len(images))
            per = seconds / max(1, rows)
            by_rows = self._samples[name]
            by_rows[rows] = min(by_rows.get(rows, float("inf")), per)
            self._timed[name] += 1
            self._calls_timed += 1
            self._prune()
        self._maybe_finish()
        return out

    def _best_of(self, name: str) -> float:
        return min(self._samples[name].values())

    def _prune(self) -> None:
        """After every candidate's first timed call, the clearly slower ones leave (the safe
        engine too: it stays the fallback of a failing call, not a candidate)."""
        if any(self._timed[n] == 0 for n in self._order):
            return
        best = min(self._best_of(n) for n in self._order)
        for n in list(self._order):
            if self._best_of(n) > self.near_tie * best:
                self._drop(n, keep_samples=True)

    def _drop(self, name: str, keep_samples: bool = False) -> None:
        self._order.remove(name)
        if not keep_samples:
            self._samples.pop(name, None)
        self._turn = self._turn % max(1, len(self._order))

    def _maybe_finish(self) -> None:
        if len(self._order) <= 1 or all(self._timed[n] >= self.rounds for n in self._order):
            self._finish()

    def _finish(self) -> None:
        samples = {n: dict(v) for n, v in self._samples.items() if v}
        in_rotation = {n: self._best_of(n) for n in self._order if self._samples.get(n)}
        try:
            best = self._decide(samples, self._overhead, self._calls_timed)
        except Exception as e:  # noqa: BLE001 - a calibration never fails the job
            log.warning("the engine calibration could not decide (%s: %s): the job goes on "
                        "with %s", type(e).__name__, e, self.safe_label)
            best = self.safe_label
        if best not in self._engines:
            best = fastest(in_rotation) if in_rotation else self.safe_label
        self.current = self._engines[best]
        self._engines.clear()
        self._order, self._samples = [best], {}
        self.state = "done"
        if best != self.safe_label and self.free_safe is not None:
            self.free_safe()  # the safe engine's weights: not needed any more
            self.free_safe = None
        if self._release is not None:
            self._release()
