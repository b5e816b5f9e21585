"""What a predict job tells its caller: the `Summary` it returns (lines for stdout, warnings
for stderr, the exit code) and `Interrupted`, raised when the user stopped it (Ctrl-C or
SIGTERM) with the message that says what was kept. The job itself prints nothing: the command
line prints, the demo shows, Python gets the objects."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Interrupted", "Notify", "Summary", "log_notice"]

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
