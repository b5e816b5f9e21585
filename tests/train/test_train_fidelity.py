"""Training behaves like the official code (docs/FIDELITY.md): every head on the whole batch,
zero gradients (and so AdamW updates) for absent datasets, box-centre jitter frozen per box, no
jitter for MPII, the last partial batch kept."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import vitpose
from vitpose.dataset_meta import get_dataset_meta
from vitpose.datasets.readers import read_annotations
from vitpose.datasets.topdown import AugmentConfig, TopDownDataset
from vitpose.training import train as train_module
from vitpose.training.config import list_configs, load_config
from vitpose.training.loss import joints_mse_loss
from vitpose.training.optim import GradScalerStep, build_optimizer
from vitpose.training.train import TrainStep, build_datasets, build_loader, build_model_from_config


@pytest.fixture()
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _batch(n_per_dataset, ks, hw=(16, 12), seed=0):
    gen = torch.Generator().manual_seed(seed)
    index = torch.tensor([d for d, n in enumerate(n_per_dataset) for _ in range(n)])
    n = len(index)
    m = max(ks)
    target = torch.zeros(n, m, *hw)
    weight = torch.zeros(n, m)
    for i, d in enumerate(index.tolist()):
        target[i, :ks[d]] = torch.rand(ks[d], *hw, generator=gen)
        weight[i, :ks[d]] = 1.0
    images = torch.randn(n, 3, 64, 48, generator=gen)
    return images, index, target, weight


def test_every_head_sees_the_whole_batch(one_thread):
    """Official TopDownMoE.forward_train: each head (with BatchNorm in the classic decoder)
    normalises with the statistics of the whole per-GPU batch, so its running statistics equal
    those of the head run on all samples' features, not only its own dataset's."""
    torch.manual_seed(0)
    model = vitpose.build_model("vitpose-b-multi", embed_dim=32, depth=2, num_heads=2,
                                img_size=(64, 48), drop_path_rate=0.0).train()
    images, index, target, weight = _batch([3, 1, 2], [17, 14, 16])
    reference = copy.deepcopy(model)
    with torch.no_grad():
        feats = reference.backbone(images)
        for head in reference.heads:
            head(feats)  # train mode: BN updates its running statistics from all 6 samples
    loss, per_dataset = TrainStep(model)(images, index, target, weight)
    assert set(per_dataset) == {0, 1, 2} and torch.isfinite(loss)
    checked = 0
    for ours, ref in zip(model.heads, reference.heads):
        for (name, a), (_, b) in zip(ours.named_buffers(), ref.named_buffers()):
            if name.endswith(("running_mean", "running_var")):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
                checked += 1
    assert checked == 3 * 2 * 2  # 3 heads x 2 BatchNorm layers x (mean, var)

    # the loss is the official masked loss on the whole batch, summed over the heads
    with torch.no_grad():
        expected = sum(
            joints_mse_loss(head(feats), target[:, :k] * (index == d).float()[:, None, None, None],
                            weight[:, :k] * (index == d).float()[:, None])
            for d, (head, k) in enumerate(zip(reference.heads, (17, 14, 16))))
    torch.testing.assert_close(loss.detach(), expected)


def test_absent_dataset_gets_zero_gradients_and_adamw_still_updates_it(data_dir, one_thread):
    """A batch of dataset 0 only: the expert and head of dataset 1 get zero gradients (not
    None), so AdamW applies weight decay to them, as in the official masked computation."""
    cfg = load_config("debug/tiny_plus_coco_ap10k", [f"data.root={data_dir}"])
    torch.manual_seed(0)
    model = build_model_from_config(cfg, with_weights=False)
    optimizer = build_optimizer(model, cfg.optim, model.cfg.depth)
    for group in optimizer.param_groups:
        group["lr"] = 1e-3
    step = GradScalerStep("none", "cpu", clip_grad=1.0)
    images, index, target, weight = _batch([4], [17])
    expert = model.backbone.blocks[0].mlp.experts[1].weight
    head = model.associate_keypoint_heads[0].final_layer.weight
    before = expert.detach().clone(), head.detach().clone()
    loss, _ = TrainStep(model)(images, index, target, weight)
    step(loss, optimizer, zero_grad=False)
    assert torch.count_nonzero(expert.grad) == 0 and torch.count_nonzero(head.grad) == 0
    # weight decay (AdamW: w -= lr * wd * w) moved the absent dataset's weights
    assert not torch.equal(expert.detach(), before[0])
    assert not torch.equal(head.detach(), before[1])
    torch.testing.assert_close(expert.detach(), before[0] * (1 - 1e-3 * 0.1))
    assert "exp_avg" in optimizer.state[expert]


def _coco_dataset(data_dir: Path, **augment) -> TopDownDataset:
    records = read_annotations("coco", data_dir / "coco" / "test_coco.json",
                               image_root=data_dir / "coco", input_size_hw=(64, 48))
    still = {"flip_prob": 0.0, "half_body_prob": 0.0, "scale_factor": 0.0, "rot_prob": 0.0}
    return TopDownDataset(records, get_dataset_meta("coco"), (64, 48), train=True, use_udp=True,
                          augment=AugmentConfig(**{**still, **augment}), seed=3)


def test_center_jitter_is_drawn_once_per_box(data_dir: Path):
    """Official _xywh2cs: the jitter is drawn when the training set is built, then every epoch
    sees the same centre for a box; per_iteration (our option) draws it at every load."""
    ds = _coco_dataset(data_dir, center_jitter_prob=1.0)
    centers = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        centers.append(np.stack([ds[i]["center"].numpy() for i in range(len(ds))]))
    base = np.stack([r.center for r in ds.records])
    assert np.array_equal(centers[0], centers[1]) and np.array_equal(centers[0], centers[2])
    moved = np.abs(centers[0] - base)
    box_wh = np.stack([r.box_xywh[2:4] for r in ds.records])
    assert (moved > 0).all() and (moved <= 0.2 * box_wh + 1e-3).all()
    # the same seed rebuilds the same centres (reproducible runs)
    again = _coco_dataset(data_dir, center_jitter_prob=1.0)
    assert np.array_equal(np.stack([again[i]["center"].numpy() for i in range(len(again))]),
                          centers[0])
    # probability 0.3: some boxes keep their centre, the others move
    some = _coco_dataset(data_dir, center_jitter_prob=0.3)
    kept = [np.array_equal(some[i]["center"].numpy(), base[i]) for i in range(len(some))]
    assert any(kept) and not all(kept)

    per_iteration = _coco_dataset(data_dir, center_jitter_prob=1.0, center_jitter="per_iteration")
    per_iteration.set_epoch(0)
    a = per_iteration[0]["center"].numpy()
    per_iteration.set_epoch(1)
    assert not np.array_equal(a, per_iteration[0]["center"].numpy())
    with pytest.raises(ValueError, match="center_jitter"):
        AugmentConfig(center_jitter="per_epoch")


def test_mpii_centres_are_never_jittered(data_dir: Path):
    """The official MPII dataset takes its centre from the annotation (no _xywh2cs): every
    packaged config that trains MPII turns the jitter off, and the samples keep their centres."""
    trained = 0
    for name in list_configs():
        for entry in load_config(name).data.train:
            if entry.name == "mpii":
                assert entry.center_jitter_prob == 0.0, name
                trained += 1
    assert trained >= 10  # the multi-task and ViTPose+ configs
    entry = next(d for d in load_config("multitask/vitpose_b_coco_aic_mpii").data.train
                 if d.name == "mpii")
    records = read_annotations("mpii", data_dir / "mpii" / "test_mpii.json",
                               image_root=data_dir / "mpii", input_size_hw=(64, 48))
    augment = dataclasses.replace(train_module._augment(entry), flip_prob=0.0, scale_factor=0.0,
                                  rot_prob=0.0)
    ds = TopDownDataset(records, get_dataset_meta("mpii"), (64, 48), train=True,
                        use_udp=True, augment=augment, seed=0)
    for epoch in range(2):
        ds.set_epoch(epoch)
        for i, rec in enumerate(records):
            assert np.array_equal(ds[i]["center"].numpy(), rec.center)


def test_last_partial_batch_is_kept(data_dir: Path):
    """Official training loaders use drop_last=False: every sample is seen each epoch."""
    cfg = load_config("debug/tiny_coco", [f"data.root={data_dir}", "data.batch_size=5"])
    dataset = build_datasets(cfg)
    assert len(dataset) % 5 != 0
    loader, _sampler = build_loader(dataset, cfg, rank=0, world_size=1)
    assert len(loader) == -(-len(dataset) // 5)
    sizes = [len(b["index"]) for b in loader]
    assert sum(sizes) == len(dataset) and sizes[-1] == len(dataset) % 5
