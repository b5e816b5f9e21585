"""Heatmap losses: the joints MSE of ViTPose and its multi-head (ViTPose+ / multi-task) form.

``JointsMSELoss(use_target_weight=True)`` of the official configs (ref §2.4): for each joint k,
``MSE(pred_k * w_k, target_k * w_k)`` averaged over the batch and the heatmap pixels; the joint
terms are summed and divided by K. There is **no 0.5 factor**. This equals the plain mean of
``w**2 * (pred - target)**2`` over ``[N, K, H, W]``.

Multi-dataset batches carry targets padded to the largest K of the mixed datasets (133 with
COCO-WholeBody in ViTPose+). Each head sees only its own samples, its targets sliced to its own
K; its loss is weighted by its share of the batch ``n_d / N`` and the heads' losses are summed.
This is exactly the official masked mean (the head's loss computed on the whole batch with the
other datasets' samples zeroed), without the official crash: the original feeds the 133-channel
targets to heads of 17 or 14 channels (ViTPose issue #78).
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
    outputs: Mapping[int, tuple[torch.Tensor, torch.Tensor]],
    target: torch.Tensor,
    target_weight: torch.Tensor,
    loss_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Loss of a batch mixed from several datasets, each with its own head.

    Args:
        outputs: ``{dataset index: (rows [n_d], heatmaps [n_d, K_d, H, W])}`` as returned by
            ``ViTPose.forward_heads``; ``rows`` index the batch.
        target: ``[N, M, H, W]`` targets padded to ``M >= max K_d`` channels.
        target_weight: ``[N, M]`` weights (0 on padded channels).
        loss_weight: factor on every head's loss.

    Returns:
        ``(total, per_dataset)``: ``total = sum_d (n_d / N) * loss_d`` where ``loss_d`` is the
        joints MSE of head d on its own samples and its own K channels; ``per_dataset`` maps each
        dataset index to its (unweighted) ``loss_d``, detached.
    """
    n = target.shape[0]
    if n == 0:
        raise ValueError("empty batch")
    total = target.new_zeros((), dtype=torch.float32)
    per_dataset: dict[int, torch.Tensor] = {}
    for d, (rows, heatmaps) in sorted(outputs.items()):
        k = heatmaps.shape[1]
        if k > target.shape[1]:
            raise ValueError(
                f"head of dataset {d} predicts {k} keypoints but the targets have only "
                f"{target.shape[1]} channels"
            )
        loss_d = joints_mse_loss(heatmaps, target[rows, :k], target_weight[rows, :k]) * loss_weight
        total = total + loss_d * (len(rows) / n)
        per_dataset[d] = loss_d.detach()
    return total, per_dataset
