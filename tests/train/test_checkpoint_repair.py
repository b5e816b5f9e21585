"""A run killed while copying ``latest.pth`` to a snapshot (``epoch_N.pth``, ``best.pth``):
the orphan temporary is removed and the snapshot is written when the run resumes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from vitpose.cli.main import main
from vitpose.fileio import clean_stale_temporaries, temporary_path
from vitpose.training.checkpoint import atomic_save, load_training_state

DEAD_PID = 4_194_304 + 7  # above Linux's largest pid: never a live process


def _state(epoch: int, best_epoch: int | None, save_interval: int = 5) -> dict:
    return {"state_dict": {"w": torch.full((2,), float(epoch))}, "optimizer": {}, "epoch": epoch,
            "iteration": 10 * epoch, "rng": [],
            "best": {"metric": "AP", "value": 0.5, "epoch": best_epoch} if best_epoch else None,
            "config": {"runtime": {"save_interval": save_interval}}}


def _orphan(folder: Path, target: str, pid: int = DEAD_PID) -> Path:
    tmp = folder / f".{target}.{pid}.0123abcd.tmp"
    tmp.write_bytes(b"half a checkpoint")
    return tmp


def test_resume_writes_the_snapshot_a_kill_interrupted(tmp_path: Path) -> None:
    latest = atomic_save(_state(10, best_epoch=10), tmp_path / "latest.pth")
    atomic_save(_state(5, best_epoch=5), tmp_path / "best.pth")  # the previous best
    orphan = _orphan(tmp_path, "epoch_10.pth")
    live = _orphan(tmp_path, "other.pth", pid=os.getppid())  # a live writer's: kept
    load_training_state(latest)
    assert not orphan.exists() and live.exists()
    assert torch.load(tmp_path / "epoch_10.pth", weights_only=True)["epoch"] == 10
    assert torch.load(tmp_path / "best.pth", weights_only=True)["epoch"] == 10
    # nothing due: not an epoch of the interval, not the best epoch
    latest = atomic_save(_state(11, best_epoch=10), tmp_path / "latest.pth")
    load_training_state(latest)
    assert not (tmp_path / "epoch_11.pth").exists()
    assert torch.load(tmp_path / "best.pth", weights_only=True)["epoch"] == 10


def test_stale_temporaries_are_removed_by_the_next_write(tmp_path: Path) -> None:
    orphan = _orphan(tmp_path, "epoch_3.pth")
    own = _orphan(tmp_path, "latest.pth", pid=os.getpid())
    atomic_save({"x": torch.zeros(1)}, tmp_path / "latest.pth")
    assert not orphan.exists()
    assert own.exists()  # this process may be writing it: only removed at start/resume
    assert clean_stale_temporaries(tmp_path, include_own=True) == [own]


def test_vitpose_train_resume_after_a_killed_snapshot_copy(data_dir: Path, tmp_path: Path
                                                          ) -> None:
    """CLI: the run is killed while copying latest.pth to epoch_1.pth; --resume finishes it."""
    work = tmp_path / "run"
    common = ["--data-root", str(data_dir), "--work-dir", str(work), "--no-progress",
              "--device", "cpu", "--set", "runtime.save_interval=1", "data.val=[]"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", "debug/tiny_coco", *common, "schedule.epochs=1"]) == 0
        (work / "epoch_1.pth").unlink()  # the kill: the copy never completed ...
        orphan = _orphan(work, "epoch_1.pth")  # ... and left its temporary
        assert main(["train", "debug/tiny_coco", "--resume", str(work / "latest.pth"), *common,
                     "schedule.epochs=2"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert not orphan.exists()
    assert torch.load(work / "epoch_1.pth", weights_only=True)["epoch"] == 1
    assert torch.load(work / "epoch_2.pth", weights_only=True)["epoch"] == 2
    assert not [p for p in work.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("name", ["latest.pth", "epoch_10.pth"])
def test_temporary_name_pattern_matches_atomic_writes(tmp_path: Path, name: str,
                                                      monkeypatch) -> None:
    """The cleaner recognises exactly the names atomic_save/atomic_copy use."""
    tmp = temporary_path(tmp_path / name)
    tmp.write_bytes(b"")
    (tmp_path / name).write_bytes(b"")
    assert clean_stale_temporaries(tmp_path, include_own=True) == [tmp]


def test_a_fresh_run_removes_temporaries_left_in_its_work_dir(data_dir: Path, tmp_path: Path
                                                              ) -> None:
    """A new (not resumed) run in a folder where an earlier writer was killed: its temporaries
    are removed at start, also one whose pid came back as this process's."""
    work = tmp_path / "run"
    work.mkdir()
    orphans = [_orphan(work, "epoch_1.pth"), _orphan(work, "best.pth", pid=os.getpid())]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", "debug/tiny_coco", "--data-root", str(data_dir), "--work-dir",
                     str(work), "--no-progress", "--device", "cpu", "--set", "data.val=[]",
                     "schedule.epochs=1"]) == 0
    finally:
        torch.set_num_threads(threads)
    assert not any(p.exists() for p in orphans)
