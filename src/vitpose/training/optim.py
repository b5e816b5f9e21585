"""Optimiser, learning-rate schedule and the mixed-precision / clipping step.

ViTPose fine-tunes with AdamW and layer-wise lr decay as in BEiT (https://arxiv.org/abs/2106.08254)
and MAE (https://arxiv.org/abs/2111.06377); the official constructor is
``mmcv_custom/layer_decay_optimizer_constructor.py`` (ref §2.1). With depth D:

* layer id 0: ``pos_embed``, ``patch_embed.*`` (and ``cls_token`` / ``mask_token``);
* layer id i+1: ``blocks.i.*`` (ViTPose+ experts included);
* layer id D+1: everything else (``last_norm``, ``keypoint_head``, ``associate_keypoint_heads``).

A parameter's lr is ``lr * layer_decay ** (D + 1 - id)``. Weight decay is off for 1-D tensors,
names ending in ``.bias`` and ``pos_embed``. The schedule (ref §2.2) is a pure function of the
iteration: linear warm-up over the first iterations from ``warmup_ratio``, then ``gamma`` steps at
given epochs. ``GradScalerStep`` does backward (fp16 loss scaling or none), unscaling, global-norm
clipping and the optimiser step, and returns the gradient norm. Everything runs on CPU as well.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import nn

from vitpose.errors import ConfigError
from vitpose.training.config import OptimConfig, ScheduleConfig

__all__ = [
    "layer_id_for_vit",
    "param_groups_layer_decay",
    "build_optimizer",
    "lr_at",
    "apply_lr",
    "GradScalerStep",
]

_EMBEDDING_NAMES = ("pos_embed", "cls_token", "mask_token")
_BLOCK = re.compile(r"^blocks\.(\d+)\.")


def _strip_prefixes(name: str) -> str:
    for prefix in ("module.", "_orig_mod."):  # DDP and torch.compile wrappers
        name = name.removeprefix(prefix)
    return name.removeprefix("backbone.")


def layer_id_for_vit(name: str, depth: int) -> int:
    """Layer id of a parameter for layer-wise lr decay (ref §2.1).

    Args:
        name: parameter name as in ``model.named_parameters()``; backbone names may carry the
            ``backbone.`` prefix (whole model) or not (backbone alone); ``module.`` is ignored.
        depth: number of transformer blocks D.

    Returns:
        0 for the embeddings, ``i + 1`` for ``blocks.i.*``, ``depth + 1`` for the rest.
    """
    inner = _strip_prefixes(name)
    if inner in _EMBEDDING_NAMES or inner.startswith("patch_embed."):
        return 0
    match = _BLOCK.match(inner)
    if match:
        return int(match.group(1)) + 1
    return depth + 1


def _is_no_decay(name: str, param: torch.Tensor, extra: frozenset[str]) -> bool:
    if param.ndim <= 1 or name.endswith(".bias"):
        return True
    inner = _strip_prefixes(name)
    if inner.rsplit(".", 1)[-1] == "pos_embed":
        return True
    return any(name == n or inner == n or name.endswith("." + n) for n in extra)


def param_groups_layer_decay(
    model: nn.Module,
    weight_decay: float,
    layer_decay: float,
    depth: int,
    no_weight_decay_names: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """Split trainable parameters into groups by layer id and by weight decay.

    Args:
        model: the network; parameter names as in the official checkpoints
            (``backbone.blocks.{i}.*``, ``keypoint_head.*``, ...).
        weight_decay: decay of the decayed groups.
        layer_decay: lr ratio between consecutive layers (1.0: no layer decay).
        depth: number of transformer blocks D.
        no_weight_decay_names: more names exempt from decay, matched as the full name or as a
            dotted suffix (``pos_embed``, ``backbone.cls_token``); 1-D tensors, ``.bias`` names
            and ``pos_embed`` are always exempt.

    Returns:
        Optimiser groups ordered by layer id, each with ``params``, ``param_names``,
        ``weight_decay``, ``lr_scale`` (``layer_decay ** (depth + 1 - id)``), ``layer_id`` and
        ``group_name`` (``layer_{id}_decay`` / ``layer_{id}_no_decay``). Frozen parameters
        (``requires_grad=False``) are left out.

    Raises:
        ConfigError: ``layer_decay`` or ``depth`` out of range, or nothing to train.
    """
    if not 0.0 < layer_decay <= 1.0:
        raise ConfigError(f"layer_decay must be in (0, 1], got {layer_decay}")
    if depth < 0:
        raise ConfigError(f"depth must be >= 0, got {depth}")
    extra = frozenset(no_weight_decay_names)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        layer_id = layer_id_for_vit(name, depth)
        decay = not _is_no_decay(name, param, extra)
        key = (layer_id, decay)
        if key not in groups:
            groups[key] = {
                "params": [],
                "param_names": [],
                "weight_decay": weight_decay if decay else 0.0,
                "lr_scale": layer_decay ** (depth + 1 - layer_id),
                "layer_id": layer_id,
                "group_name": f"layer_{layer_id}_{'decay' if decay else 'no_decay'}",
            }
        groups[key]["params"].append(param)
        groups[key]["param_names"].append(name)
    if not groups:
        raise ConfigError("the model has no trainable parameters")
    # Sort by layer id, no-decay group first, so the order does not depend on module order.
    return [groups[key] for key in sorted(groups)]


def build_optimizer(
    model: nn.Module,
    cfg: OptimConfig,
    depth: int,
    no_weight_decay_names: Iterable[str] | None = None,
) -> torch.optim.AdamW:
    """AdamW over layer-decay groups (ref §2.1).

    Args:
        model: the network (unwrapped from DDP, or not: ``module.`` is ignored).
        cfg: optimiser settings.
        depth: number of transformer blocks D.
        no_weight_decay_names: extra no-decay names; by default ``model.no_weight_decay()``
            when the model has it.

    Returns:
        The optimiser, each group's lr already set to ``cfg.lr * lr_scale``.
    """
    if no_weight_decay_names is None:
        declared = getattr(model, "no_weight_decay", None)
        no_weight_decay_names = declared() if callable(declared) else ()
    groups = param_groups_layer_decay(
        model, cfg.weight_decay, cfg.layer_decay, depth, no_weight_decay_names
    )
    for group in groups:
        group["lr"] = cfg.lr * group["lr_scale"]
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay
    )


def lr_at(iteration: int, iters_per_epoch: int, base_lr: float, cfg: ScheduleConfig) -> float:
    """Learning rate (before per-group ``lr_scale``) for one optimiser step (ref §2.2).

    The epoch part follows mmcv's step policy: during 0-based epoch ``e`` the rate is
    ``base_lr * gamma ** (number of steps <= e)``. During the first ``warmup_iters`` global
    iterations it is further multiplied by ``1 - (1 - i / warmup_iters) * (1 - warmup_ratio)``.

    Args:
        iteration: 0-based global iteration (optimiser steps already taken).
        iters_per_epoch: iterations in one epoch (batches per process).
        base_lr: the configured lr.
        cfg: schedule settings.

    Returns:
        The learning rate for this iteration.

    Raises:
        ConfigError: a negative iteration or a non-positive ``iters_per_epoch``.
    """
    if iteration < 0:
        raise ConfigError(f"iteration must be >= 0, got {iteration}")
    if iters_per_epoch <= 0:
        raise ConfigError(f"iters_per_epoch must be > 0, got {iters_per_epoch}")
    epoch = iteration // iters_per_epoch
    lr = base_lr * cfg.gamma ** sum(1 for step in cfg.steps if epoch >= step)
    if iteration < cfg.warmup_iters:
        lr *= 1.0 - (1.0 - iteration / cfg.warmup_iters) * (1.0 - cfg.warmup_ratio)
    return lr


def apply_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's lr to ``lr * group["lr_scale"]`` (scale 1 when a group has none)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def _grad_params(parameters: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    return [p for p in parameters if p.grad is not None]


def _total_norm(parameters: list[torch.Tensor]) -> torch.Tensor:
    if not parameters:
        return torch.tensor(0.0)
    norms = torch.stack([p.grad.detach().float().norm(2).cpu() for p in parameters])
    return norms.norm(2)


def _fill_missing_grads(parameters: Iterable[torch.Tensor]) -> None:
    """Give a zero gradient to every trainable parameter that got none in this step.

    Officially every expert and head takes part in every step (experts are masked, heads see the
    whole batch) and ``zero_grad`` keeps zero tensors, so a dataset absent from a step still
    has a zero gradient: AdamW then applies its weight decay and momentum to that expert. Our
    experts run only on their own samples, so their gradient would be None and AdamW would skip
    them.
    """
    for p in parameters:
        if p.requires_grad and p.grad is None:
            p.grad = torch.zeros_like(p)


def _optimizer_params(optimizer: torch.optim.Optimizer) -> Iterator[torch.Tensor]:
    for group in optimizer.param_groups:
        yield from group["params"]


class GradScalerStep:
    """Backward, unscale, clip and step in one call, with optional mixed precision.

    ``amp="fp16"`` scales the loss with a ``torch.amp.GradScaler`` and skips steps whose
    gradients overflow; ``"bf16"`` only needs ``autocast()`` in the forward pass (no scaling);
    ``"none"`` is plain fp32, as in the official recipe.

    Args:
        amp: ``"none"``, ``"bf16"`` or ``"fp16"``.
        device_type: ``"cpu"`` or ``"cuda"`` (the device the model runs on).
        clip_grad: max global L2 norm of the gradients; None or 0 for no clipping.
    """

    _DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

    def __init__(self, amp: str = "none", device_type: str = "cpu", clip_grad: float | None = 1.0):
        if amp not in ("none", "bf16", "fp16"):
            raise ConfigError(f"amp must be one of 'none', 'bf16', 'fp16', got {amp!r}")
        self.amp = amp
        self.device_type = torch.device(device_type).type
        self.clip_grad = clip_grad if clip_grad else None
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=amp == "fp16")

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None for fp32."""
        return self._DTYPES.get(self.amp)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Context manager for the forward pass and loss (a no-op for ``amp="none"``)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def __call__(
        self,
        loss: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        parameters: Iterable[torch.Tensor] | None = None,
        update: bool = True,
        zero_grad: bool = True,
    ) -> float | None:
        """Back-propagate ``loss`` and, if ``update``, clip and take an optimiser step.

        Args:
            loss: scalar loss (divide by the accumulation count yourself when accumulating).
            optimizer: the optimiser to step.
            parameters: tensors to clip; by default every parameter of ``optimizer``.
            update: False only accumulates gradients (no clip, no step).
            zero_grad: clear gradients after the step.

        Returns:
            The global gradient L2 norm before clipping (inf or nan when an fp16 step was
            skipped), or None when ``update`` is False.
        """
        self.scaler.scale(loss).backward()
        if not update:
            return None
        if parameters is None:
            parameters = list(_optimizer_params(optimizer))
        _fill_missing_grads(_optimizer_params(optimizer))
        params = _grad_params(parameters)
        self.scaler.unscale_(optimizer)  # no-op when disabled
        if self.clip_grad is not None and params:
            norm = torch.nn.utils.clip_grad_norm_(params, self.clip_grad)
        else:
            norm = _total_norm(params)
        self.scaler.step(optimizer)
        self.scaler.update()
        if zero_grad:
            optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def state_dict(self) -> dict[str, Any]:
        """Plain-data state for checkpoints (the loss scale when fp16)."""
        return {"amp": self.amp, "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; an fp16 scale is restored only into an fp16 step."""
        scaler_state = state.get("scaler") or {}
        if self.amp == "fp16" and scaler_state:
            self.scaler.load_state_dict(scaler_state)
