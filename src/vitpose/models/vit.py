"""Plain Vision Transformer backbone of ViTPose and the mixture-of-experts MLP of ViTPose+.

Papers:
    ViTPose: Simple Vision Transformer Baselines for Human Pose Estimation
    (https://arxiv.org/abs/2204.12484)
    ViTPose+: Vision Transformer Foundation Model for Generic Body Pose Estimation
    (https://arxiv.org/abs/2212.04246)

Mirrors the official `mmpose/models/backbones/vit.py` and `vit_moe.py` numerically; module
attribute names equal the official checkpoint keys (`patch_embed.proj`, `pos_embed`,
`blocks.{i}.attn.qkv`, `mlp.fc1`, `mlp.fc2`, `mlp.experts.{k}`, `last_norm`), so released
`.pth` files load without renaming. Quirks that look like bugs but are the official behaviour
are marked "official:" (see vitpose-reference §1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .precision import outside_autocast

__all__ = ["PatchEmbed", "Attention", "Mlp", "MoEMlp", "Block", "ViT", "patch_grid"]


def patch_grid(img_size: Sequence[int], patch_size: int, padding: int = 2) -> tuple[int, int]:
    """Token grid `(H_p, W_p)` produced by the padded patch embedding for an `(H, W)` input."""
    h, w = img_size
    return (h + 2 * padding - patch_size) // patch_size + 1, (w + 2 * padding - patch_size) // patch_size + 1


class DropPath(nn.Module):
    """Stochastic depth per sample (identity in eval mode or at rate 0)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"


class PatchEmbed(nn.Module):
    """Image to patch tokens with a strided convolution.

    official: the convolution uses padding 2 (``4 + 2 * (ratio // 2 - 1)`` with ratio 1), so a
    256x192 input gives a 16x12 grid (vitpose-reference §1.2).
    """

    #: runs outside autocast (on the pixels), see `vitpose.models.precision`
    FLOAT32_CHILDREN = ("proj",)

    def __init__(self, img_size: Sequence[int], patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 768, padding: int = 2) -> None:
        super().__init__()
        self.img_size = tuple(int(s) for s in img_size)
        self.patch_size = int(patch_size)
        self.grid_size = patch_grid(self.img_size, self.patch_size, padding)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size,
                              padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, 3, H, W]` -> `[B, H_p*W_p, C]` tokens in row-major grid order."""
        x = outside_autocast(self.proj, x, self.proj.weight.dtype)
        return x.flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (rows ordered q, k, v)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        # B N 3C -> 3 B heads N head_dim
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0, scale=self.scale)
        x = x.transpose(1, 2).reshape(b, n, c)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, dataset_index: torch.Tensor | None = None) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


#: How a batch is routed to the ViTPose+ experts: one expert index for every sample, or
#: ``[(expert, sample rows), ...]`` for a batch that mixes datasets.
Routing = int | list[tuple[int, torch.Tensor]]


def expert_groups(dataset_index: torch.Tensor) -> Routing:
    """`[B]` expert indices -> `Routing`, computed once per forward (one device sync) instead
    of once per block; a batch of one dataset becomes a plain int."""
    uniq = sorted(set(dataset_index.tolist()))
    if len(uniq) <= 1:
        return uniq[0] if uniq else 0
    return [(d, (dataset_index == d).nonzero(as_tuple=True)[0]) for d in uniq]


class MoEMlp(nn.Module):
    """ViTPose+ feed-forward layer: a shared part and one expert per dataset.

    fc1 is shared; the output is ``cat([fc2(h), experts[d](h)], -1)`` where fc2 gives the first
    ``dim - part_features`` channels and the expert of the sample's dataset ``d`` the last
    ``part_features`` (vitpose-reference §1.11). Routing is by dataset index, not learned. Unlike
    the official "naive" implementation, each expert runs only on its own samples; the result
    and the gradients are the same.
    """

    def __init__(self, dim: int, hidden_dim: int, num_experts: int, part_features: int,
                 drop: float = 0.0) -> None:
        super().__init__()
        if not 0 < part_features < dim:
            raise ValueError(f"part_features must be in (0, {dim}), got {part_features}")
        self.part_features = part_features
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim - part_features)
        self.experts = nn.ModuleList(nn.Linear(hidden_dim, part_features) for _ in range(num_experts))
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, dataset_index: Routing | torch.Tensor | None = None
                ) -> torch.Tensor:
        """Args: x `[B, N, C]`; dataset_index: one expert for the whole batch (int), the
        `expert_groups` of a mixed batch, or a `[B]` int64 tensor (None means expert 0)."""
        h = self.drop(self.act(self.fc1(x)))
        shared = self.fc2(h)
        routing = expert_groups(dataset_index) if isinstance(dataset_index, torch.Tensor) \
            else (dataset_index or 0)
        if isinstance(routing, int):
            expert = self.experts[routing](h)
        else:
            expert = h.new_empty(h.shape[:-1] + (self.part_features,))
            for d, rows in routing:
                expert[rows] = self.experts[d](h[rows])
        return self.drop(torch.cat([shared, expert], dim=-1))



class Block(nn.Module):
    """Pre-norm transformer block: ``x + DropPath(attn(norm1(x)))``, then the same with the MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path: float = 0.0, layer_norm_eps: float = 1e-6, num_experts: int = 1,
                 part_features: int = 0) -> None:
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=layer_norm_eps)
        if num_experts > 1 or part_features > 0:
            self.mlp: nn.Module = MoEMlp(dim, hidden, num_experts, part_features)
        else:
            self.mlp = Mlp(dim, hidden)

    def forward(self, x: torch.Tensor, dataset_index: Routing | torch.Tensor | None = None
                ) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x), dataset_index))


class ViT(nn.Module):
    """The ViTPose backbone: patch embedding, transformer blocks, final norm, feature map.

    Args:
        img_size: input size `(H, W)`; fixed at run time (no positional interpolation).
        patch_size: patch (and stride) size in pixels.
        in_chans: input channels.
        embed_dim: token width C.
        depth: number of blocks.
        num_heads: attention heads (ViTPose-S uses 12 heads of 32 channels).
        mlp_ratio: MLP hidden width / C.
        qkv_bias: bias in the qkv projection.
        drop_path_rate: stochastic depth at the last block, growing linearly from 0.
        layer_norm_eps: LayerNorm epsilon (official 1e-6).
        num_experts: ViTPose+ experts per MLP (1 = plain MLP).
        part_features: ViTPose+ expert width P (0 = plain MLP).
        use_checkpoint: gradient checkpointing of each block while training.
    """

    def __init__(self, img_size: Sequence[int] = (256, 192), patch_size: int = 16,
                 in_chans: int = 3, embed_dim: int = 768, depth: int = 12, num_heads: int = 12,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_path_rate: float = 0.0,
                 layer_norm_eps: float = 1e-6, num_experts: int = 1, part_features: int = 0,
                 use_checkpoint: bool = False) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.depth = depth
        self.num_experts = num_experts
        self.part_features = part_features
        self.use_checkpoint = use_checkpoint
        #: dataset name per expert index, so that `forward` also takes names (set by ViTPose)
        self.dataset_names: tuple[str, ...] = ()
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.img_size = self.patch_embed.img_size
        self.grid_size = self.patch_embed.grid_size
        # official: one extra slot (the MAE class-token position) that is still added to every
        # patch token (vitpose-reference §1.3).
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        rates = [drop_path_rate * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, rates[i], layer_norm_eps,
                  num_experts, part_features)
            for i in range(depth))
        self.last_norm = nn.LayerNorm(embed_dim, eps=layer_norm_eps)
        self.init_weights()

    def init_weights(self) -> None:
        """Random initialisation used when no checkpoint is given (truncated normal, std 0.02).
        Nothing on the ``meta`` device (a layout whose weights come from a file: no memory to
        fill, and PyTorch's meta kernels of these samplers cost a second on first use)."""
        if self.pos_embed.is_meta:
            return
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

        def _init(m: nn.Module) -> None:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

        self.apply(_init)

    def no_weight_decay(self) -> set[str]:
        """Parameter names (relative to the backbone) exempt from weight decay."""
        return {"pos_embed"}

    def _expert_indices(self, dataset_index: int | str | torch.Tensor | None, batch: int,
                        device: torch.device) -> Routing | None:
        """Validate `dataset_index` and turn it into the `Routing` that every block uses."""
        if dataset_index is None or self.num_experts <= 1:
            return None
        if isinstance(dataset_index, str):
            if dataset_index not in self.dataset_names:
                raise ValueError(f"unknown dataset '{dataset_index}'; choose one of "
                                 f"{list(self.dataset_names)}")
            dataset_index = self.dataset_names.index(dataset_index)
        if isinstance(dataset_index, int):  # the whole batch: no tensor, no device sync
            if not 0 <= dataset_index < self.num_experts:
                raise ValueError(f"dataset_index out of range for {self.num_experts} experts")
            return dataset_index
        idx = torch.as_tensor(dataset_index, dtype=torch.long, device=device)
        if idx.ndim == 0:
            idx = idx.expand(batch)
        if idx.shape != (batch,):
            raise ValueError(f"dataset_index must be one index or {batch} indices, got "
                             f"shape {tuple(idx.shape)}")
        if len(idx) and not 0 <= int(idx.min()) <= int(idx.max()) < self.num_experts:
            raise ValueError(f"dataset_index out of range for {self.num_experts} experts")
        return expert_groups(idx)

    def forward(self, x: torch.Tensor, dataset_index: int | str | torch.Tensor | None = None
                ) -> torch.Tensor:
        """Images `[B, 3, H, W]` (normalised) -> features `[B, C, H_p, W_p]`.

        Args:
            x: input batch; H, W must equal `img_size`.
            dataset_index: ViTPose+ expert per sample: an int, a dataset name, or a `[B]` tensor
                (None = expert 0); ignored by plain backbones.
        """
        if tuple(x.shape[-2:]) != self.img_size:
            raise ValueError(f"input size {tuple(x.shape[-2:])} != model img_size {self.img_size}")
        dataset_index = self._expert_indices(dataset_index, x.shape[0], x.device)
        return self.encode(self.embed(x), dataset_index)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> tokens `[B, H_p*W_p, C]`: patch embedding plus position embedding (the
        official backbone adds the class token's position embedding to every patch)."""
        return self.patch_embed(x) + self.pos_embed[:, 1:] + self.pos_embed[:, :1]

    def encode(self, x: torch.Tensor, dataset_index: Routing | int = 0) -> torch.Tensor:
        """Tokens -> features `[B, C, H_p, W_p]`: the transformer blocks and the last norm.
        `dataset_index` as `_expert_indices` returns it (an int for a one-dataset batch)."""
        for blk in self.blocks:
            if self.use_checkpoint and self.training:
                x = checkpoint(blk, x, dataset_index, use_reentrant=False)
            else:
                x = blk(x, dataset_index)
        x = self.last_norm(x)
        hp, wp = self.grid_size
        return x.transpose(1, 2).reshape(x.shape[0], self.embed_dim, hp, wp)

