"""Training behaves like the official code (docs/FIDELITY.md): every head on the whole batch,
zero gradients (and so AdamW updates) for absent datasets, box-centre jitter frozen per box, no
jitter for MPII, the last partial batch kept."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

import vitpose
from vitpose.engine.config import load_config
from vitpose.engine.loss import joints_mse_loss
from vitpose.engine.optim import GradScalerStep, build_optimizer
from vitpose.engine.train import TrainStep, build_datasets, build_loader, build_model_from_config


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
    model = build_model_from_config(cfg, load_weights=False)
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
