"""What every ``auto`` runtime choice shares (the pose engines' ``--backend auto`` and the
learned detectors' ``--det-engine auto``): timing the candidates, the rule that keeps the
fastest, and the remembered choice.

* `time_calls`: seconds of the fastest of interleaved rounds of each candidate call, after one
  warm-up call each. Each round starts with the next candidate, so none always runs right after
  the same other one; on a shared machine the fastest round is the one least disturbed.
* `fastest`: the candidate with the fewest seconds; with a ``tie`` margin, those within it of
  the fastest tie and the first of a preferred order wins (so that noise does not flip the
  choice between runs).
* `RememberedChoice`: a small JSON record in the cache folder (`cache_dir`), valid for one
  fingerprint (the machine, threads, runtime versions, candidates: `machine_fingerprint` and
  what the caller adds). A missing, unreadable or foreign record reads as nothing; a record
  that cannot be written is a warning (the next run measures again).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...fileio import atomic_write_json, read_json

__all__ = ["SETTLE_SECONDS", "RememberedChoice", "fastest", "time_calls"]

log = logging.getLogger(__name__)


#: Seconds to wait before a timed call that follows another candidate's: ONNX Runtime's (and
#: OpenMP's) threads spin for a while after a call, and the engine called right after ONNX
#: Runtime ran 25-35% slower (a 2-core Zen 4; 0.02 s of pause left 10%, 0.2 s nothing). The
#: rotation of the rounds keeps the cyclic order, so without the pause the same candidate would
#: always pay for it.
SETTLE_SECONDS = 0.2


def time_calls(calls: Mapping[str, Callable[[], Any]], rounds: int,
               settle: float = SETTLE_SECONDS) -> dict[str, float]:
    """Seconds of each call: one warm-up call each, then `rounds` interleaved rounds (round
    ``r`` starts with candidate ``r % n``); the fastest round of each counts.

    Args:
        calls: name -> a call without arguments (e.g. ``functools.partial(engine, batch)``).
        rounds: timed rounds (at least one).
        settle: seconds of pause (not timed) before a call that follows another candidate's
            (`SETTLE_SECONDS`).
    """
    names = list(calls)
    for name in names:
        calls[name]()  # warm-up: allocations, lazy compilation
    best = {name: float("inf") for name in names}
    last = names[-1] if names else None
    for r in range(max(1, int(rounds))):
        k = r % len(names) if names else 0
        for name in names[k:] + names[:k]:
            if settle > 0 and name != last:
                time.sleep(settle)
            t0 = time.perf_counter()
            calls[name]()
            best[name] = min(best[name], time.perf_counter() - t0)
            last = name
    return best


def fastest(seconds: Mapping[str, float], order: Sequence[str] = (), tie: float = 0.0) -> str:
    """The candidate with the fewest seconds.

    Candidates within ``tie`` (a fraction: 0.03 = 3%) of the fastest tie; among them the first
    of `order` wins (candidates missing from `order` come after, the faster first). With
    ``tie=0`` and no order this is the plain fastest (the first one on an exact tie).

    Raises:
        ValueError: no candidate.
    """
    if not seconds:
        raise ValueError("no candidate was timed")
    best = min(seconds.values())
    rank = {name: i for i, name in enumerate(order)}
    near = [name for name, t in seconds.items() if t <= best * (1.0 + tie)]
    return min(near, key=lambda name: (rank.get(name, len(rank)), seconds[name]))


def _plain(value: Mapping[str, Any]) -> Any:
    """What a mapping reads back as from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


class RememberedChoice:
    """A choice remembered in the JSON file `path` for one `fingerprint`.

    Args:
        path: the record (its folder is made when written); None: nothing is remembered (a
            source without a stable cache key measures each time).
        fingerprint: what the choice depends on (JSON-serialisable); a record written for
            another fingerprint does not apply.
        what: how the warning of a failed write names the choice.
    """

    def __init__(self, path: str | os.PathLike[str] | None, fingerprint: Mapping[str, Any],
                 what: str = "the engine choice") -> None:
        self.path = Path(path) if path is not None else None
        self.fingerprint = dict(fingerprint)
        self.what = what

    def read(self) -> dict[str, Any] | None:
        """The remembered record (without its fingerprint), or None: no file, not readable,
        not valid JSON, or written for another fingerprint."""
        if self.path is None or not self.path.is_file():
            return None
        try:
            data = read_json(self.path, "remembered choice")
        except InputError as exc:
            log.debug("ignoring %s: %s", self.path, exc)
            return None
        if not isinstance(data, dict) or data.get("fingerprint") != _plain(self.fingerprint):
            return None
        return {k: v for k, v in data.items() if k != "fingerprint"}

    def write(self, record: Mapping[str, Any]) -> bool:
        """Remember `record` (with the fingerprint) atomically; False (and a warning) when it
        cannot be written, e.g. in a read-only cache folder."""
        if self.path is None:
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.path, {**record, "fingerprint": self.fingerprint}, indent=1,
                              fsync=False)
        except (OSError, ValueError) as exc:
            log.warning("cannot remember %s in %s: %s", self.what, self.path, exc)
            return False
        return True
