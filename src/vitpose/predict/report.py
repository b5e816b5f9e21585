"""What a predict job tells its caller: the `Summary` it returns (lines for stdout, warnings
for stderr, the exit code) and `Interrupted`, raised when the user stopped it (Ctrl-C or
SIGTERM) with the message that says what was kept. The job itself prints nothing: the command
line prints, the demo shows, Python gets the objects."""

from __future__ import annotations

import contextlib
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Interrupted", "Notify", "Summary", "log_notice", "repeated_warnings"]

log = logging.getLogger("vitpose.predict")

#: Called with a one-line notice during a run ("resuming: ..."); the CLI prints it to stderr.
Notify = Callable[[str], None]


def log_notice(text: str) -> None:
    """The default `Notify`: a log line."""
    log.info("%s", text)


class Interrupted(KeyboardInterrupt):
    """The user stopped the job; ``str(exc)`` says what was saved and how to continue."""


@dataclass
class Summary:
    """The end of a job.

    Attributes:
        lines: the summary (stdout).
        warnings: what went wrong without stopping the job (stderr; exit code 1).
        notes: hints that leave the exit code alone (stderr).
        exit_code: 0, or 1 when some input failed or some prediction was not finite.
        counts: numbers for programs (``images``, ``instances``, ``frames``, ...).
    """

    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    exit_code: int = 0
    counts: dict[str, Any] = field(default_factory=dict)

    def warn(self, text: str) -> None:
        """A warning that makes the exit code 1."""
        self.warnings.append(text)
        self.exit_code = max(self.exit_code, 1)

    def note(self, text: str) -> None:
        """A hint on stderr that leaves the exit code alone."""
        self.notes.append(text)


#: Warnings of the same kind shown as they happen before the rest are only counted.
SHOWN_PER_KIND = 3


class _Repeats(logging.Filter):
    """Lets the first `SHOWN_PER_KIND` warnings of each kind through and counts the rest. The
    kind is the message's first three words, numbers ignored (the image it names comes later):
    "clipped 2 box(es) for image a.jpg to the 640x480 image" and "clipped 5 box(es) for image
    b c.jpg to the 96x80 image" are one kind."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: Counter[str] = Counter()
        self.first: dict[str, str] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        text = record.getMessage()
        kind = re.sub(r"\d+", "N", " ".join(text.split()[:3]))
        self.seen[kind] += 1
        self.first.setdefault(kind, text)
        return self.seen[kind] <= SHOWN_PER_KIND


@contextlib.contextmanager
def repeated_warnings(summary_notes: list[str],
                      loggers: Sequence[str] = ("vitpose.inference.pipeline",)
                      ) -> Iterator[None]:
    """Per-image warnings of a long job (a clipped box in each of 10 000 images) said a few
    times, then summarised once: on exit one note per kind that was cut short is appended to
    ``summary_notes`` ("... and 812 more like it: 815 in all")."""
    repeats = _Repeats()
    targets = [logging.getLogger(name) for name in loggers]
    for logger in targets:
        logger.addFilter(repeats)
    try:
        yield
    finally:
        for logger in targets:
            logger.removeFilter(repeats)
        for kind, n in repeats.seen.items():
            if n > SHOWN_PER_KIND:
                summary_notes.append(f"{n} warnings like \"{repeats.first[kind]}\" "
                                     f"({SHOWN_PER_KIND} shown, {n - SHOWN_PER_KIND} more)")
