"""Distributed helpers (single-process answers and a real 2-process Gloo run) and the metric
logging that relies on them (training/logging.py)."""

from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from vitpose import distributed
from vitpose.training.logging import (
    JsonLinesWriter,
    MetricLogger,
    SmoothedValue,
    Timer,
    peak_memory_mb,
    progress,
    read_json_lines,
)

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture()
def no_torchrun_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)


def test_single_process_defaults(no_torchrun_env: None) -> None:
    assert distributed.init_distributed() is False
    assert not distributed.is_enabled()
    assert distributed.get_rank() == 0
    assert distributed.get_world_size() == 1
    assert distributed.get_local_rank() == 0
    assert distributed.is_main_process()
    distributed.barrier()
    assert distributed.all_reduce_mean(3) == 3.0
    tensor = torch.tensor([1.0, 2.0])
    reduced = distributed.all_reduce_mean(tensor)
    assert torch.equal(reduced, tensor) and reduced is not tensor
    assert distributed.all_reduce_sum(2.5) == 2.5
    assert distributed.all_gather_object({"a": 1}) == [{"a": 1}]
    assert distributed.broadcast_object("x") == "x"
    assert distributed.main_first(lambda: 5) == 5
    distributed.destroy_distributed()  # no-op


def test_partial_torchrun_env_is_an_error(
    no_torchrun_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        distributed.init_distributed()
    assert not distributed.is_enabled()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    result: dict = {}
    try:
        result["enabled"] = distributed.init_distributed(backend="gloo", timeout_s=30)
        result["rank"] = distributed.get_rank()
        result["world_size"] = distributed.get_world_size()
        result["local_rank"] = distributed.get_local_rank()
        result["main"] = distributed.is_main_process()
        result["mean_float"] = distributed.all_reduce_mean(float(rank + 1))
        result["mean_tensor"] = distributed.all_reduce_mean(
            torch.tensor([float(rank), 2.0 * rank])
        ).tolist()
        result["sum_int_tensor"] = distributed.all_reduce_sum(torch.tensor([rank + 1])).tolist()
        result["gathered"] = distributed.all_gather_object({"rank": rank, "tag": "r" * (rank + 1)})
        result["broadcast"] = distributed.broadcast_object("from-0" if rank == 0 else None)
        distributed.barrier()
        result["main_first"] = distributed.main_first(lambda: _log_turn(rank, out_dir))

        def fail_on_rank_1() -> int:
            if rank == 1:
                raise ValueError("rank 1 cannot build")
            return rank

        try:
            distributed.main_first(fail_on_rank_1, catch=ValueError)
        except ValueError as exc:  # every rank learns of rank 1's error; none waits
            result["main_first_error"] = str(exc)
        # Rank 0 sees one sample with loss 1; rank 1 three samples with loss 3.
        logger = MetricLogger()
        logger.update(n=1 + 2 * rank, loss=1.0 + 2 * rank)
        result["global_loss"] = logger.averages()["loss"]
        result["global_loss_again"] = logger.averages()["loss"]  # idempotent
        result["local_window"] = logger["loss"].avg
    except Exception as exc:  # reported to the parent through the file
        result["error"] = repr(exc)
    finally:
        distributed.destroy_distributed()
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))


def _log_turn(rank: int, out_dir: str) -> int:
    if rank == 0:
        time.sleep(0.3)  # rank 0 is slow, and still first
    with Path(out_dir, "turns.txt").open("a") as fh:
        fh.write(f"{rank}\n")
    return rank


@pytest.mark.slow
def test_two_process_gloo(tmp_path: Path) -> None:
    world_size = 2
    mp.spawn(_worker, args=(world_size, _free_port(), str(tmp_path)), nprocs=world_size, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world_size)]
    assert (tmp_path / "turns.txt").read_text().split() == ["0", "1"]
    for rank, result in enumerate(results):
        assert "error" not in result, result
        assert result["enabled"] is True
        assert (result["rank"], result["world_size"], result["local_rank"]) == (rank, 2, rank)
        assert result["main"] is (rank == 0)
        assert result["mean_float"] == pytest.approx(1.5)
        assert result["mean_tensor"] == pytest.approx([0.5, 1.0])
        assert result["sum_int_tensor"] == pytest.approx([3.0])
        assert result["gathered"] == [{"rank": 0, "tag": "r"}, {"rank": 1, "tag": "rr"}]
        assert result["broadcast"] == "from-0"
        assert result["main_first"] == rank
        assert result["main_first_error"] == "rank 1 cannot build"
        assert result["global_loss"] == pytest.approx((1 * 1 + 3 * 3) / 4)
        assert result["global_loss_again"] == pytest.approx(2.5)
        assert result["local_window"] == pytest.approx(1.0 + 2 * rank)


# --------------------------------------------------------------------------------------------
# Logging helpers (single process)
# --------------------------------------------------------------------------------------------


def test_smoothed_value_window_and_global_average() -> None:
    meter = SmoothedValue(window_size=3)
    assert math.isnan(meter.global_avg)
    for value in (1.0, 2.0, 3.0, 10.0):
        meter.update(torch.tensor(value))
    assert meter.value == 10.0
    assert meter.median == 3.0  # window (2, 3, 10)
    assert meter.avg == pytest.approx(5.0)
    assert meter.max == 10.0
    assert meter.global_avg == pytest.approx(4.0)  # (1 + 2 + 3 + 10) / 4
    meter.update(0.0, n=4)
    assert meter.global_avg == pytest.approx(2.0)  # 16 / 8
    assert "2.0000" in str(meter)


def test_metric_logger_single_process() -> None:
    logger = MetricLogger(delimiter=" | ")
    logger.update(loss=torch.tensor(0.5), lr=1e-3, skipped=None)
    logger.update(loss=1.5)
    assert "skipped" not in logger
    assert logger.averages() == {"loss": pytest.approx(1.0), "lr": pytest.approx(1e-3)}
    assert str(logger).startswith("loss: ")
    with pytest.raises(ValueError, match="scalar"):
        logger.update(loss=torch.ones(2))


def test_json_lines_writer(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "train.jsonl"
    writer = JsonLinesWriter(path)
    assert writer.enabled  # single process = main process
    writer.write(
        {"iteration": 1, "epoch": 0, "loss": torch.tensor(0.25), "lr": 5e-7, "time": 0.1,
         "data_time": 0.01, "memory": 12.0, "grad_norm": float("inf")}
    )
    writer.write({"iteration": 2, "epoch": 0, "loss": 0.2, "shape": torch.tensor([1, 2])})
    JsonLinesWriter(path, enabled=False).write({"iteration": 3})
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    records = read_json_lines(path)
    assert records[0]["loss"] == 0.25 and records[0]["grad_norm"] is None
    assert records[1]["shape"] == [1, 2]


def test_progress_timer_and_memory() -> None:
    items = list(range(3))
    assert progress(items, enabled=False) is items
    bar = progress(items, desc="x", disable=True)  # a tqdm object on the main process
    assert list(bar) == items
    timer = Timer()
    seen = [x for x in timer.wrap(items)]
    assert seen == items and timer.data_time >= 0.0 and timer.iter_time >= 0.0
    assert peak_memory_mb("cpu") >= 0.0


def test_backend_and_device_follow_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """CPU runs use Gloo even where CUDA exists (NCCL cannot move CPU tensors); each process
    takes GPU LOCAL_RANK modulo the GPUs it sees (one per process on some clusters)."""
    assert distributed.backend_for("cpu") == "gloo"
    assert distributed.backend_for(torch.device("cpu")) == "gloo"
    assert distributed.backend_for(None) is None and distributed.backend_for("cuda:1") is None
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    assert distributed.local_device_index() == 3
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert distributed.local_device_index() == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert distributed.local_device_index() == 0
