"""ViTPose / ViTPose+ top-down pose models, their configs and the table of variants.

A `ViTPose` is a `ViT` backbone plus one heatmap head per dataset: `keypoint_head` for dataset 0
and `associate_keypoint_heads.{i}` for datasets 1.. (the official checkpoint layout of the
multi-task and ViTPose+ models). ViTPose+ backbones also route their MoE experts by dataset.

Variants are data: `VARIANTS` maps a name such as ``"vitpose-b-simple"`` or ``"vitpose-plus-l"``
to a `ViTPoseConfig`; `build_model` also accepts the original project's model config dict
(``dict(type='TopDown', backbone=dict(type='ViT', ...), keypoint_head=dict(...))``) and the
original config file names (``"ViTPose_base_coco_256x192"``). Building never loads weights; see
`vitpose.hub.load_model` for that.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .heads import HeatmapHead
from .vit import ViT

__all__ = [
    "HeadConfig", "ViTPoseConfig", "ViTPose", "VARIANTS", "PIXEL_MEAN", "PIXEL_STD", "PLUS_DATASETS",
    "build_model", "replace_config",
    "list_models", "canonical_name", "config_from_official", "default_datasets", "num_heads_for_width",
    "released_num_heads", "released_size", "variant_config",
]

#: The input normalisation every ViTPose model was trained with (ImageNet statistics, RGB, in
#: units of 0..1): ``x = (rgb / 255 - PIXEL_MEAN) / PIXEL_STD``. The one home of these numbers;
#: also ``ViTPose.pixel_mean`` / ``ViTPose.pixel_std``.
PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)

#: Dataset index -> dataset name of the ViTPose+ models (`dataset_idx` of the official configs).
PLUS_DATASETS = ("coco", "aic", "mpii", "ap10k", "apt36k", "wholebody")
#: Dataset names of the COCO+AIC+MPII(+CrowdPose) multi-task models, in head order.
MULTI_DATASETS = ("coco", "aic", "mpii", "crowdpose")
#: The usual dataset for a single head with K keypoints (override with ``datasets=``).
_DATASET_BY_K = {17: "coco", 14: "aic", 16: "mpii", 133: "wholebody", 21: "interhand2d"}


@dataclass(frozen=True)
class HeadConfig:
    """One heatmap head.

    Attributes:
        dataset: name of the dataset whose keypoints the head predicts.
        num_keypoints: K, the output channels.
        num_deconv_layers: 2 for the classic decoder, 0 for the simple one.
        deconv_filters: channels of each deconvolution (classic).
        deconv_kernels: kernel of each deconvolution (classic).
        final_conv_kernel: 1 (classic) or 3 (simple).
        upsample: bilinear factor before the final conv (simple: 4).
    """

    dataset: str = "coco"
    num_keypoints: int = 17
    num_deconv_layers: int = 2
    deconv_filters: tuple[int, ...] = (256, 256)
    deconv_kernels: tuple[int, ...] = (4, 4)
    final_conv_kernel: int = 1
    upsample: int = 0

    @classmethod
    def classic(cls, dataset: str, num_keypoints: int, filters: int = 256) -> HeadConfig:
        return cls(dataset, num_keypoints, 2, (filters, filters), (4, 4), 1, 0)

    @classmethod
    def simple(cls, dataset: str, num_keypoints: int) -> HeadConfig:
        return cls(dataset, num_keypoints, 0, (), (), 3, 4)

    @property
    def decoder(self) -> str:
        return "simple" if self.num_deconv_layers == 0 else "classic"


@dataclass(frozen=True)
class ViTPoseConfig:
    """Everything needed to build a `ViTPose` (architecture only, no weights).

    Attributes:
        img_size: input `(H, W)`.
        patch_size: patch size in pixels.
        embed_dim: backbone width C.
        depth: number of transformer blocks.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width / C.
        qkv_bias: bias in qkv.
        drop_path_rate: stochastic depth of the last block.
        layer_norm_eps: LayerNorm epsilon (official 1e-6).
        num_experts: ViTPose+ experts per MLP (1 = plain ViT).
        part_features: ViTPose+ expert width P (0 = plain ViT).
        datasets: dataset index -> name (expert order for ViTPose+, head order otherwise).
        heads: the heads; heads[0] is `keypoint_head`, the others `associate_keypoint_heads`.
        use_checkpoint: gradient checkpointing in training.
    """

    img_size: tuple[int, int] = (256, 192)
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path_rate: float = 0.0
    layer_norm_eps: float = 1e-6
    num_experts: int = 1
    part_features: int = 0
    datasets: tuple[str, ...] = ("coco",)
    heads: tuple[HeadConfig, ...] = (HeadConfig(),)
    use_checkpoint: bool = False

    def __post_init__(self) -> None:
        def positive_int(name: str, value: Any) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

        if not isinstance(self.img_size, (tuple, list)) or len(self.img_size) != 2:
            raise ValueError(f"img_size must be (H, W), got {self.img_size!r}")
        for i, v in enumerate(self.img_size):
            positive_int(f"img_size[{i}]", v)
        for name in ("patch_size", "embed_dim", "depth", "num_heads", "num_experts"):
            positive_int(name, getattr(self, name))
        if isinstance(self.mlp_ratio, bool) or not isinstance(self.mlp_ratio, (int, float)) \
                or not self.mlp_ratio > 0:
            raise ValueError(f"mlp_ratio must be a positive number, got {self.mlp_ratio!r}")
        if isinstance(self.part_features, bool) or not isinstance(self.part_features, int) \
                or not 0 <= self.part_features < self.embed_dim:
            raise ValueError(f"part_features must be an integer in [0, embed_dim), got "
                             f"{self.part_features!r}")
        if not isinstance(self.layer_norm_eps, (int, float)) or not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be a positive number, got {self.layer_norm_eps!r}")
        if not self.datasets or not all(isinstance(d, str) and d for d in self.datasets) \
                or len(set(self.datasets)) != len(self.datasets):
            raise ValueError(f"datasets must be distinct non-empty names, got {self.datasets!r}")
        if not self.heads:
            raise ValueError("a ViTPose model needs at least one head")
        for h in self.heads:
            if not isinstance(h, HeadConfig):
                raise ValueError(f"heads must be HeadConfig entries, got {h!r}")
            positive_int("a head's num_keypoints", h.num_keypoints)
            positive_int("a head's final_conv_kernel", h.final_conv_kernel)
            if isinstance(h.num_deconv_layers, bool) or not isinstance(h.num_deconv_layers, int) \
                    or h.num_deconv_layers < 0 or len(h.deconv_filters) != h.num_deconv_layers \
                    or len(h.deconv_kernels) != h.num_deconv_layers:
                raise ValueError(f"head '{h.dataset}': num_deconv_layers must be a count with one "
                                 "filter and kernel size per layer")
            for v in (*h.deconv_filters, *h.deconv_kernels):
                positive_int(f"head '{h.dataset}' deconvolution sizes", v)
            if h.deconv_kernels and any(k not in (2, 3, 4) for k in h.deconv_kernels):
                raise ValueError(f"head '{h.dataset}': deconvolution kernels are 2, 3 or 4, got "
                                 f"{h.deconv_kernels}")
            if isinstance(h.upsample, bool) or not isinstance(h.upsample, int) or h.upsample < 0:
                raise ValueError(f"head '{h.dataset}': upsample must be 0 or a factor, got "
                                 f"{h.upsample!r}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} not divisible by num_heads {self.num_heads}")
        if self.num_experts > 1 and len(self.datasets) < self.num_experts:
            raise ValueError(f"{self.num_experts} experts need {self.num_experts} dataset names, "
                             f"got {self.datasets}")
        missing = [h.dataset for h in self.heads if h.dataset not in self.datasets]
        if missing:
            raise ValueError(f"heads for {missing} are not among datasets {self.datasets}")

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 1 or self.part_features > 0

    @property
    def decoder(self) -> str:
        return self.heads[0].decoder

    @property
    def num_keypoints(self) -> int:
        return self.heads[0].num_keypoints

    @property
    def heatmap_size(self) -> tuple[int, int]:
        return self.img_size[0] // 4, self.img_size[1] // 4

    def summary(self) -> str:
        """One line for messages, e.g. ``ViTPose-S (width 384, 12 blocks, 12 heads), classic
        decoder, 17 keypoints``."""
        size = released_size(self.embed_dim, self.depth, self.mlp_ratio, self.patch_size)
        name = ("ViTPose+" if self.is_moe else "ViTPose") + (f"-{size.upper()}" if size else "")
        moe = f", {self.num_experts} experts of width {self.part_features}" if self.is_moe else ""
        ks = "/".join(str(h.num_keypoints) for h in self.heads)
        res = "" if tuple(self.img_size) == (256, 192) else \
            f", input {self.img_size[0]}x{self.img_size[1]}"
        return (f"{name} (width {self.embed_dim}, {self.depth} blocks, {self.num_heads} heads"
                f"{moe}{res}), {self.decoder} decoder, {ks} keypoints")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON/YAML friendly); inverse of `ViTPoseConfig.from_dict`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ViTPoseConfig:
        """Inverse of `to_dict`; any malformed value raises `ValueError` (never another type)."""
        if not isinstance(d, Mapping):
            raise ValueError(f"a model config is a mapping, got {type(d).__name__}")
        d = dict(d)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown ViTPoseConfig keys {sorted(unknown)}")
        try:
            if "heads" in d:
                d["heads"] = tuple(h if isinstance(h, HeadConfig) else HeadConfig(**{
                    k: tuple(v) if isinstance(v, list) else v for k, v in h.items()})
                    for h in d["heads"])
            for key in ("img_size", "datasets"):
                if key in d:
                    d[key] = tuple(d[key])
            return cls(**d)
        except (TypeError, AttributeError) as e:
            raise ValueError(f"malformed model config ({e})") from None


def released_size(embed_dim: int, depth: int, mlp_ratio: float = 4.0, patch_size: int = 16
                  ) -> str | None:
    """The released size letter (``'s'``, ``'b'``, ``'l'``, ``'h'``) whose backbone has this
    width, depth, MLP ratio and patch size, or None."""
    if patch_size != 16 or abs(float(mlp_ratio) - 4.0) > 1e-6:
        return None
    for size, (c, d, *_rest) in _SIZES.items():
        if (c, d) == (embed_dim, depth):
            return size
    return None


def released_num_heads(embed_dim: int, depth: int, mlp_ratio: float = 4.0, patch_size: int = 16
                       ) -> int | None:
    """Attention heads of the released variant with this backbone shape (S 12 heads of 32
    channels, B 12, L 16, H 16), or None when no released variant has it. Official checkpoints
    do not record the head count; this is how it is known for them."""
    size = released_size(embed_dim, depth, mlp_ratio, patch_size)
    return _SIZES[size][2] if size else None


def num_heads_for_width(embed_dim: int) -> int:
    """Attention heads of the released sizes (S 384 -> 12, B 768 -> 12, L 1024 -> 16, H 1280 -> 16)."""
    known = {384: 12, 768: 12, 1024: 16, 1280: 16, 1408: 16}
    if embed_dim in known:
        return known[embed_dim]
    return embed_dim // 64 if embed_dim % 64 == 0 else 1


def default_datasets(head_keypoints: Sequence[int], num_experts: int = 1) -> tuple[str, ...]:
    """Guess dataset names from the heads' keypoint counts (ViTPose+ / multi-task / single)."""
    ks = list(head_keypoints)
    if num_experts > 1 or len(ks) > 4:
        n = max(num_experts, len(ks))
        return PLUS_DATASETS[:n] if n <= len(PLUS_DATASETS) else tuple(f"task{i}" for i in range(n))
    if len(ks) > 1:
        if ks == [17, 14, 16, 14][:len(ks)]:
            return MULTI_DATASETS[:len(ks)]
        return tuple(f"task{i}" for i in range(len(ks)))
    return (_DATASET_BY_K.get(ks[0], "custom"),)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------

DatasetIndex = int | str | Sequence[int] | torch.Tensor | None


class ViTPose(nn.Module):
    """Top-down pose model: images -> heatmaps, one head (and ViTPose+ expert) per dataset.

    ``model(images, dataset_index=None)`` returns heatmaps `[B, K, H/4, W/4]`;
    ``model.backbone(images)`` returns the feature map `[B, C, H/16, W/16]` (ViTPose+ also
    takes ``dataset_index``). ``dataset_index`` may be an int, a dataset name, or one index per
    sample (list or tensor); None means dataset 0.

    The model owns its input normalisation: ``pixel_mean`` / ``pixel_std`` (RGB, 0..1 units)
    and `normalize`, which maps 0..255 RGB images to the network's input.
    """

    pixel_mean: tuple[float, float, float] = PIXEL_MEAN
    pixel_std: tuple[float, float, float] = PIXEL_STD

    def __init__(self, cfg: ViTPoseConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = ViT(
            img_size=cfg.img_size, patch_size=cfg.patch_size, embed_dim=cfg.embed_dim,
            depth=cfg.depth, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio,
            qkv_bias=cfg.qkv_bias, drop_path_rate=cfg.drop_path_rate,
            layer_norm_eps=cfg.layer_norm_eps, num_experts=cfg.num_experts,
            part_features=cfg.part_features, use_checkpoint=cfg.use_checkpoint)
        self.backbone.dataset_names = cfg.datasets
        heads = [self._make_head(h) for h in cfg.heads]
        self.keypoint_head = heads[0]
        self.associate_keypoint_heads = nn.ModuleList(heads[1:])
        self._head_slot = {h.dataset: i for i, h in enumerate(cfg.heads)}

    def _make_head(self, h: HeadConfig) -> HeatmapHead:
        return HeatmapHead(self.cfg.embed_dim, h.num_keypoints, h.num_deconv_layers,
                           h.deconv_filters, h.deconv_kernels, h.final_conv_kernel, h.upsample)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """RGB images ``[B, 3, H, W]`` in 0..255 -> the network's normalised input."""
        mean = torch.tensor(self.pixel_mean, dtype=images.dtype, device=images.device)
        std = torch.tensor(self.pixel_std, dtype=images.dtype, device=images.device)
        return (images / 255.0 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)

    # -- facts ---------------------------------------------------------------------------------
    @property
    def datasets(self) -> tuple[str, ...]:
        return self.cfg.datasets

    @property
    def input_size(self) -> tuple[int, int]:
        """Model input `(H, W)`."""
        return self.cfg.img_size

    @property
    def heads(self) -> list[HeatmapHead]:
        return [self.keypoint_head, *self.associate_keypoint_heads]

    def no_weight_decay(self) -> set[str]:
        return {"backbone.pos_embed"}

    def head_for(self, dataset: int | str) -> HeatmapHead:
        """The head predicting `dataset` (index or name)."""
        name = self.datasets[self.dataset_index_of(dataset)]
        if name not in self._head_slot:
            raise ValueError(f"this model has no head for dataset '{name}' (heads: "
                             f"{[h.dataset for h in self.cfg.heads]}); the checkpoint it was "
                             "loaded from did not include one")
        return self.heads[self._head_slot[name]]

    def dataset_index_of(self, dataset: int | str) -> int:
        """Dataset name or index -> index, with a clear error for unknown values."""
        if isinstance(dataset, str):
            key = dataset.lower().replace("-", "_")
            aliases = {"coco_wholebody": "wholebody", "ap_10k": "ap10k", "apt_36k": "apt36k"}
            key = aliases.get(key, key)
            if key not in self.datasets:
                raise ValueError(f"unknown dataset '{dataset}' for this model; choose one of "
                                 f"{list(self.datasets)}")
            return self.datasets.index(key)
        index = int(dataset)
        if not 0 <= index < len(self.datasets):
            raise ValueError(f"dataset_index {index} out of range for datasets {list(self.datasets)}")
        return index

    def _indices(self, dataset_index: DatasetIndex, batch: int, device: torch.device) -> torch.Tensor:
        if dataset_index is None:
            return torch.zeros(batch, dtype=torch.long, device=device)
        if isinstance(dataset_index, (int, str)):
            return torch.full((batch,), self.dataset_index_of(dataset_index), dtype=torch.long,
                              device=device)
        if isinstance(dataset_index, torch.Tensor) and dataset_index.ndim == 0:
            return self._indices(int(dataset_index), batch, device)
        idx = [self.dataset_index_of(int(i) if not isinstance(i, str) else i)
               for i in (dataset_index.tolist() if isinstance(dataset_index, torch.Tensor)
                         else dataset_index)]
        if len(idx) != batch:
            raise ValueError(f"dataset_index has {len(idx)} entries for a batch of {batch}")
        return torch.tensor(idx, dtype=torch.long, device=device)

    # -- forward -------------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor, dataset_index: DatasetIndex = None) -> torch.Tensor:
        """Backbone features `[B, C, H/16, W/16]` (experts routed by dataset for ViTPose+)."""
        if not self.cfg.is_moe:
            return self.backbone(x, None)
        if dataset_index is None or isinstance(dataset_index, (int, str)):
            return self.backbone(x, self.dataset_index_of(dataset_index or 0))  # one expert
        return self.backbone(x, self._indices(dataset_index, x.shape[0], x.device))

    def forward_heads(self, x: torch.Tensor, dataset_index: DatasetIndex = None
                      ) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Multi-dataset forward that routes each sample to its own head (inference).

        Training uses :meth:`forward_train` (every head on the whole batch, as officially).

        Returns:
            ``{dataset index: (sample indices [n], heatmaps [n, K_d, H/4, W/4])}`` for each
            dataset present in the batch; features are computed once for the whole batch.
        """
        idx = self._indices(dataset_index, x.shape[0], x.device)
        feats = self.backbone(x, idx if self.cfg.is_moe else None)
        out: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for d in sorted(set(idx.tolist())):
            rows = (idx == d).nonzero(as_tuple=True)[0]
            f = feats if len(rows) == len(idx) else feats[rows]
            out[d] = (rows, self.head_for(d)(f))
        return out

    def forward_train(self, x: torch.Tensor, dataset_index: DatasetIndex = None
                      ) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Training forward of the official multi-task / ViTPose+ models (``TopDownMoE``).

        Every head runs on the **whole** batch, whatever dataset each sample comes from: the
        heads' BatchNorm layers normalise with (and keep running statistics of) the whole
        per-GPU batch, and gradients flow across datasets through those statistics. The loss
        masks the other datasets' samples out of each head's targets and weights
        (``engine.loss.multi_head_loss``). Inference routes each sample to its own head instead
        (:meth:`forward_heads`).

        Returns:
            ``(dataset index per sample [B], {dataset index: heatmaps [B, K_d, H/4, W/4]})``
            with one entry per dataset slot that has a head.
        """
        idx = self._indices(dataset_index, x.shape[0], x.device)
        feats = self.backbone(x, idx if self.cfg.is_moe else None)
        out: dict[int, torch.Tensor] = {}
        for d, name in enumerate(self.datasets):
            if name in self._head_slot:
                out[d] = self.heads[self._head_slot[name]](feats)
        return idx, out

    def forward(self, x: torch.Tensor, dataset_index: DatasetIndex = None) -> torch.Tensor:
        """Images `[B, 3, H, W]` (normalised RGB) -> heatmaps `[B, K, H/4, W/4]`.

        With per-sample indices that select heads of different K, use `forward_heads`.
        """
        parts = self.forward_heads(x, dataset_index)
        if len(parts) == 1:
            return next(iter(parts.values()))[1]
        ks = {hm.shape[1] for _, hm in parts.values()}
        if len(ks) > 1:
            raise ValueError("the batch mixes datasets whose heads have different keypoint counts "
                             f"{sorted(ks)}; call model.forward_heads() instead")
        first = next(iter(parts.values()))[1]
        out = first.new_empty((x.shape[0],) + first.shape[1:])
        for rows, hm in parts.values():
            out[rows] = hm
        return out


# --------------------------------------------------------------------------------------------
# Variants
# --------------------------------------------------------------------------------------------

# size letter -> (embed_dim, depth, num_heads, drop_path_rate of the COCO configs, ViTPose+ P)
_SIZES: dict[str, tuple[int, int, int, float, int]] = {
    "s": (384, 12, 12, 0.1, 96),    # released ViTPose+-S: P = 96 although its config says 192
    "b": (768, 12, 12, 0.3, 192),
    "l": (1024, 24, 16, 0.5, 256),
    "h": (1280, 32, 16, 0.55, 320),
}


def _single(size: str, decoder: str) -> ViTPoseConfig:
    c, depth, heads, dpr, _ = _SIZES[size]
    head = HeadConfig.simple("coco", 17) if decoder == "simple" else HeadConfig.classic("coco", 17)
    return ViTPoseConfig(embed_dim=c, depth=depth, num_heads=heads, drop_path_rate=dpr,
                         heads=(head,))


def _multi(size: str, datasets: Sequence[str]) -> ViTPoseConfig:
    c, depth, heads, dpr, _ = _SIZES[size]
    ks = {"coco": 17, "aic": 14, "mpii": 16, "crowdpose": 14}
    return ViTPoseConfig(embed_dim=c, depth=depth, num_heads=heads, drop_path_rate=dpr,
                         datasets=tuple(datasets),
                         heads=tuple(HeadConfig.classic(d, ks[d]) for d in datasets))


def _plus(size: str) -> ViTPoseConfig:
    c, depth, heads, dpr, part = _SIZES[size]
    ks = (17, 14, 16, 17, 17, 133)
    return ViTPoseConfig(embed_dim=c, depth=depth, num_heads=heads, drop_path_rate=dpr,
                         num_experts=6, part_features=part, datasets=PLUS_DATASETS,
                         heads=tuple(HeadConfig.classic(d, k) for d, k in zip(PLUS_DATASETS, ks)))


def _giant() -> ViTPoseConfig:
    # NOTE: ViTPose-G (ViTAE-G, ~1B parameters, 576x432) was never released: no config and no
    # weights exist (vitpose-reference §1.10). This is our documented plain-ViT stand-in of the
    # same scale (ViT-g widths: 1408 channels, 40 blocks, 16 heads, MLP 6144), trainable from
    # scratch or from a compatible MAE checkpoint.
    return ViTPoseConfig(img_size=(576, 432), embed_dim=1408, depth=40, num_heads=16,
                         mlp_ratio=6144 / 1408, drop_path_rate=0.55, datasets=MULTI_DATASETS[:3],
                         heads=(HeadConfig.classic("coco", 17), HeadConfig.classic("aic", 14),
                                HeadConfig.classic("mpii", 16)))


VARIANTS: dict[str, ViTPoseConfig] = {
    **{f"vitpose-{s}": _single(s, "classic") for s in _SIZES},
    **{f"vitpose-{s}-simple": _single(s, "simple") for s in _SIZES},
    **{f"vitpose-{s}-multi": _multi(s, MULTI_DATASETS[:3]) for s in "blh"},
    **{f"vitpose-{s}-multi-crowdpose": _multi(s, MULTI_DATASETS) for s in "blh"},
    **{f"vitpose-plus-{s}": _plus(s) for s in _SIZES},
    "vitpose-g": _giant(),
}


def list_models() -> list[str]:
    """Names accepted by `build_model`."""
    return sorted(VARIANTS)


_OFFICIAL_SIZE = {"small": "s", "base": "b", "large": "l", "huge": "h"}
_OFFICIAL_EVAL_K = {"coco": 17, "ochuman": 17, "aic": 14, "mpii": 16, "crowdpose": 14,
                    "ap10k": 17, "apt36k": 17, "wholebody": 133, "interhand2d": 21}


def canonical_name(name: str) -> str | None:
    """The `VARIANTS` key for a variant name written loosely (``vitpose_b``, ``ViTPose+-B``)."""
    key = re.sub(r"^vitpose\+\+?-", "vitpose-plus-", name.strip().lower().replace("_", "-"))
    return key if key in VARIANTS else None


def variant_config(name: str) -> ViTPoseConfig | None:
    """The config of a variant name or original config file name, or None if it is neither."""
    try:
        return _variant_from_name(name)
    except ValueError:
        return None


def _variant_from_name(name: str) -> ViTPoseConfig:
    key = name.strip().lower().replace("_", "-")
    # Original config file names, e.g. ViTPose_base_simple_coco_256x192, ViTPose_large_ap10k_256x192,
    # vitPose+_huge_coco+aic+mpii+ap10k+apt36k+wholebody_256x192_udp.
    m = re.fullmatch(r"vitpose(\+?)-(small|base|large|huge)-(simple-)?([a-z0-9+]+?)(-all)?-256x192"
                     r"(-udp)?(\.py)?", key)
    if m:
        plus, size, simple, data = m.group(1), _OFFICIAL_SIZE[m.group(2)], m.group(3), m.group(4)
        if plus:
            return VARIANTS[f"vitpose-plus-{size}"]
        if data == "coco":
            return VARIANTS[f"vitpose-{size}{'-simple' if simple else ''}"]
        if data in _OFFICIAL_EVAL_K:
            base = VARIANTS[f"vitpose-{size}"]
            return dataclasses.replace(base, datasets=(data,),
                                       heads=(HeadConfig.classic(data, _OFFICIAL_EVAL_K[data]),))
    if canonical_name(name):
        return VARIANTS[canonical_name(name)]
    raise ValueError(f"unknown model '{name}'. Known variants: {', '.join(list_models())}")


# --------------------------------------------------------------------------------------------
# Original model config dicts
# --------------------------------------------------------------------------------------------

def _head_from_official(h: Mapping[str, Any], dataset: str) -> HeadConfig:
    # mmpose's TopdownHeatmapSimpleHead defaults: 3 deconv layers of 256 filters, kernel 4.
    n = int(h.get("num_deconv_layers", 3))
    filters = tuple(int(f) for f in h.get("num_deconv_filters", (256,) * 3))[:n] if n else ()
    kernels = tuple(int(k) for k in h.get("num_deconv_kernels", (4,) * 3))[:n] if n else ()
    extra = h.get("extra") or {}
    return HeadConfig(dataset=dataset, num_keypoints=int(h["out_channels"]), num_deconv_layers=n,
                      deconv_filters=filters, deconv_kernels=kernels,
                      final_conv_kernel=int(extra.get("final_conv_kernel", 1)),
                      upsample=int(h.get("upsample", 0)))


def config_from_official(cfg: Mapping[str, Any], datasets: Sequence[str] | None = None
                         ) -> ViTPoseConfig:
    """`ViTPoseConfig` from the original project's ``model = dict(type='TopDown', ...)`` dict."""
    try:
        kind = cfg.get("type", "TopDown")
        if kind not in ("TopDown", "TopDownMoE"):
            raise ValueError(f"model type '{kind}' is not a ViTPose model (TopDown/TopDownMoE)")
        bb = cfg["backbone"]
        if bb.get("type", "ViT") not in ("ViT", "ViTMoE"):
            raise ValueError(f"backbone type '{bb.get('type')}' is not supported (ViT/ViTMoE)")
        img = bb.get("img_size", (256, 192))
        img_size = (int(img), int(img)) if isinstance(img, int) else (int(img[0]), int(img[1]))
        if int(bb.get("ratio", 1)) != 1:
            raise ValueError("backbone ratio != 1 (overlapping patches) is not supported")
        head_cfgs = [cfg["keypoint_head"], *(cfg.get("associate_keypoint_head") or [])]
        num_experts = int(bb.get("num_expert", 1)) if bb.get("type") == "ViTMoE" else 1
        names = tuple(datasets) if datasets else default_datasets(
            [int(h["out_channels"]) for h in head_cfgs], num_experts)
        embed_dim = int(bb.get("embed_dim", 768))
        return ViTPoseConfig(
            img_size=img_size, patch_size=int(bb.get("patch_size", 16)), embed_dim=embed_dim,
            depth=int(bb.get("depth", 12)), num_heads=int(bb.get("num_heads", 12)),
            mlp_ratio=float(bb.get("mlp_ratio", 4)), qkv_bias=bool(bb.get("qkv_bias", True)),
            drop_path_rate=float(bb.get("drop_path_rate", 0.0)),
            num_experts=num_experts,
            part_features=int(bb.get("part_features") or 0) if num_experts > 1 else 0,
            datasets=names,
            heads=tuple(_head_from_official(h, names[i]) for i, h in enumerate(head_cfgs)),
            use_checkpoint=bool(bb.get("use_checkpoint", False)))
    except KeyError as e:
        raise ValueError(f"model config is missing the key {e}") from None


def build_model(spec: str | Mapping[str, Any] | ViTPoseConfig = "vitpose-b",
                **overrides: Any) -> ViTPose:
    """Build a randomly initialised ViTPose.

    Args:
        spec: a variant name (``"vitpose-b-simple"``, ``"vitpose-plus-b"``, see `list_models`), an
            original config file name (``"ViTPose_base_coco_256x192"``), the original model config
            dict (``dict(type='TopDown', backbone=..., keypoint_head=...)``), or a `ViTPoseConfig`.
        **overrides: `ViTPoseConfig` fields to replace (e.g. ``drop_path_rate=0``, ``depth=2``),
            plus ``num_keypoints`` (replaces the main head's K, e.g. for fine-tuning on a custom
            dataset), ``decoder`` ('classic'/'simple', for every head) and ``dataset`` (name of a
            single head's dataset).

    Returns:
        a `ViTPose` in train mode with random weights.
    """
    if isinstance(spec, ViTPoseConfig):
        cfg = spec
    elif isinstance(spec, Mapping):
        cfg = config_from_official(spec, overrides.pop("datasets", None))
    elif isinstance(spec, str):
        cfg = _variant_from_name(spec)
    else:
        raise TypeError(f"cannot build a model from {type(spec).__name__}")
    return ViTPose(replace_config(cfg, **overrides))


def replace_config(cfg: ViTPoseConfig, **overrides: Any) -> ViTPoseConfig:
    """`cfg` with fields replaced; see `build_model` for the extra keys."""
    decoder = overrides.pop("decoder", None)
    num_keypoints = overrides.pop("num_keypoints", None)
    dataset = overrides.pop("dataset", None)
    heads = list(overrides.pop("heads", cfg.heads))
    datasets = tuple(overrides.pop("datasets", cfg.datasets))
    if decoder is not None:
        if decoder not in ("classic", "simple"):
            raise ValueError(f"decoder must be 'classic' or 'simple', got '{decoder}'")
        heads = [HeadConfig.simple(h.dataset, h.num_keypoints) if decoder == "simple"
                 else HeadConfig.classic(h.dataset, h.num_keypoints,
                                         h.deconv_filters[0] if h.deconv_filters else 256)
                 for h in heads]
    if dataset is not None:
        if len(heads) != 1 or cfg.is_moe:
            raise ValueError("dataset= renames the head of a single-dataset model only")
        heads = [dataclasses.replace(heads[0], dataset=dataset)]
        datasets = (dataset,)
    if num_keypoints is not None:
        heads[0] = dataclasses.replace(heads[0], num_keypoints=int(num_keypoints))
    if "img_size" in overrides:
        overrides["img_size"] = tuple(overrides["img_size"])
    if "embed_dim" in overrides and "num_heads" not in overrides:
        overrides["num_heads"] = num_heads_for_width(int(overrides["embed_dim"]))
    if "embed_dim" in overrides and cfg.is_moe and "part_features" not in overrides:
        overrides["part_features"] = int(overrides["embed_dim"]) // 4  # the B/L/H ratio
    unknown = set(overrides) - {f.name for f in dataclasses.fields(ViTPoseConfig)}
    if unknown:
        raise ValueError(f"unknown model options {sorted(unknown)}")
    return dataclasses.replace(cfg, heads=tuple(heads), datasets=datasets, **overrides)

