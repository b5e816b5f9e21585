"""Heatmap losses: the joints MSE of ViTPose and its multi-head (ViTPose+ / multi-task) form.

``JointsMSELoss(use_target_weight=True)`` of the official configs (ref §2.4): for each joint k,
``MSE(pred_k * w_k, target_k * w_k)`` averaged over the batch and the heatmap pixels; the joint
terms are summed and divided by K. There is **no 0.5 factor**. This equals the plain mean of
``w**2 * (pred - target)**2`` over ``[N, K, H, W]``.

Multi-dataset batches carry targets padded to the largest K of the mixed datasets (133 with
COCO-WholeBody in ViTPose+). As in the official ``TopDownMoE.forward_train``, every head runs on
the whole batch and its loss is the joints MSE of the whole batch with the other datasets'
samples masked out of the targets and target weights (so a head's loss is diluted by its share
of the batch, ``n_d / N`` times the mean over its own samples); the heads' losses are summed.
One fix: each head's targets are sliced to its own K; the original feeds the 133-channel targets
to heads of 17 or 14 channels and crashes (ViTPose issue #78).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["joints_mse_loss", "JointsMSELoss", "multi_head_loss"]


def joints_mse_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    target_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Joints MSE of one head (ref §2.4).

    Args:
        pred: heatmaps ``[N, K, H, W]``.
        target: target heatmaps ``[N, K, H, W]`` (exactly K channels: slice padded targets first).
        target_weight: per-joint weights ``[N, K]`` (or ``[N, K, 1]``); None weighs every joint 1.

    Returns:
        A scalar: mean over batch, joints and pixels of ``(w * (pred - target))**2``, computed in
        float32 whatever the input precision.

    Raises:
        ValueError: shapes that do not agree (e.g. 133-channel targets for a 17-channel head).
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"heatmaps {tuple(pred.shape)} and targets {tuple(target.shape)} differ in shape; "
            "slice padded targets to the head's keypoint count"
        )
    diff = pred.float() - target.float()
    if target_weight is not None:
        weight = target_weight.float().reshape(pred.shape[0], pred.shape[1], 1, 1)
        diff = diff * weight
    return diff.pow(2).mean()


class JointsMSELoss(nn.Module):
    """``JointsMSELoss`` of the official configs as a module.

    Args:
        use_target_weight: multiply predictions and targets by the per-joint weights.
        loss_weight: factor on the result (1.0 in every ViTPose config).
    """

    def __init__(self, use_target_weight: bool = True, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.use_target_weight = use_target_weight
        self.loss_weight = loss_weight

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        """See :func:`joints_mse_loss`; the weights are ignored unless ``use_target_weight``."""
        weight = target_weight if self.use_target_weight else None
        return joints_mse_loss(pred, target, weight) * self.loss_weight


def multi_head_loss(
    outputs: Mapping[int, torch.Tensor],
    dataset_index: torch.Tensor,
    target: torch.Tensor,
    target_weight: torch.Tensor,
    loss_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Loss of a batch mixed from several datasets, every head run on the whole batch.

    Args:
        outputs: ``{dataset index: heatmaps [N, K_d, H, W]}`` of every head on the whole batch
            (``ViTPose.forward_train``).
        dataset_index: ``[N]`` dataset index of each sample.
        target: ``[N, M, H, W]`` targets padded to ``M >= max K_d`` channels.
        target_weight: ``[N, M]`` weights (0 on padded channels).
        loss_weight: factor on every head's loss.

    Returns:
        ``(total, per_dataset)``: ``total = sum_d loss_d`` where ``loss_d`` is head d's joints
        MSE over the whole batch with targets and weights of other datasets' samples set to 0
        (the official masked loss); ``per_dataset`` maps each dataset present in the batch to
        the mean over its own samples, ``loss_d * N / n_d``, detached (for the logs).
    """
    n = target.shape[0]
    if n == 0:
        raise ValueError("empty batch")
    if dataset_index.shape != (n,):
        raise ValueError(f"dataset_index has shape {tuple(dataset_index.shape)}, expected [{n}]")
    total = target.new_zeros((), dtype=torch.float32)
    per_dataset: dict[int, torch.Tensor] = {}
    for d, heatmaps in sorted(outputs.items()):
        k = heatmaps.shape[1]
        if k > target.shape[1]:
            raise ValueError(
                f"head of dataset {d} predicts {k} keypoints but the targets have only "
                f"{target.shape[1]} channels"
            )
        mask = (dataset_index == d).to(target_weight.dtype)
        loss_d = joints_mse_loss(heatmaps, target[:, :k] * mask.view(-1, 1, 1, 1).to(target.dtype),
                                 target_weight[:, :k] * mask.view(-1, 1)) * loss_weight
        total = total + loss_d
        n_d = int(mask.sum().item())
        if n_d:
            per_dataset[d] = loss_d.detach() * (n / n_d)
    return total, per_dataset
