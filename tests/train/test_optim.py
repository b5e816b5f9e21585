"""Layer-decay parameter groups, the lr schedule and the AMP/clipping step (training/optim.py).

Expected multipliers and rates are written out by hand from ref §2.1/§2.2, not recomputed with
the formulas under test.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitpose.errors import ConfigError
from vitpose.training.config import OptimConfig, ScheduleConfig
from vitpose.training.optim import (
    GradScalerStep,
    apply_lr,
    build_optimizer,
    layer_id_for_vit,
    lr_at,
    param_groups_layer_decay,
)

C = 8  # width of the toy model


def _head(num_keypoints: int) -> nn.Module:
    head = nn.Module()
    head.deconv_layers = nn.Sequential(
        nn.ConvTranspose2d(C, 4, 4, 2, 1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.ConvTranspose2d(4, 4, 4, 2, 1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
    )
    head.final_layer = nn.Conv2d(4, num_keypoints, 1)
    return head


def _block() -> nn.Module:
    block = nn.Module()
    block.norm1 = nn.LayerNorm(C)
    block.attn = nn.Module()
    block.attn.qkv = nn.Linear(C, 3 * C)
    block.attn.proj = nn.Linear(C, C)
    block.norm2 = nn.LayerNorm(C)
    block.mlp = nn.Module()
    block.mlp.fc1 = nn.Linear(C, 4 * C)
    block.mlp.fc2 = nn.Linear(4 * C, C - 2)
    block.mlp.experts = nn.ModuleList([nn.Linear(4 * C, 2) for _ in range(2)])
    return block


class ToyViTPose(nn.Module):
    """Three blocks, official parameter names, a main head and one associate head."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Module()
        self.backbone.pos_embed = nn.Parameter(torch.zeros(1, 5, C))
        self.backbone.patch_embed = nn.Module()
        self.backbone.patch_embed.proj = nn.Conv2d(3, C, 4, 4)
        self.backbone.blocks = nn.ModuleList([_block() for _ in range(3)])
        self.backbone.last_norm = nn.LayerNorm(C)
        self.keypoint_head = _head(17)
        self.associate_keypoint_heads = nn.ModuleList([_head(14)])


DEPTH = 3
RATE = 0.75
WD = 0.1

# lr multipliers for rate 0.75 and depth 3, by hand: 0.75**4, 0.75**3, 0.75**2, 0.75**1, 1.
EMBED_SCALE = 0.31640625
BLOCK_SCALE = {0: 0.421875, 1: 0.5625, 2: 0.75}
TOP_SCALE = 1.0

# Weight matrices (decayed) inside each block; every other block parameter is 1-D or a bias.
BLOCK_DECAYED = {
    "attn.qkv.weight",
    "attn.proj.weight",
    "mlp.fc1.weight",
    "mlp.fc2.weight",
    "mlp.experts.0.weight",
    "mlp.experts.1.weight",
}
BLOCK_NOT_DECAYED = {
    "norm1.weight", "norm1.bias", "attn.qkv.bias", "attn.proj.bias", "norm2.weight",
    "norm2.bias", "mlp.fc1.bias", "mlp.fc2.bias", "mlp.experts.0.bias", "mlp.experts.1.bias",
}
HEAD_DECAYED = {"deconv_layers.0.weight", "deconv_layers.3.weight", "final_layer.weight"}
HEAD_NOT_DECAYED = {
    "deconv_layers.1.weight", "deconv_layers.1.bias", "deconv_layers.4.weight",
    "deconv_layers.4.bias", "final_layer.bias",
}


def _expected() -> dict[str, tuple[float, float]]:
    """name -> (lr multiplier, weight decay), spelled out."""
    table = {
        "backbone.pos_embed": (EMBED_SCALE, 0.0),
        "backbone.patch_embed.proj.weight": (EMBED_SCALE, WD),
        "backbone.patch_embed.proj.bias": (EMBED_SCALE, 0.0),
        "backbone.last_norm.weight": (TOP_SCALE, 0.0),
        "backbone.last_norm.bias": (TOP_SCALE, 0.0),
    }
    for i, scale in BLOCK_SCALE.items():
        for suffix in BLOCK_DECAYED:
            table[f"backbone.blocks.{i}.{suffix}"] = (scale, WD)
        for suffix in BLOCK_NOT_DECAYED:
            table[f"backbone.blocks.{i}.{suffix}"] = (scale, 0.0)
    for prefix in ("keypoint_head", "associate_keypoint_heads.0"):
        for suffix in HEAD_DECAYED:
            table[f"{prefix}.{suffix}"] = (TOP_SCALE, WD)
        for suffix in HEAD_NOT_DECAYED:
            table[f"{prefix}.{suffix}"] = (TOP_SCALE, 0.0)
    return table


def test_layer_ids() -> None:
    assert layer_id_for_vit("backbone.pos_embed", 12) == 0
    assert layer_id_for_vit("backbone.patch_embed.proj.weight", 12) == 0
    assert layer_id_for_vit("backbone.cls_token", 12) == 0
    assert layer_id_for_vit("backbone.blocks.0.attn.qkv.weight", 12) == 1
    assert layer_id_for_vit("backbone.blocks.11.mlp.experts.5.bias", 12) == 12
    assert layer_id_for_vit("backbone.last_norm.weight", 12) == 13
    assert layer_id_for_vit("keypoint_head.final_layer.weight", 12) == 13
    assert layer_id_for_vit("associate_keypoint_heads.4.deconv_layers.0.weight", 12) == 13
    # DDP prefix and a bare backbone
    assert layer_id_for_vit("module.backbone.blocks.3.norm1.weight", 12) == 4
    assert layer_id_for_vit("blocks.3.norm1.weight", 12) == 4
    assert layer_id_for_vit("pos_embed", 12) == 0


def test_every_parameter_gets_hand_computed_lr_scale_and_decay() -> None:
    model = ToyViTPose()
    model.associate_keypoint_heads[0].final_layer.bias.requires_grad_(False)
    groups = param_groups_layer_decay(model, WD, RATE, DEPTH)

    expected = _expected()
    del expected["associate_keypoint_heads.0.final_layer.bias"]  # frozen: skipped
    seen = {}
    for group in groups:
        for name, _param in zip(group["param_names"], group["params"]):
            assert name not in seen, f"{name} in two groups"
            seen[name] = (group["lr_scale"], group["weight_decay"])
    assert set(seen) == set(expected)
    for name, (scale, decay) in expected.items():
        assert seen[name][0] == pytest.approx(scale, rel=1e-12), name
        assert seen[name][1] == decay, name
    # Groups are split by layer and decay, ordered by layer id.
    assert [g["layer_id"] for g in groups] == sorted(g["layer_id"] for g in groups)
    names = {g["group_name"] for g in groups}
    assert names >= {"layer_0_decay", "layer_0_no_decay", "layer_4_decay"}


def test_build_optimizer_sets_group_lrs_and_extra_no_decay_names() -> None:
    model = ToyViTPose()
    model.backbone.cls_token = nn.Parameter(torch.zeros(1, 1, C))  # 3-D: decayed unless named
    cfg = OptimConfig(lr=5e-4, weight_decay=WD, layer_decay=RATE)
    optimizer = build_optimizer(model, cfg, DEPTH, no_weight_decay_names=["cls_token"])
    assert isinstance(optimizer, torch.optim.AdamW)
    by_name = {
        name: group for group in optimizer.param_groups for name in group["param_names"]
    }
    assert by_name["backbone.cls_token"]["weight_decay"] == 0.0
    assert by_name["backbone.cls_token"]["lr"] == pytest.approx(5e-4 * EMBED_SCALE)
    assert by_name["keypoint_head.final_layer.weight"]["lr"] == pytest.approx(5e-4)
    assert by_name["backbone.blocks.0.attn.qkv.weight"]["lr"] == pytest.approx(5e-4 * 0.421875)
    assert optimizer.defaults["betas"] == (0.9, 0.999)

    apply_lr(optimizer, 1e-3)
    assert by_name["backbone.blocks.1.mlp.fc1.weight"]["lr"] == pytest.approx(1e-3 * 0.5625)
    assert by_name["backbone.last_norm.bias"]["lr"] == pytest.approx(1e-3)


def test_build_optimizer_uses_model_no_weight_decay() -> None:
    model = ToyViTPose()
    model.backbone.cls_token = nn.Parameter(torch.zeros(1, 1, C))
    model.no_weight_decay = lambda: {"backbone.cls_token"}
    optimizer = build_optimizer(model, OptimConfig(layer_decay=RATE), DEPTH)
    group = next(g for g in optimizer.param_groups if "backbone.cls_token" in g["param_names"])
    assert group["weight_decay"] == 0.0


def test_layer_decay_checked() -> None:
    with pytest.raises(ConfigError, match="layer_decay"):
        param_groups_layer_decay(ToyViTPose(), WD, 1.5, DEPTH)
    frozen = ToyViTPose().requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable"):
        param_groups_layer_decay(frozen, WD, RATE, DEPTH)


def test_schedule_values_by_hand() -> None:
    cfg = ScheduleConfig()  # warm-up 500 from 0.001, x0.1 at epochs 170 and 200
    base, per_epoch = 5e-4, 1000
    assert lr_at(0, per_epoch, base, cfg) == pytest.approx(5e-7)
    # 1 - (1 - 250/500) * (1 - 0.001) = 0.5005
    assert lr_at(250, per_epoch, base, cfg) == pytest.approx(2.5025e-4)
    assert lr_at(499, per_epoch, base, cfg) == pytest.approx(5e-4 * (1 - 0.002 * 0.999))
    assert lr_at(500, per_epoch, base, cfg) == pytest.approx(5e-4)
    assert lr_at(169_999, per_epoch, base, cfg) == pytest.approx(5e-4)  # last iter of epoch 169
    assert lr_at(170_000, per_epoch, base, cfg) == pytest.approx(5e-5)  # epoch 170
    assert lr_at(199_999, per_epoch, base, cfg) == pytest.approx(5e-5)
    assert lr_at(200_000, per_epoch, base, cfg) == pytest.approx(5e-6)
    assert lr_at(209_999, per_epoch, base, cfg) == pytest.approx(5e-6)
    # Warm-up counts global iterations, across epoch boundaries.
    assert lr_at(250, 100, base, cfg) == pytest.approx(2.5025e-4)
    # No warm-up.
    assert lr_at(0, 10, 1e-3, ScheduleConfig(warmup_iters=0, steps=[1])) == pytest.approx(1e-3)
    assert lr_at(10, 10, 1e-3, ScheduleConfig(warmup_iters=0, steps=[1])) == pytest.approx(1e-4)
    with pytest.raises(ConfigError):
        lr_at(0, 0, base, cfg)


def _linear_with_grad_norm_10() -> tuple[nn.Linear, torch.Tensor]:
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    # loss = w . x with x = (6, 8): gradient (6, 8), norm 10.
    loss = (model(torch.tensor([[6.0, 8.0]]))).sum()
    return model, loss


def test_step_clips_to_max_norm_and_returns_norm() -> None:
    model, loss = _linear_with_grad_norm_10()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    step = GradScalerStep(amp="none", device_type="cpu", clip_grad=1.0)
    norm = step(loss, optimizer)
    assert norm == pytest.approx(10.0)
    # SGD with lr 1 moved the weights by minus the clipped gradient: (0.6, 0.8).
    assert model.weight.detach().flatten().tolist() == pytest.approx([-0.6, -0.8])
    assert model.weight.grad is None  # zeroed after the step


def test_step_without_clipping_and_accumulation() -> None:
    model, loss = _linear_with_grad_norm_10()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    step = GradScalerStep(amp="none", clip_grad=None)
    assert step(loss, optimizer, update=False) is None
    assert model.weight.detach().abs().sum().item() == 0.0  # no step yet
    loss2 = model(torch.tensor([[6.0, 8.0]])).sum()
    norm = step(loss2, optimizer)
    assert norm == pytest.approx(20.0)  # two accumulated gradients
    assert model.weight.detach().flatten().tolist() == pytest.approx([-1.2, -1.6])


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_step_runs_on_cpu(amp: str) -> None:
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    step = GradScalerStep(amp=amp, device_type="cpu", clip_grad=1.0)
    for _ in range(3):
        with step.autocast():
            out = model(torch.randn(3, 4))
        assert out.dtype == step.dtype
        norm = step(out.float().square().mean() * 1e-3, optimizer)
        assert norm is not None


def test_state_dict_round_trip() -> None:
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    step = GradScalerStep(amp="fp16", device_type="cpu")
    for _ in range(2):
        with step.autocast():
            loss = model(torch.randn(3, 4)).float().sum()
        step(loss, optimizer)
    state = step.state_dict()
    assert state["amp"] == "fp16" and state["scaler"]["scale"] == step.scaler.get_scale()
    # 65536 is not representable in fp16, so the first steps overflowed and the scale backed off.
    assert state["scaler"]["scale"] < 65536.0

    restored = GradScalerStep(amp="fp16", device_type="cpu")
    assert restored.scaler.get_scale() == 65536.0  # the fresh default
    restored.load_state_dict(state)
    assert restored.state_dict() == state
    assert restored.scaler.get_scale() == state["scaler"]["scale"]

    plain = GradScalerStep(amp="none")
    assert plain.state_dict() == {"amp": "none", "scaler": {}}
    plain.load_state_dict(plain.state_dict())  # a no-op, but must not fail
    with pytest.raises(ConfigError, match="amp"):
        GradScalerStep(amp="fp8")
