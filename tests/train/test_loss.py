"""Joints MSE loss and the multi-head (ViTPose+) loss (training/loss.py), against hand-written
references of the official formulas (ref §2.4)."""

from __future__ import annotations

import pytest
import torch

from vitpose.training.loss import JointsMSELoss, joints_mse_loss, multi_head_loss


def _official_joints_mse(pred, target, weight):
    """mmpose JointsMSELoss(use_target_weight=True), written joint by joint."""
    n, k = pred.shape[:2]
    pred = pred.reshape(n, k, -1)
    target = target.reshape(n, k, -1)
    loss = 0.0
    for j in range(k):
        w = weight[:, j].reshape(n, 1)
        loss = loss + torch.nn.functional.mse_loss(pred[:, j] * w, target[:, j] * w)
    return loss / k


def test_joints_mse_matches_official_per_joint_formula() -> None:
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 5, 8, 6, generator=gen)
    target = torch.rand(3, 5, 8, 6, generator=gen)
    weight = (torch.rand(3, 5, generator=gen) > 0.3).float()
    expected = _official_joints_mse(pred, target, weight)
    assert torch.allclose(joints_mse_loss(pred, target, weight), expected, rtol=1e-6)
    assert torch.allclose(JointsMSELoss()(pred, target, weight), expected, rtol=1e-6)
    # [N, K, 1] weights, as mmpose stores them, give the same.
    assert torch.allclose(joints_mse_loss(pred, target, weight[..., None]), expected, rtol=1e-6)


def test_no_half_factor_and_unweighted_variant() -> None:
    pred = torch.ones(1, 2, 2, 2)
    target = torch.zeros(1, 2, 2, 2)
    weight = torch.tensor([[1.0, 0.0]])
    # one joint fully wrong by 1 (MSE 1), the other masked: (1 + 0) / 2, no 0.5 factor
    assert joints_mse_loss(pred, target, weight).item() == pytest.approx(0.5)
    assert JointsMSELoss(use_target_weight=False)(pred, target, weight).item() == pytest.approx(1.0)
    assert JointsMSELoss(loss_weight=2.0)(pred, target, weight).item() == pytest.approx(1.0)


def test_low_precision_inputs_give_a_float32_loss() -> None:
    pred = torch.rand(2, 3, 4, 4).to(torch.bfloat16)
    loss = joints_mse_loss(pred, torch.zeros(2, 3, 4, 4), torch.ones(2, 3))
    assert loss.dtype == torch.float32


def _official_masked_head_loss(pred_full, target, weight, mask):
    """Official TopDownMoE: each head on the whole batch, other datasets' samples masked out,
    with the fix the original lacks (targets sliced to the head's K)."""
    k = pred_full.shape[1]
    m = mask.float()
    return _official_joints_mse(pred_full * m[:, None, None, None],
                                target[:, :k] * m[:, None, None, None],
                                weight[:, :k] * m[:, None])


def test_vitpose_plus_133_padding_does_not_crash_and_equals_masked_mean() -> None:
    """The original feeds 133-channel targets to 17/14-channel heads (issue #78) and crashes;
    ours slices each head's targets to its K. Every head sees the whole batch; the result equals
    the official masked mean."""
    gen = torch.Generator().manual_seed(1)
    n, h, w = 7, 8, 6
    index = torch.tensor([0, 1, 0, 5, 1, 0, 5])
    ks = {0: 17, 1: 14, 5: 133, 3: 17}  # dataset 3 has a head but no sample in this batch
    target = torch.zeros(n, 133, h, w)
    weight = torch.zeros(n, 133)
    for i, d in enumerate(index.tolist()):
        target[i, :ks[d]] = torch.rand(ks[d], h, w, generator=gen)
        weight[i, :ks[d]] = (torch.rand(ks[d], generator=gen) > 0.2).float()
    preds = {d: torch.rand(n, k, h, w, generator=gen, requires_grad=True) for d, k in ks.items()}
    total, per_dataset = multi_head_loss(preds, index, target, weight)

    expected = sum(_official_masked_head_loss(preds[d], target, weight, index == d) for d in ks)
    assert torch.allclose(total, expected, rtol=1e-5)
    assert set(per_dataset) == {0, 1, 5}  # dataset 3 is absent: no loss to log
    for d in (0, 1, 5):
        rows = index == d
        own = _official_joints_mse(preds[d][rows], target[rows, :ks[d]], weight[rows, :ks[d]])
        assert torch.allclose(per_dataset[d], own, rtol=1e-5)
        # weighted by the share of the batch n_d / N
    assert torch.allclose(total, sum(per_dataset[d] * (index == d).sum() / n for d in (0, 1, 5)))

    # The unsliced official call is what crashes.
    with pytest.raises((RuntimeError, ValueError)):
        _official_joints_mse(preds[0], target, weight)
    with pytest.raises(ValueError, match="slice padded targets"):
        joints_mse_loss(preds[0], target, weight)

    # The loss reaches each head only through its own samples' outputs (BatchNorm inside the
    # head couples the samples, see test_train_fidelity.py); an absent dataset's head gets 0.
    total.backward()
    for d in ks:
        other = (index != d).nonzero(as_tuple=True)[0]
        assert preds[d].grad[other].abs().sum() == 0
        assert preds[d].grad[index == d].abs().sum() > 0 or d == 3
    assert preds[3].grad is not None and preds[3].grad.abs().sum() == 0


def test_head_with_more_channels_than_targets_is_rejected() -> None:
    outputs = {0: torch.zeros(2, 17, 4, 4)}
    with pytest.raises(ValueError, match="17 keypoints"):
        multi_head_loss(outputs, torch.zeros(2, dtype=torch.long), torch.zeros(2, 14, 4, 4),
                        torch.ones(2, 14))
