"""scripts/gpu_check.py end to end on the CPU (``--dry-run``: tiny model, seconds): every part
runs and the JSON has what docs/PERFORMANCE.md's GPU table needs. No figure is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.py"


def test_gpu_check_dry_run_writes_every_part(tmp_path):
    out = tmp_path / "gpu.json"
    env = {**os.environ, "VITPOSE_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["dry_run"] and report["device"] == "cpu"
    assert report["paper_fps_a100_vitpose_b_batch64"] == 944.0
    assert report["parity_cpu_self_check"]["argmax_same"] == 1.0
    assert "skipped" in report["parity_cuda_vs_cpu_fp32"]
    rows = report["inference_throughput"]
    eager = [r for r in rows if r.get("engine") == "torch eager"]
    assert eager and all(r["images_per_s"] > 0 and "vs_paper_a100" in r for r in eager)
    train = report["training_amp"]
    assert train["steps"] == 3 and train["images_per_s"] > 0 and train["amp"] == "bfloat16"
    run = report["torchrun_predict"]
    assert run["exit_code"] == 0 and run["result_lines"] >= 1, run
    assert not any("error" in v for v in report.values() if isinstance(v, dict))


def test_gpu_check_refuses_a_missing_gpu_without_dry_run(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cuda", "--out",
                           str(tmp_path / "x.json")], capture_output=True, text=True,
                          timeout=120)
    import torch
    if not torch.cuda.is_available():
        assert proc.returncode == 2 and "--dry-run" in proc.stderr
