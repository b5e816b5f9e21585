"""``latest.pth`` is written when its cost stays within ``runtime.latest_share`` of the run's
time (a ViTPose-B state is ~1 GB: on a small dataset writing it after every epoch took most of
the run), and always after the last epoch, a validation and an ``epoch_N.pth`` snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vitpose.errors import ConfigError
from vitpose.training import train as train_module
from vitpose.training.checkpoint import WriteBudget
from vitpose.training.config import load_config
from vitpose.training.train import fit


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_write_is_due_once_it_costs_at_most_the_share_of_the_time_since_the_last() -> None:
    budget = WriteBudget(0.1)
    assert budget.due(0.0)  # nothing written yet
    budget.wrote(10.0, 17.0)  # 7 s to write
    assert not budget.due(17.0)
    assert not budget.due(79.9)  # 7 s > 10% of 69.9 s
    assert budget.due(80.0)  # 7 s = 10% of 70 s
    budget.wrote(80.0, 80.01)  # a fast disk: due again at once
    assert budget.due(80.2)
    every = WriteBudget(1.0)
    every.wrote(0.0, 5.0)
    assert every.due(5.0)
    with pytest.raises(ValueError):
        WriteBudget(0.0)


@pytest.mark.parametrize("share", ["0", "1.5", "-0.1"])
def test_a_share_outside_0_1_is_a_config_error(share: str) -> None:
    with pytest.raises(ConfigError, match="runtime.latest_share"):
        load_config("debug/tiny_coco", [f"runtime.latest_share={share}"])


@pytest.mark.parametrize("due, written", [(False, [2, 3]), (True, [1, 2, 3])])
def test_fit_skips_the_writes_the_budget_refuses_but_never_the_required_ones(
        data_dir: Path, tmp_path: Path, monkeypatch, due: bool, written: list[int],
        one_thread) -> None:
    monkeypatch.setattr(WriteBudget, "due", lambda self, now: due)
    epochs: list[int] = []
    real = train_module._save

    def recording(state, work_dir, epoch, improved, save_interval):
        epochs.append(epoch + 1)
        real(state, work_dir, epoch, improved, save_interval)

    monkeypatch.setattr(train_module, "_save", recording)
    cfg = load_config("debug/tiny_coco", [f"data.root={data_dir}", "data.val=[]",
                                          "schedule.epochs=3", "runtime.save_interval=2"])
    fit(cfg, tmp_path, show_progress=False)
    assert epochs == written  # epoch 2: the snapshot; epoch 3: the last
    state = torch.load(tmp_path / "latest.pth", weights_only=True)
    assert state["epoch"] == 3 and (tmp_path / "epoch_2.pth").is_file()
