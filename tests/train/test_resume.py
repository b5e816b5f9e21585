"""Checkpoints and resume: a run stopped and resumed reaches the same weights as one that was
never interrupted; the checkpoint is a plain, weights_only-loadable training state."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vitpose.checkpoints import load_local_weights
from vitpose.cli.main import main
from vitpose.errors import CheckpointError
from vitpose.training.checkpoint import (
    atomic_save,
    capture_rng_state,
    load_training_state,
    restore_rng_state,
)
from vitpose.training.config import load_config
from vitpose.training.logging import read_json_lines
from vitpose.training.train import build_model_from_config, fit


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _overrides(data_dir: Path, epochs: int) -> list[str]:
    # Augmentation on, drop path on (torch RNG in the forward pass), validation every epoch
    # (must not disturb the training RNG), deterministic kernels.
    return [f"data.root={data_dir}", "model.drop_path_rate=0.1", "data.val.0.use_gt_bbox=true",
            f"schedule.epochs={epochs}", "runtime.eval_interval=1", "runtime.deterministic=true"]


def _max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() if a[k].numel() else 0.0
               for k in a)


def test_stop_and_resume_equals_uninterrupted(data_dir: Path, tmp_path: Path,
                                              one_thread) -> None:
    fit(load_config("debug/tiny_coco", _overrides(data_dir, 3)), tmp_path / "full",
        show_progress=False)
    part = tmp_path / "part"
    fit(load_config("debug/tiny_coco", _overrides(data_dir, 1)), part, show_progress=False)
    # The CLI continues from latest.pth of the work dir; two loader workers this time (the
    # samples do not depend on the worker count).
    args = ["train", "debug/tiny_coco", "--work-dir", str(part), "--resume", "--no-progress",
            "--set", *_overrides(data_dir, 3), "data.workers=2"]
    assert main(args) == 0

    full = torch.load(tmp_path / "full" / "latest.pth", weights_only=True)
    resumed = torch.load(part / "latest.pth", weights_only=True)
    diff = _max_diff(full["state_dict"], resumed["state_dict"])
    print(f"resume: max weight difference {diff:.3g}")
    assert diff <= 1e-6
    assert full["iteration"] == resumed["iteration"] == 9 and resumed["epoch"] == 3
    for p_full, p_res in zip(full["optimizer"]["state"].values(),
                             resumed["optimizer"]["state"].values()):
        assert torch.allclose(p_full["exp_avg_sq"], p_res["exp_avg_sq"], atol=1e-9)
    losses = lambda d: [r["loss"] for r in read_json_lines(d / "log.jsonl") if r["mode"] == "train"]
    assert losses(part) == pytest.approx(losses(tmp_path / "full"), abs=1e-7)
    assert full["metrics"]["coco"]["AP"] == pytest.approx(resumed["metrics"]["coco"]["AP"])


def test_training_checkpoint_contents(data_dir: Path, tmp_path: Path, one_thread) -> None:
    cfg = load_config("debug/tiny_coco", [f"data.root={data_dir}", "schedule.epochs=2",
                                          "runtime.save_interval=2"])
    fit(cfg, tmp_path, show_progress=False)
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["best.pth", "epoch_2.pth",
                                                               "latest.pth"]
    assert not list(tmp_path.glob(".*.tmp"))
    state = load_training_state(tmp_path / "latest.pth")  # weights_only=True inside
    assert {"state_dict", "meta", "optimizer", "scaler", "scheduler", "epoch", "iteration",
            "rng", "config", "best", "metrics"} <= set(state)
    assert state["epoch"] == 2 and state["scheduler"] == {"iteration": 6, "iters_per_epoch": 3}
    assert state["config"]["model"]["embed_dim"] == 32  # the resolved config, plain data
    assert state["best"]["metric"] == "coco/AP"
    assert {"python", "numpy", "torch"} <= set(state["rng"][0])
    # a model file too: the library loads it without the training parts
    model = build_model_from_config(cfg, with_weights=False)
    load_local_weights(model, tmp_path / "best.pth")


def test_rng_state_round_trip(tmp_path: Path) -> None:
    import random

    import numpy as np

    state = capture_rng_state()
    atomic_save({"rng": state}, tmp_path / "rng.pth")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    loaded = torch.load(tmp_path / "rng.pth", weights_only=True)["rng"]
    restore_rng_state(loaded)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_resume_needs_a_training_checkpoint(tmp_path: Path) -> None:
    torch.save({"state_dict": {"w": torch.zeros(1)}}, tmp_path / "model.pth")
    with pytest.raises(CheckpointError, match="not a training checkpoint.*model.weights"):
        load_training_state(tmp_path / "model.pth")


def test_interrupted_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = atomic_save({"v": torch.ones(3)}, tmp_path / "latest.pth")

    class Boom:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_save({"v": torch.zeros(3), "x": Boom()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["v"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pth"]
