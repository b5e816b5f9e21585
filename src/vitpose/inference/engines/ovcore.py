"""One OpenVINO ``Core`` for the whole process (every engine and detector compiles with it).

Why not one ``ov.Core()`` per engine: OpenVINO's CPU plugin (seen with 2026.4) installs its own
alternate signal stack (``sigaltstack``) on the thread that creates it, remembering the one it
replaced, and on destruction puts that one back and unmaps its own. With several plugin
instances (one per ``Core``) released in any order but the reverse one, the thread is left with
an alternate stack that was already unmapped. Python installs its signal handlers with
``SA_ONSTACK``, so the next signal that has a Python handler (SIGCHLD of the DataLoader workers,
SIGINT, SIGTERM, ...) makes the kernel write the signal frame into freed memory: a segfault
with no trace (faulthandler's own stack is gone too), or silent corruption of whatever was
mapped there since. One plugin instance that lives until the process ends never leaves a stale
stack behind. docs/RELIABILITY.md has the details and a reproduction.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["shared_core"]

_LOCK = threading.Lock()
_CORE: Any = None


def shared_core() -> Any:
    """The process-wide ``openvino.Core`` (created on first use; needs ``openvino``).

    Compile options go with each ``compile_model`` call, never on the core, so sharing it
    changes no engine's settings.
    """
    global _CORE
    with _LOCK:
        if _CORE is None:
            import openvino as ov
            _CORE = ov.Core()
        return _CORE
