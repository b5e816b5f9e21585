"""`vitpose split`: a tiny ViTPose+ trained on the COCO and AP-10K samples at once, split into
per-task models whose outputs equal the multi-task model's for that dataset; official-layout
ViTPose+ files too, without the leftover experts of the original ``tools/model_split.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import vitpose
from vitpose.checkpoints import load_local_weights
from vitpose.cli.main import main
from vitpose.models.vitpose import PLUS_DATASETS, ViTPose, ViTPoseConfig
from vitpose.training.config import load_config
from vitpose.training.train import fit


@pytest.fixture(scope="module")
def plus_checkpoint(data_dir: Path, tmp_path_factory) -> Path:
    """Two epochs of the tiny ViTPose+ on COCO + AP-10K (validation on COCO)."""
    work = tmp_path_factory.mktemp("plus")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = fit(load_config("debug/tiny_plus_coco_ap10k", [f"data.root={data_dir}"]),
                      work, show_progress=False)
    finally:
        torch.set_num_threads(threads)
    assert "coco" in summary["metrics"]
    assert {"loss_coco", "loss_ap10k"} <= set(summary["train"])
    return work / "latest.pth"


def _model_from_meta(path: Path) -> ViTPose:
    meta = torch.load(path, weights_only=True)["meta"]
    model = ViTPose(ViTPoseConfig.from_dict(json.loads(meta["vitpose_config"])))
    return load_local_weights(model, path).eval()


def test_split_of_our_training_checkpoint(plus_checkpoint: Path, tmp_path: Path,
                                          capsys) -> None:
    assert main(["split", str(plus_checkpoint), "--out", str(tmp_path)]) == 0
    assert "coco:" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["ap10k.pth", "coco.pth"]
    multi = _model_from_meta(plus_checkpoint)
    assert multi.cfg.is_moe
    x = torch.randn(3, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    for index, name in enumerate(("coco", "ap10k")):
        file = tmp_path / f"{name}.pth"
        sd = torch.load(file, weights_only=True)["state_dict"]
        assert not [k for k in sd if ".experts." in k or k.startswith("associate_")]
        task = vitpose.load_model(str(file))  # the recorded architecture (2 heads, width 32)
        assert task.cfg.num_heads == 2 and task.cfg.datasets == (name,)
        assert not task.cfg.is_moe and len(task.heads) == 1
        with torch.no_grad():
            expected = multi(x, dataset_index=index)
            assert torch.allclose(task(x), expected, atol=1e-5)
            assert torch.allclose(_model_from_meta(file)(x), expected, atol=1e-5)


def test_split_of_an_official_vitpose_plus_file(tmp_path: Path) -> None:
    """Official layout ({'state_dict'}, 6 experts, 6 heads incl. 133-keypoint WholeBody, no
    meta): names follow the ViTPose+ dataset order; every file is a plain model."""
    torch.manual_seed(0)
    multi = vitpose.build_model("vitpose-plus-s", embed_dim=64, depth=2, num_heads=1,
                                img_size=(64, 48)).eval()
    torch.save({"state_dict": multi.state_dict(), "meta": {}}, tmp_path / "plus.pth")
    out = tmp_path / "split"
    assert main(["split", str(tmp_path / "plus.pth"), "--out", str(out)]) == 0
    assert sorted(p.stem for p in out.glob("*.pth")) == sorted(PLUS_DATASETS)
    x = torch.randn(2, 3, 64, 48)
    for index, name in enumerate(PLUS_DATASETS):
        task = vitpose.load_model(str(out / f"{name}.pth"))
        sd = task.state_dict()
        assert not [k for k in sd if ".experts." in k]  # the original tool leaves these
        with torch.no_grad():
            assert torch.allclose(task(x), multi(x, dataset_index=index), atol=1e-5)
    assert task.heads[0].final_layer.out_channels == 133
    # outputs exist now: refused without --overwrite, replaced with it
    assert main(["split", str(tmp_path / "plus.pth"), "--out", str(out)]) == 2
    assert main(["split", str(tmp_path / "plus.pth"), "--out", str(out), "--overwrite"]) == 0


def test_split_of_a_single_task_checkpoint_is_an_error(tmp_path: Path, capsys) -> None:
    model = vitpose.build_model("vitpose-s", embed_dim=64, depth=1, num_heads=1, img_size=(64, 48))
    vitpose.save_checkpoint(model, tmp_path / "single.pth")
    assert main(["split", str(tmp_path / "single.pth"), "--out", str(tmp_path / "o")]) == 2
    assert "nothing to split" in capsys.readouterr().err
    assert main(["split", str(tmp_path / "absent.pth"), "--out", str(tmp_path / "o")]) == 2


def _tiny_plus(datasets=PLUS_DATASETS) -> ViTPose:
    model = vitpose.build_model("vitpose-plus-b", embed_dim=32, depth=1, num_heads=2,
                                part_features=8, img_size=(64, 48))
    if datasets != PLUS_DATASETS:
        import dataclasses
        cfg = model.cfg
        model = ViTPose(dataclasses.replace(cfg, datasets=tuple(datasets), heads=tuple(
            dataclasses.replace(h, dataset=datasets[i]) for i, h in enumerate(cfg.heads))))
    return model.eval()


@pytest.mark.parametrize("names", ["../../escaped,b,c,d,e,f", "a,b,c,d,e,/tmp/abs",
                                   "a,a,c,d,e,f", "a,b,c,d,e,"])
def test_split_refuses_dataset_names_that_are_not_file_names(tmp_path: Path, capsys,
                                                             names: str) -> None:
    vitpose.save_checkpoint(_tiny_plus(), tmp_path / "plus.pth")
    out = tmp_path / "deep" / "out"
    assert main(["split", str(tmp_path / "plus.pth"), "--out", str(out), "--datasets", names]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.rglob("*.pth")) == ["plus.pth"]  # nothing written


def test_split_refuses_traversal_names_recorded_in_the_checkpoint(tmp_path: Path, capsys) -> None:
    """Names stored in the file (meta.vitpose_config) cannot write outside --out either."""
    evil = ("../../escaped", "aic", "mpii", "ap10k", "apt36k", "wholebody")
    vitpose.save_checkpoint(_tiny_plus(evil), tmp_path / "plus.pth")
    out = tmp_path / "a" / "b" / "out"
    assert main(["split", str(tmp_path / "plus.pth"), "--out", str(out)]) == 2
    assert "cannot be file names" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*.pth")) == ["plus.pth"]
    # renaming them with --datasets works
    assert main(["split", str(tmp_path / "plus.pth"), "--out", str(out), "--datasets",
                 ",".join(PLUS_DATASETS)]) == 0
    assert sorted(p.stem for p in out.glob("*.pth")) == sorted(PLUS_DATASETS)


def test_split_with_too_few_dataset_names_is_one_line(tmp_path: Path, capsys) -> None:
    vitpose.save_checkpoint(_tiny_plus(), tmp_path / "plus.pth")
    out = tmp_path / "out"
    assert main(["split", str(tmp_path / "plus.pth"), "--out", str(out), "--datasets", "a,b"]) == 2
    err = capsys.readouterr().err
    assert "2 name(s)" in err and "6 tasks" in err and err.count("\n") == 1
    assert not out.exists() or not list(out.iterdir())  # nothing blocks the rerun
    assert main(["split", str(tmp_path / "plus.pth"), "--out", str(out)]) == 0
