"""Tiny random ViTPose models shared by the inference tests."""

from __future__ import annotations

import torch

import vitpose


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial random weights (the default init gives near-uniform attention, which would
    hide mistakes): matrices N(0, 0.05), norm weights U(0.5, 1.5), biases N(0, 0.05)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
            elif name.endswith("weight"):
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model.eval()


def tiny_simple_model(seed: int = 0) -> vitpose.ViTPose:
    """ViTPose-B simple shrunk to width 32, 2 blocks, 2 heads (256x192 input), random weights."""
    return randomize(vitpose.build_model("vitpose-b-simple", embed_dim=32, depth=2, num_heads=2),
                     seed)
