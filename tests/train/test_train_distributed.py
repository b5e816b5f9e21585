"""`torchrun --nproc_per_node 2` (Gloo, CPU) with the same global batch follows the same loss
curve and reaches the same weights as one process: here on a two-dataset, two-head mix
(COCO + AP-10K samples), so the rank split of the mixing sampler (incl. the last partial
batch), the multi-head loss and DDP's handling of experts absent from a rank's batch are all
covered.

The heads use the simple decoder: BatchNorm (classic decoder) normalises with per-process batch
statistics, as in the official multi-GPU runs, which is not the single-process computation.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vitpose.training.logging import read_json_lines

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _train(launcher: list[str], work_dir: Path, data_dir: Path, batch_size: int) -> None:
    args = [*launcher, "-m", "vitpose.cli", "train", "debug/tiny_plus_coco_ap10k",
            "--data-root", str(data_dir), "--work-dir", str(work_dir), "--no-progress",
            "--set", "model.variant=vitpose-s-simple", "data.val=[]", "schedule.epochs=2",
            "runtime.log_interval=1", "runtime.deterministic=true",
            f"data.batch_size={batch_size}"]
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_match_one(data_dir: Path, tmp_path: Path) -> None:
    _train([sys.executable], tmp_path / "single", data_dir, batch_size=4)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]
    _train(torchrun, tmp_path / "ddp", data_dir, batch_size=2)

    single = read_json_lines(tmp_path / "single" / "log.jsonl")
    ddp = read_json_lines(tmp_path / "ddp" / "log.jsonl")
    assert ddp[0]["world_size"] == 2 and ddp[0]["global_batch_size"] == 4
    curve = lambda log: [(r["iteration"], r["loss"]) for r in log if r["mode"] == "train"]
    a, b = curve(single), curve(ddp)
    # 14 samples in batches of 4: the last partial batch is kept (official drop_last=False)
    assert [i for i, _ in a] == [i for i, _ in b] == list(range(1, 9))
    loss_diff = max(abs(x - y) for (_, x), (_, y) in zip(a, b))
    # both datasets' heads were trained
    assert any("loss_ap10k" in r for r in ddp if r["mode"] == "train")

    w1 = torch.load(tmp_path / "single" / "latest.pth", weights_only=True)["state_dict"]
    w2 = torch.load(tmp_path / "ddp" / "latest.pth", weights_only=True)["state_dict"]
    assert w1.keys() == w2.keys()
    weight_diff = max((w1[k].double() - w2[k].double()).abs().max().item() for k in w1)
    print(f"DDP vs single: max loss difference {loss_diff:.3g}, max weight difference "
          f"{weight_diff:.3g}")
    assert loss_diff <= 1e-5
    assert weight_diff <= 1e-5
    # the weights did move (the comparison is not vacuous)
    start = torch.load(tmp_path / "ddp" / "epoch_1.pth", weights_only=True)["state_dict"]
    assert max((start[k].double() - w2[k].double()).abs().max().item() for k in w2) > 1e-4
