"""OpenVINO engines leave the process's signal handling intact.

Regression: OpenVINO's CPU plugin swaps the thread's alternate signal stack per plugin instance
(one per ``ov.Core``); several of them released in any order but the reverse left the main
thread with an unmapped alternate stack, and the next signal with a Python handler (SIGCHLD of
DataLoader workers in the resume test, after the OpenVINO engine test) killed the process with
SIGSEGV and no trace. The engines now share one ``Core`` (engines/ovcore.py). The check runs in
a child interpreter so that a regression fails this test instead of killing the test session.
See docs/RELIABILITY.md.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vitpose
from vitpose.inference import engines as E

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("onnx") is None or importlib.util.find_spec("openvino") is None,
    reason="onnx / openvino are not installed (pip install 'vitpose[openvino]')")

CHILD = r"""
import faulthandler, os, signal, sys
faulthandler.enable()  # as pytest does: the main thread gets an alternate signal stack
import torch
from torch.utils.data import DataLoader
from vitpose.inference.engines import OpenVinoEngine
from vitpose.inference.engines.runtime import compile_openvino

path = sys.argv[1]
x = torch.zeros(1, 3, 256, 192)
# what tests/test_engines.py does (float32, bf16, OpenVINO's defaults) plus detector-style
# compilations; each used once, then released first-in first-out (as a frame's locals are)
engines = [OpenVinoEngine(path, "float32"), OpenVinoEngine(path, "bfloat16"),
           OpenVinoEngine(path, "float32", tuned=False)]
for engine in engines:
    engine(x)
compiled = [compile_openvino(path)[0] for _ in range(2)]
while engines:
    del engines[0]
while compiled:
    del compiled[0]
print("released", flush=True)
got = []
signal.signal(signal.SIGUSR1, lambda *_: got.append(1))
os.kill(os.getpid(), signal.SIGUSR1)  # a Python handler runs on the alternate stack
assert got == [1]
print("signal handled", flush=True)
# the original crash: forked loader workers exit -> SIGCHLD -> torch's Python handler
assert sum(len(b) for b in DataLoader(list(range(8)), batch_size=2, num_workers=2)) == 8
print("loader workers done", flush=True)
"""


def test_released_openvino_engines_leave_signal_handling_intact(tmp_path: Path) -> None:
    model = vitpose.build_model("vitpose-b-simple", embed_dim=32, depth=2, num_heads=2).eval()
    path = E.onnx_file_for(model)
    src = str(Path(vitpose.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [src, *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], check=False, env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr[-3000:]
    assert done.returncode != -11, "the child segfaulted (stale alternate signal stack):\n" + out
    assert done.returncode == 0, out
    assert "loader workers done" in done.stdout
    assert torch.get_num_threads() >= 1  # the parent is untouched
