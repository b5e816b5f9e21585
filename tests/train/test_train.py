"""Training: mixing sampler, model/data building from configs, a tiny model that really learns
on the COCO sample, fine-tuning to a custom keypoint layout (the docs/FINETUNE.md walkthrough),
bad input (missing image, NaN loss) and the original's defects we avoid."""

from __future__ import annotations

import hashlib
import json
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vitpose.dataset_meta import get_dataset_meta
from vitpose.datasets.mixing import MixedDataset, MixingSampler, dataset_quotas
from vitpose.datasets.readers import read_annotations
from vitpose.datasets.topdown import AugmentConfig, TopDownDataset
from vitpose.errors import CheckpointError, ConfigError, InputError
from vitpose.training import train as train_module
from vitpose.training.checkpoint import build_training_state
from vitpose.training.config import list_configs, load_config, load_config_dict
from vitpose.training.evaluate import evaluate_model
from vitpose.training.logging import read_json_lines
from vitpose.training.train import (
    TrainingError,
    build_datasets,
    build_model_from_config,
    fit,
    load_initial_weights,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def one_thread():
    """Tiny models run fastest on one thread, and other jobs share this machine's 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# Mixing sampler
# --------------------------------------------------------------------------------------------


def test_equal_weights_shuffle_the_whole_concatenation_once_per_epoch() -> None:
    sampler = MixingSampler([5, 3, 4], seed=7, rank=0, world_size=1)
    orders = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(12))  # every sample exactly once, as ConcatDataset
        orders.append(order)
    assert orders[0] != orders[1] != orders[2]
    again = MixingSampler([5, 3, 4], seed=7, rank=0, world_size=1)
    again.set_epoch(1)
    assert list(again) == orders[1]  # a pure function of (seed, epoch)


def test_dataset_weights_set_the_sampling_ratio() -> None:
    assert dataset_quotas([10, 10], None, 20) == [10, 10]
    assert dataset_quotas([10, 10], [1, 3], 20) == [5, 15]
    assert dataset_quotas([100, 10], [1, 1], 11) == [10, 1]
    assert sum(dataset_quotas([7, 3, 5], [0.3, 2.0, 1.0], 15)) == 15
    sampler = MixingSampler([10, 10], weights=[1, 3], seed=0, rank=0, world_size=1)
    order = np.array(list(sampler))
    assert (order < 10).sum() == 5 and (order >= 10).sum() == 15
    # oversampled dataset: every sample at least once before any repeats
    counts = np.bincount(order[order >= 10] - 10, minlength=10)
    assert counts.min() >= 1 and counts.max() <= 2
    with pytest.raises(ValueError):
        dataset_quotas([3], [0.0], 3)


def test_ranks_split_global_batches_like_one_process() -> None:
    sizes, batch, world = [9, 6], 2, 3
    single = MixingSampler(sizes, seed=3, rank=0, world_size=1)
    ranks = [MixingSampler(sizes, seed=3, rank=r, world_size=world) for r in range(world)]
    for s in (single, *ranks):
        s.set_epoch(2)
    order = list(single)
    per_rank = [list(s) for s in ranks]
    assert all(len(p) == len(ranks[0]) == 5 for p in per_rank)
    for i in range(len(per_rank[0]) // batch):
        together = sorted(sum((p[i * batch:(i + 1) * batch] for p in per_rank), []))
        assert together == sorted(order[i * batch * world:(i + 1) * batch * world])
    with pytest.raises(ValueError):
        MixingSampler(sizes, rank=3, world_size=3)


def test_mixed_dataset_maps_indices() -> None:
    mixed = MixedDataset([list("abc"), list("de")])
    assert len(mixed) == 5 and mixed.sizes == [3, 2]
    assert [mixed[i] for i in range(5)] == list("abcde")
    assert mixed.locate(3) == (1, 0)
    with pytest.raises(IndexError):
        mixed[5]


# --------------------------------------------------------------------------------------------
# Building from configs, and the original's defects
# --------------------------------------------------------------------------------------------


def test_plus_config_builds_one_expert_and_head_per_dataset(data_dir: Path) -> None:
    cfg = load_config("debug/tiny_plus_coco_ap10k", [f"data.root={data_dir}"])
    model = build_model_from_config(cfg)
    assert model.cfg.is_moe and model.cfg.num_experts == 2
    assert model.datasets == ("coco", "ap10k")
    assert [h.final_layer.out_channels for h in model.heads] == [17, 17]
    dataset = build_datasets(cfg)
    assert dataset.sizes == [12, 2]
    item = dataset[12]
    assert item["dataset_index"] == 1 and item["target"].shape[0] == 17


def test_keypoint_count_mismatch_is_a_config_error(data_dir: Path) -> None:
    cfg = load_config("debug/tiny_coco", [f"data.root={data_dir}", "model.num_keypoints=14"])
    with pytest.raises(ConfigError, match="17 keypoints.*predicts 14"):
        build_model_from_config(cfg)


def test_missing_annotation_file_names_the_root(tmp_path: Path) -> None:
    cfg = load_config("debug/tiny_coco", [f"data.root={tmp_path}"])
    with pytest.raises(InputError, match="not found.*--data-root"):
        build_datasets(cfg)


def test_center_jitter_per_iteration_option(data_dir: Path) -> None:
    """``center_jitter='per_iteration'`` (not the official default, which freezes the jitter
    per box: test_train_fidelity.py) draws a new jitter at every load."""
    records = read_annotations("coco", data_dir / "coco" / "test_coco.json",
                               image_root=data_dir / "coco", input_size_hw=(64, 48))
    augment = AugmentConfig(flip_prob=0, half_body_prob=0, scale_factor=0, rot_factor=0,
                            rot_prob=0, center_jitter_prob=1.0, center_jitter="per_iteration")
    ds = TopDownDataset(records[:1], get_dataset_meta("coco"), (64, 48), augment=augment)
    centers = []
    for epoch in range(4):
        ds.set_epoch(epoch)
        centers.append(ds[0]["center"].numpy())
    assert len({tuple(c.round(3)) for c in centers}) == 4
    assert not np.allclose(centers[0], records[0].center)


def test_the_dataset_decodes_like_predict_by_default(data_dir, tmp_path):
    """Without an `image_reader` the dataset uses `vitpose.imageio.read_image`: an image whose
    header declares more pixels than the budget is refused before it is decoded (a few bytes
    must not cost gigabytes), with the sample's path in the message."""
    import dataclasses
    import struct
    records = read_annotations(get_dataset_meta("coco"), data_dir / "coco" / "test_coco.json",
                               image_root=data_dir / "coco", input_size_hw=(64, 48))
    bomb = tmp_path / "bomb.ras"  # a Sun raster header declaring 20000 x 20000 pixels
    bomb.write_bytes(struct.pack(">I7i", 0x59A66A95, 20000, 20000, 24, 0, 1, 0, 0))
    ds = TopDownDataset([records[0], dataclasses.replace(records[0], image_path=bomb)],
                        get_dataset_meta("coco"), (64, 48))
    assert ds[0]["image"].shape[-2:] == (64, 48)
    with pytest.raises(InputError, match="bomb.ras.*pixel"):
        ds[1]


def test_animal_configs_read_their_own_data_roots() -> None:
    """The original base-size AP-10K / APT-36K configs have their data roots swapped."""
    checked = 0
    for name in list_configs():
        data = load_config_dict(name).get("data", {})
        for section in ("train", "val"):
            for ds in data.get(section) or []:
                if ds["name"] in ("ap10k", "apt36k"):
                    for key in ("ann_file", "img_prefix"):
                        assert ds[key].startswith(f"{ds['name']}/"), (name, ds)
                    checked += 1
    assert checked >= 8


# --------------------------------------------------------------------------------------------
# A tiny model learns the COCO sample
# --------------------------------------------------------------------------------------------

_NO_AUG = ("{name: coco, ann_file: coco/test_coco.json, img_prefix: coco/, use_udp: true, "
           "flip: false, half_body: false, rot_factor: 0, rot_prob: 0, scale_factor: 0}")
LEARN = [
    # ten copies of the 12 instances: 30 iterations per epoch of batch 4
    "data.train=[" + ", ".join([_NO_AUG] * 10) + "]",
    "data.val.0.use_gt_bbox=true",
    "data.image_size=[128, 96]", "data.heatmap_size=[32, 24]", "model.img_size=[128, 96]",
    "optim.lr=3e-3", "optim.layer_decay=1.0", "optim.weight_decay=0.0",
    "schedule.epochs=13", "schedule.steps=[11]", "schedule.warmup_iters=10",
    "runtime.eval_interval=0", "runtime.save_interval=100", "runtime.log_interval=1",
]


@pytest.mark.slow
def test_tiny_model_learns_the_coco_sample(data_dir: Path, tmp_path: Path, one_thread) -> None:
    cfg = load_config("debug/tiny_coco", [f"data.root={data_dir}", *LEARN])
    torch.manual_seed(cfg.runtime.seed)  # fit builds the same initial model from this seed
    before = evaluate_model(build_model_from_config(cfg), cfg, progress=False)["coco"]["AP"]
    summary = fit(cfg, tmp_path, show_progress=False)
    after = summary["metrics"]["coco"]["AP"]
    log = read_json_lines(tmp_path / "log.jsonl")
    losses = [r["loss"] for r in log if r["mode"] == "train"]
    assert len(losses) == 13 * 30
    first, last = np.mean(losses[:10]), np.mean(losses[-10:])
    print(f"loss {first:.5f} -> {last:.5f} ({first / last:.1f}x); AP {before:.3f} -> {after:.3f}")
    assert first / last > 4
    assert before < 0.05
    assert after > 0.5
    assert summary["best"]["metric"] == "coco/AP" and (tmp_path / "best.pth").is_file()
    record = next(r for r in log if r["mode"] == "train")
    assert {"loss", "lr", "time", "data_time", "memory", "loss_coco"} <= set(record)
    assert (tmp_path / "config.yaml").is_file()


# --------------------------------------------------------------------------------------------
# Fine-tuning on a custom keypoint layout: the docs/FINETUNE.md walkthrough, as written
# --------------------------------------------------------------------------------------------


def _doc_files() -> dict[str, str]:
    """Code blocks of docs/FINETUNE.md whose first line is '# file: NAME'."""
    text = (ROOT / "docs" / "FINETUNE.md").read_text()
    files = {}
    for body in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        first = body.splitlines()[0]
        if first.startswith("# file: "):
            files[first[len("# file: "):].strip()] = body
    return files


def test_finetune_walkthrough(data_dir: Path, tmp_path: Path, monkeypatch, one_thread) -> None:
    from vitpose.cli.main import main

    files = _doc_files()
    assert {"make_upper_body.py", "upper_body_7.yaml", "finetune_upper_body.yaml",
            "predict_upper_body.py"} <= set(files)
    monkeypatch.chdir(tmp_path)
    for name, body in files.items():
        Path(name).write_text(body)
    # 1. the sample data as a custom dataset (7 keypoints)
    monkeypatch.setattr(sys, "argv", ["make_upper_body.py", str(data_dir / "coco")])
    runpy.run_path("make_upper_body.py", run_name="__main__")
    assert Path("my_data/annotations/train.json").is_file()
    # 2. a starting checkpoint (stands in for released weights; no network in tests)
    assert main(["train", "debug/tiny_coco", "--data-root", str(data_dir), "--no-progress",
                 "--work-dir", "work_dirs/tiny_coco",
                 "--set", "schedule.epochs=1", "data.val=[]"]) == 0
    start = Path("work_dirs/tiny_coco/latest.pth")
    # 3. fine-tune: backbone from the checkpoint, a fresh 7-keypoint head
    cfg = load_config("finetune_upper_body.yaml", [f"model.weights={start}"])
    model = build_model_from_config(cfg)
    assert model.heads[0].final_layer.out_channels == 7
    source = torch.load(start, weights_only=True)["state_dict"]
    assert torch.equal(model.state_dict()["backbone.blocks.1.mlp.fc2.weight"],
                       source["backbone.blocks.1.mlp.fc2.weight"])
    assert main(["train", "finetune_upper_body.yaml", "--no-progress",
                 "--set", f"model.weights={start}", "schedule.epochs=2"]) == 0
    out = Path("work_dirs/finetune_upper_body")
    assert (out / "latest.pth").is_file() and (out / "best.pth").is_file()
    metrics = json.loads((out / "eval" / "epoch_2" / "metrics_upper_body_7.json").read_text())
    assert 0.0 <= metrics["AP"] <= 1.0
    # 4. `vitpose test` on the fine-tuned weights
    assert main(["test", "finetune_upper_body.yaml", "--weights", str(out / "best.pth"),
                 "--work-dir", "work_dirs/test_upper_body"]) == 0
    # 5. the fine-tuned model in Python
    namespace = runpy.run_path("predict_upper_body.py")
    assert namespace["result"].keypoints.shape == (1, 7, 3)


def test_load_initial_weights_reinitialises_only_mismatched_heads(tmp_path: Path,
                                                                  data_dir: Path) -> None:
    cfg = load_config("debug/tiny_coco", [f"data.root={data_dir}"])
    source = build_model_from_config(cfg)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "w.pth")
    same = build_model_from_config(cfg)
    assert load_initial_weights(same, tmp_path / "w.pth") == []
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in same.state_dict().items())
    other = build_model_from_config(load_config("debug/tiny_coco", [
        f"data.root={data_dir}", "model.num_keypoints=5", "data.train=[]", "data.val=[]"]))
    assert load_initial_weights(other, tmp_path / "w.pth") == ["keypoint_head"]


def test_load_initial_weights_reads_a_transformers_folder_as_inference_does(tmp_path: Path
                                                                           ) -> None:
    """Fine-tuning from a transformers VitPose folder starts from the model `load_model` gives:
    the blocks after the one ``out_indices`` reads are dropped, the heatmaps are the same."""
    import vitpose
    transformers = pytest.importorskip("transformers")
    bb = transformers.VitPoseBackboneConfig(
        image_size=[64, 48], patch_size=[16, 16], hidden_size=32, num_hidden_layers=3,
        num_attention_heads=2, layer_norm_eps=1e-6, out_indices=[1])
    hf_cfg = transformers.VitPoseConfig(backbone_config=bb, use_simple_decoder=True, num_labels=17)
    torch.manual_seed(0)
    ref = transformers.VitPoseForPoseEstimation(hf_cfg).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    ref.save_pretrained(tmp_path / "hf", safe_serialization=True)
    loaded = vitpose.load_model(str(tmp_path / "hf"))
    assert loaded.cfg.depth == 1
    start = vitpose.build_model("vitpose-b-simple", embed_dim=32, depth=1, num_heads=2,
                                img_size=(64, 48))
    assert load_initial_weights(start, tmp_path / "hf") == []
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(start.eval()(x), loaded(x), atol=0, rtol=0)
        torch.testing.assert_close(start(x), ref(pixel_values=x).heatmaps, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# Bad input: a missing image, a NaN loss; the last good checkpoint stays intact
# --------------------------------------------------------------------------------------------


def _missing_image_root(data_dir: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "coco").mkdir(parents=True)
    ann = json.loads((data_dir / "coco" / "test_coco.json").read_text())
    for img in ann["images"]:
        src = data_dir / "coco" / img["file_name"]
        if img is ann["images"][0]:
            img["file_name"] = "missing.jpg"
        else:
            (root / "coco" / img["file_name"]).symlink_to(src)
    (root / "coco" / "test_coco.json").write_text(json.dumps(ann))
    return root


def test_missing_training_image(data_dir: Path, tmp_path: Path, one_thread) -> None:
    root = _missing_image_root(data_dir, tmp_path)
    base = [f"data.root={root}", "data.val=[]", "schedule.epochs=1"]
    with pytest.raises(InputError, match=r"1 of 4 training images are missing.*missing\.jpg"):
        fit(load_config("debug/tiny_coco", base), tmp_path / "a", show_progress=False)
    assert not (tmp_path / "a" / "latest.pth").exists()
    summary = fit(load_config("debug/tiny_coco", base + ["runtime.on_bad_sample=skip"]),
                  tmp_path / "b", show_progress=False)
    assert summary["train"]["skipped_samples"] > 0
    assert (tmp_path / "b" / "latest.pth").is_file()


def test_corrupt_training_image(data_dir: Path, tmp_path: Path, one_thread) -> None:
    root = _missing_image_root(data_dir, tmp_path)
    (root / "coco" / "missing.jpg").write_bytes(b"not a jpeg")  # now present but unreadable
    base = [f"data.root={root}", "data.val=[]", "schedule.epochs=1"]
    with pytest.raises(InputError, match=r"cannot read training image .*missing\.jpg.*skip"):
        fit(load_config("debug/tiny_coco", base), tmp_path / "a", show_progress=False)
    assert not (tmp_path / "a" / "latest.pth").exists()


def test_truncated_training_image_is_never_used(data_dir: Path, tmp_path: Path) -> None:
    """Training and testing decode with `predict`'s reader: a truncated JPEG (which OpenCV's
    imread silently completes with grey) is an error, or with on_bad_sample=skip a counted
    skip; it never becomes a training sample."""
    from vitpose.training.evaluate import _CropDataset

    root = _missing_image_root(data_dir, tmp_path)
    ann = json.loads((root / "coco" / "test_coco.json").read_text())
    first = ann["images"][0]
    full = (data_dir / "coco" / "000000000785.jpg").read_bytes()
    (root / "coco" / first["file_name"]).write_bytes(full[: len(full) * 9 // 10])
    base = [f"data.root={root}", "data.val=[]", "data.batch_size=64"]
    dataset = build_datasets(load_config("debug/tiny_coco", base))
    bad = [i for i, r in enumerate(dataset.datasets[0].records)
           if r.image_path.name == first["file_name"]]
    assert bad
    with pytest.raises(InputError, match=r"cannot read training image .*missing\.jpg"):
        dataset[bad[0]]
    skipping = build_datasets(load_config("debug/tiny_coco", base + ["runtime.on_bad_sample=skip"]))
    loader, _ = train_module.build_loader(skipping, load_config(
        "debug/tiny_coco", base + ["runtime.on_bad_sample=skip"]), rank=0, world_size=1)
    batches = list(loader)
    assert sum(b["skipped"] for b in batches) == len(bad)
    assert sum(len(b["index"]) for b in batches) == len(skipping) - len(bad)
    # the evaluation crops use the same reader
    with pytest.raises(InputError, match="missing.jpg"):
        _CropDataset(dataset.datasets[0].records, (48, 64), True)[bad[0]]


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_trains(data_dir: Path, tmp_path: Path, amp: str, one_thread) -> None:
    cfg = load_config("debug/tiny_coco", [f"data.root={data_dir}", "data.val=[]",
                                          "schedule.epochs=1", f"runtime.amp={amp}"])
    summary = fit(cfg, tmp_path, show_progress=False)
    assert np.isfinite(summary["train"]["loss"])
    state = torch.load(tmp_path / "latest.pth", weights_only=True)
    assert state["scaler"]["amp"] == amp
    if amp == "fp16":
        assert state["scaler"]["scaler"]["scale"] > 0  # the loss scale is checkpointed


def test_nan_loss_stops_and_keeps_the_last_checkpoint(data_dir: Path, tmp_path: Path,
                                                      monkeypatch, one_thread) -> None:
    base = [f"data.root={data_dir}", "data.val=[]", "schedule.epochs=1"]
    fit(load_config("debug/tiny_coco", base), tmp_path, show_progress=False)
    latest = tmp_path / "latest.pth"
    digest = _sha(latest)

    real = train_module.multi_head_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        total, per = real(*args, **kwargs)
        calls["n"] += 1
        return (total * float("nan"), per) if calls["n"] == 2 else (total, per)

    monkeypatch.setattr(train_module, "multi_head_loss", poisoned)
    resumed = load_config("debug/tiny_coco", base[:-1] + ["schedule.epochs=2"])
    with pytest.raises(TrainingError, match="loss is nan.*last checkpoint is untouched"):
        fit(resumed, tmp_path, resume=latest, show_progress=False)
    assert _sha(latest) == digest
    torch.load(latest, weights_only=True)

    calls["n"] = 0
    skipping = load_config("debug/tiny_coco", base[:-1] + ["schedule.epochs=2",
                                                            "runtime.on_bad_sample=skip"])
    summary = fit(skipping, tmp_path / "skip", resume=latest, show_progress=False)
    assert summary["train"]["skipped_steps"] == 1
    state = torch.load(tmp_path / "skip" / "latest.pth", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values()
               if v.is_floating_point())


def test_a_diverged_model_is_reported_as_diverged(data_dir: Path, tmp_path: Path, monkeypatch,
                                                  one_thread) -> None:
    """Under on_bad_sample=skip a run can go on until the weights are NaN; validation used to
    report that as "results[0] key 'keypoints' holds NaN". The finite check now runs before
    validation, and evaluating a NaN model says that it diverged and what to do."""
    cfg = load_config("debug/tiny_coco", [f"data.root={data_dir}", "schedule.epochs=1",
                                          "runtime.on_bad_sample=skip"])
    real = train_module.train_one_epoch

    def diverging(step_module, model, *args, **kwargs):
        stats = real(step_module, model, *args, **kwargs)
        with torch.no_grad():
            model.keypoint_head.final_layer.weight.fill_(float("nan"))
        return stats

    monkeypatch.setattr(train_module, "train_one_epoch", diverging)
    with pytest.raises(TrainingError, match=r"diverged.*optim\.lr.*fp32.*clip"):
        fit(cfg, tmp_path / "a", show_progress=False)
    assert not (tmp_path / "a" / "latest.pth").exists()

    model = build_model_from_config(cfg)
    with torch.no_grad():
        model.keypoint_head.final_layer.weight.fill_(float("nan"))
    with pytest.raises(InputError, match=r"coco: the model's outputs hold NaN.*diverged") as info:
        evaluate_model(model, cfg, progress=False)
    assert "'keypoints'" not in str(info.value)


def test_nan_weights_are_never_saved(data_dir: Path) -> None:
    cfg = load_config("debug/tiny_coco", [f"data.root={data_dir}"])
    model = build_model_from_config(cfg)
    with torch.no_grad():
        model.keypoint_head.final_layer.weight[0, 0] = float("nan")
    optimizer = torch.optim.AdamW(model.parameters())
    with pytest.raises(CheckpointError, match="NaN"):
        build_training_state(model=model, optimizer=optimizer, scaler_state={}, epoch=1,
                             iteration=1, iters_per_epoch=1, config={}, rng=[])
