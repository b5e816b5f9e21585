"""Top-down training samples: a `PoseRecord` -> augmented crop, heatmap targets and weights.

The official training pipeline (vitpose-reference §2.5, §2.6), in its order: load RGB image ->
box-centre jitter -> random flip -> half-body -> random scale/rotation -> affine crop (classic
or UDP) -> normalise -> targets (MSRA or UDP Gaussians).

The box-centre jitter is, as officially (``_xywh2cs`` at dataset construction), drawn **once per
box** when the dataset is built and kept for the whole run (``center_jitter="per_box"``);
``"per_iteration"`` draws it anew at every load instead (an augmentation the original does not
have). MPII configs set its probability to 0: the official MPII dataset takes its centres from
the annotations and never jitters them.

Randomness comes from generators seeded by ``(seed, epoch, index)`` (the frozen jitter: by
``(seed, dataset index)``), so a sample is the same whatever the worker count, rank or resume
point: distributed and resumed runs are reproducible.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..codecs import MSRAHeatmap, UDPHeatmap
from ..dataset_meta import DatasetMeta
from ..errors import InputError
from ..imageio import read_image
from ..models.vitpose import ViTPose
from ..transforms import (
    random_center_jitter,
    random_flip,
    random_half_body,
    random_scale_rotation,
    top_down_affine,
)
from .records import PoseRecord

__all__ = [
    "CENTER_JITTER_MODES",
    "AugmentConfig",
    "TopDownDataset",
    "collate_topdown",
    "frozen_center_jitter",
]

log = logging.getLogger(__name__)

# the model's input normalisation (its one home: `vitpose.models.ViTPose.pixel_mean`)
_MEAN = np.array(ViTPose.pixel_mean, np.float32)
_STD = np.array(ViTPose.pixel_std, np.float32)
#: Box-centre jitter regimes: frozen per box (official) or drawn at every load.
CENTER_JITTER_MODES = ("per_box", "per_iteration")
_JITTER_STREAM = 0x6A177E2  # keeps the frozen jitter's generator apart from the others


def frozen_center_jitter(records: Sequence[PoseRecord], seed: int, dataset_index: int,
                         prob: float = 0.3, factor: float = 0.4) -> np.ndarray:
    """Box centres with the official build-time jitter, one draw per box (``_xywh2cs``).

    With probability ``prob`` a box centre moves by ``factor * (u - 0.5) * (w, h)`` (``u`` two
    U[0, 1) draws, ``w, h`` the cleaned box), computed in float64 and stored in float32 as
    officially. The draws depend only on ``(seed, dataset_index)`` and the record order.

    Returns:
        float32 ``[N, 2]`` centres.
    """
    centers = np.array([np.asarray(r.center, np.float32) for r in records],
                       np.float32).reshape(-1, 2)
    if prob <= 0 or not len(records):
        return centers
    rng = np.random.default_rng([int(seed), int(dataset_index), _JITTER_STREAM])
    chosen = rng.random(len(records)) < prob
    offsets = rng.random((len(records), 2))
    wh = np.array([np.asarray(r.box_xywh[2:4], np.float64) for r in records]).reshape(-1, 2)
    moved = centers.astype(np.float64) + factor * (offsets - 0.5) * wh
    centers[chosen] = moved[chosen].astype(np.float32)
    return centers


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentations (official defaults; ``train=False`` disables all of them).

    Attributes:
        flip_prob: horizontal flip probability.
        half_body_prob: half-body probability (0 disables it, as for MPII and InterHand).
        num_joints_half_body: half-body needs more than this many visible joints.
        scale_factor: scale *= clip(N(0,1) * f + 1, 1 - f, 1 + f).
        rot_factor: rotation = clip(N(0,1) * f, -2f, 2f) degrees.
        rot_prob: probability of a rotation.
        center_jitter_prob: probability of the box-centre jitter (up to +-20 % of the box).
        half_body_padding: enlargement of half-body boxes (official 1.5).
        center_jitter: ``"per_box"`` (official: drawn once per box when the dataset is built,
            the same in every epoch) or ``"per_iteration"`` (drawn at every load).
    """

    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    num_joints_half_body: int = 8
    scale_factor: float = 0.5
    rot_factor: float = 40.0
    rot_prob: float = 0.6
    center_jitter_prob: float = 0.3
    half_body_padding: float = 1.5
    center_jitter: str = "per_box"

    def __post_init__(self) -> None:
        if self.center_jitter not in CENTER_JITTER_MODES:
            raise ValueError(f"center_jitter must be one of {CENTER_JITTER_MODES}, got "
                             f"'{self.center_jitter}'")


class TopDownDataset(Dataset):
    """Training (or validation) samples from top-down records.

    Each item is a dict: ``image`` float32 ``[3, H, W]`` (normalised RGB), ``target`` float32
    ``[M, h, w]`` and ``target_weight`` ``[M]`` (M = ``max_num_joints`` or K), ``dataset_index``,
    ``index`` (record index), ``center``/``scale`` of the crop.

    Args:
        records: ground-truth records (with keypoints).
        meta: keypoint metadata (flip pairs, upper-body ids, joint weights).
        input_size_hw: model input ``(H, W)``.
        train: apply the augmentations.
        use_udp: UDP crop and targets (COCO/MPII) or classic crop and MSRA targets.
        sigma: Gaussian sigma in heatmap pixels.
        augment: augmentation settings.
        dataset_index: the dataset's index in a multi-dataset model (head / expert).
        max_num_joints: pad targets to this many channels (multi-dataset batches).
        seed: base seed of the per-sample generators.
        on_bad_sample: ``'error'`` raises on an unreadable image; ``'skip'`` drops the sample
            from its batch and counts it.
        image_reader: ``path -> RGB uint8 [H, W, 3]`` raising ``InputError`` for a file it
            cannot decode. None: ``vitpose.imageio.read_image``, the decoder of ``predict``
            (the pixel budget checked from the header, EXIF orientation; a corrupt or truncated
            file is an error, not silently used).
    """

    def __init__(self, records: Sequence[PoseRecord], meta: DatasetMeta,
                 input_size_hw: Sequence[int] = (256, 192), train: bool = True,
                 use_udp: bool = True, sigma: float = 2.0, augment: AugmentConfig | None = None,
                 dataset_index: int = 0, max_num_joints: int | None = None, seed: int = 0,
                 on_bad_sample: str = "error",
                 image_reader: Callable[[Path], np.ndarray] | None = None) -> None:
        if on_bad_sample not in ("error", "skip"):
            raise ValueError(f"on_bad_sample must be 'error' or 'skip', got '{on_bad_sample}'")
        bad = [r for r in records if r.keypoints is None]
        if bad:
            raise InputError(f"{len(bad)} record(s) have no keypoints (e.g. image {bad[0].image_path}"
                             "); training needs ground truth")
        self.records = list(records)
        self.meta = meta
        self.input_size_wh = (int(input_size_hw[1]), int(input_size_hw[0]))
        heatmap_wh = (self.input_size_wh[0] // 4, self.input_size_wh[1] // 4)
        self.train = train
        self.use_udp = use_udp
        self.codec = UDPHeatmap(self.input_size_wh, heatmap_wh, sigma) if use_udp else \
            MSRAHeatmap(self.input_size_wh, heatmap_wh, sigma)
        self.augment = augment or AugmentConfig()
        self.dataset_index = int(dataset_index)
        self.max_num_joints = max_num_joints
        self.seed = int(seed)
        self.on_bad_sample = on_bad_sample
        self.image_reader = image_reader
        self.epoch = 0
        self._centers: np.ndarray | None = None
        if train and self.augment.center_jitter == "per_box":
            self._centers = frozen_center_jitter(self.records, self.seed, self.dataset_index,
                                                 prob=self.augment.center_jitter_prob)
        self._flip_pairs = np.asarray(meta.flip_pairs, np.int64).reshape(-1, 2)
        self._upper = np.asarray(meta.upper_body_ids, np.int64)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draws (call before each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, self.dataset_index, index])

    def _image(self, path: Path) -> np.ndarray:
        reader = self.image_reader if self.image_reader is not None else read_image
        try:
            return reader(path)
        except InputError as exc:
            raise InputError(f"cannot read training image {path} ({exc})") from None

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        rec = self.records[index]
        try:
            image = self._image(rec.image_path)
        except InputError:
            if self.on_bad_sample == "error":
                raise
            log.warning("skipping unreadable image %s (counted in skipped_samples)",
                        rec.image_path)
            return None
        joints = np.asarray(rec.keypoints, np.float32)
        visible = np.minimum(np.asarray(rec.visible, np.float32), 1.0)
        center = np.asarray(rec.center, np.float32).copy()
        scale = np.asarray(rec.scale, np.float32).copy()
        rotation = 0.0
        if self.train:
            a = self.augment
            rng = self._rng(index)
            if self._centers is not None:
                center = self._centers[index].copy()
            else:
                center = random_center_jitter(center, np.asarray(rec.box_xywh[2:4]), rng,
                                              prob=a.center_jitter_prob)
            image, joints, visible, center, _ = random_flip(image, joints, visible, center,
                                                            self._flip_pairs, rng, prob=a.flip_prob)
            if a.half_body_prob > 0:
                center, scale, _ = random_half_body(
                    center, scale, joints, visible, self._upper, rng,
                    num_joints_half_body=a.num_joints_half_body, prob=a.half_body_prob,
                    image_size_wh=self.input_size_wh, padding=a.half_body_padding)
            scale, rotation = random_scale_rotation(scale, rng, scale_factor=a.scale_factor,
                                                    rot_factor=a.rot_factor, rot_prob=a.rot_prob)
        crop, crop_joints = top_down_affine(image, joints, visible, center, scale, rotation,
                                            self.input_size_wh, self.use_udp)
        target, weight = self.codec.encode(crop_joints[:, :2], visible,
                                           max_num_joints=self.max_num_joints)
        x = (crop.astype(np.float32) / 255.0 - _MEAN) / _STD
        return {
            "image": torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))),
            "target": torch.from_numpy(target),
            "target_weight": torch.from_numpy(weight),
            "dataset_index": self.dataset_index,
            "index": index,
            "center": torch.from_numpy(np.asarray(center, np.float32)),
            "scale": torch.from_numpy(np.asarray(scale, np.float32)),
        }


def collate_topdown(items: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Stack samples; skipped (None) samples are dropped and counted in ``'skipped'``."""
    kept = [it for it in items if it is not None]
    batch: dict[str, Any] = {"skipped": len(items) - len(kept)}
    if not kept:
        return batch
    for key in ("image", "target", "target_weight", "center", "scale"):
        batch[key] = torch.stack([it[key] for it in kept])
    batch["dataset_index"] = torch.tensor([it["dataset_index"] for it in kept], dtype=torch.long)
    batch["index"] = torch.tensor([it["index"] for it in kept], dtype=torch.long)
    return batch
