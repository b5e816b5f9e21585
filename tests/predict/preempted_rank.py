"""Fault injection for tests/predict/test_predict_distributed.py: ``python -m preempted_rank
predict ...`` is ``vitpose predict ...`` in which rank R exits hard (``os._exit(17)``, as a
pre-empted node would) once it has journalled N results, with ``PREEMPT_RANK_AFTER=R:N``."""

from __future__ import annotations

import os
import sys

from vitpose import distributed
from vitpose.cli.main import main
from vitpose.inference.results import ResumableResults


def _install(rank: int, after: int) -> None:
    add = ResumableResults.add
    count = {"n": 0}

    def add_then_die(self, *args, **kwargs):
        add(self, *args, **kwargs)
        if distributed.get_rank() == rank:
            count["n"] += 1
            if count["n"] >= after:
                os._exit(17)

    ResumableResults.add = add_then_die


if __name__ == "__main__":
    r, _, n = os.environ["PREEMPT_RANK_AFTER"].partition(":")
    _install(int(r), int(n))
    sys.exit(main(sys.argv[1:]))
