"""The top-down pipeline: image + person boxes -> keypoints in image pixels.

`PoseEstimator.predict_crops` is the ONE test-time path (flip test, heatmap decoding, transform
back to the image) shared by `vitpose predict`, `vitpose test`, training-time validation and the
web demo. Steps, as in the official `TopDown.forward_test` (vitpose-reference §3):

1. box ``(x, y, w, h)`` -> centre and scale (aspect fixed to the model input, x1.25 padding);
2. affine crop to the model input (classic, or UDP for the UDP regime);
3. ImageNet normalisation (RGB), batched model forward;
4. flip test: the flipped crop's heatmaps are flipped back with the dataset's flip pairs (and
   shifted one column in the classic regime) and averaged (`PoseEstimator.forward_heatmaps`,
   `PoseEstimator.flip_back`);
5. decoding (arg-max + quarter offset, DARK, or DARK-UDP) and the transform back
   (`PoseEstimator.decode`);
6. instance score = mean keypoint score above ``vis_thr`` x box score; optional OKS-NMS.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from ..codecs import decode_heatmaps
from ..dataset_meta import DatasetMeta, get_dataset_meta
from ..errors import InputError
from ..models.vitpose import ViTPose
from ..transforms import box_xywh_to_center_scale, crop_boxes, flip_back_heatmaps_torch
from .detectors import sanitize_boxes
from .draw import draw_poses
from .engines import Engine, TorchEngine
from .io import HARD_MAX_PIXELS, read_image
from .postprocess import oks_nms, rescore_instances

__all__ = ["TestSettings", "PoseInstance", "PoseResult", "PoseEstimator", "RoutedPoseEstimator",
           "Estimator", "DECODE_CHOICES"]

log = logging.getLogger(__name__)

#: Datasets whose official test config uses the UDP crop and DARK-UDP decoding.
_UDP_DATASETS = {"coco", "mpii"}
DECODE_CHOICES = ("udp", "default", "dark")


@dataclass(frozen=True)
class TestSettings:
    """Test-time settings (the official ``test_cfg`` plus box handling).

    Attributes:
        flip_test: average with the flipped crop's heatmaps.
        decode: ``'udp'`` (UDP crop, arg-max + DARK-UDP, no flip shift: COCO/MPII/ViTPose+),
            ``'default'`` (classic crop, arg-max + quarter offset, flip shift: AIC, AP-10K, ...),
            or ``'dark'`` (classic crop, DARK refinement, flip shift).
        kernel: DARK blur kernel (11 in every config).
        padding: box enlargement (1.25; 1.5 for InterHand2.6M).
        vis_thr: keypoint score threshold of the instance rescoring.
        nms_thr: OKS-NMS threshold per image (0.9 in evaluation), None to keep every instance.
    """

    __test__ = False  # not a pytest test class, despite its name

    flip_test: bool = True
    decode: str = "udp"
    kernel: int = 11
    padding: float = 1.25
    vis_thr: float = 0.2
    nms_thr: float | None = None

    def __post_init__(self) -> None:
        if self.decode not in DECODE_CHOICES:
            raise ValueError(f"decode must be one of {DECODE_CHOICES}, got '{self.decode}'")

    @property
    def use_udp(self) -> bool:
        return self.decode == "udp"

    @property
    def shift_heatmap(self) -> bool:
        return not self.use_udp

    @classmethod
    def for_dataset(cls, dataset: str, **kw: Any) -> TestSettings:
        """The official test regime of a dataset (vitpose-reference §2.8)."""
        decode = kw.pop("decode", None) or ("udp" if dataset in _UDP_DATASETS else "default")
        padding = kw.pop("padding", None) or (1.5 if dataset.startswith("interhand") else 1.25)
        return cls(decode=decode, padding=padding, **kw)


@dataclass
class PoseInstance:
    """One person (or animal, hand) in original-image pixels.

    Attributes:
        box_xywh: the box the crop was made from, ``[4]``.
        box_score: detector score of the box.
        keypoints: ``[K, 3]`` = x, y, score.
        score: instance score (mean keypoint score above ``vis_thr`` times the box score).
        center: crop centre ``[2]``; scale: crop scale ``[2]`` (units of 200 px).
        track_id: persistent id across video frames (None for images).
        dataset: the keypoint set of ``keypoints`` when a `RoutedPoseEstimator` chose it per
            instance (``coco``, ``ap10k``, ...), else None (the estimator's one dataset).
        category: the detector's class of the box (``person``, ``dog``, ...) when known.
    """

    box_xywh: np.ndarray
    box_score: float
    keypoints: np.ndarray
    score: float
    center: np.ndarray
    scale: np.ndarray
    track_id: int | None = None
    dataset: str | None = None
    category: str | None = None

    @property
    def area(self) -> float:
        """Area of the padded, aspect-fixed crop box (the official OKS-NMS area)."""
        return float(np.prod(self.scale * 200.0))

    def is_finite(self) -> bool:
        """No NaN/inf in the keypoints, the box or the scores."""
        return bool(np.isfinite(self.keypoints).all() and np.isfinite(self.box_xywh).all()
                    and math.isfinite(self.score) and math.isfinite(self.box_score))

    def to_coco(self, image_id: int | str, category_id: int = 1) -> dict[str, Any]:
        """COCO keypoint results entry."""
        d = {"image_id": image_id, "category_id": category_id,
             "bbox": [round(float(v), 2) for v in self.box_xywh],
             "score": float(self.score),
             "keypoints": [round(float(v), 3) for v in self.keypoints.reshape(-1)]}
        if self.track_id is not None:
            d["track_id"] = int(self.track_id)
        if self.dataset is not None:
            d["dataset"] = self.dataset
        if self.category is not None:
            d["category"] = self.category
        return d


@dataclass
class PoseResult:
    """All instances of one image (or video frame)."""

    source: str
    image_id: int | str
    image_hw: tuple[int, int]
    dataset: str
    instances: list[PoseInstance] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def keypoints(self) -> np.ndarray:
        """``[N, K, 3]`` (x, y, score) of all instances."""
        if not self.instances:
            return np.zeros((0, 0, 3), np.float32)
        return np.stack([i.keypoints for i in self.instances])

    @property
    def boxes_xyxy(self) -> np.ndarray:
        """``[N, 4]`` person boxes ``x1, y1, x2, y2`` of the instances, in image pixels."""
        if not self.instances:
            return np.zeros((0, 4), np.float32)
        xywh = np.stack([i.box_xywh for i in self.instances])
        return np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)

    @property
    def xy(self) -> np.ndarray:
        """``(N, K, 2)`` keypoint ``x, y`` in image pixels (float32). With a routed estimator
        instances of different keypoint sets have different K: use the instances then."""
        kp = self.keypoints
        return kp[..., :2] if kp.size else np.zeros((0, 0, 2), np.float32)

    @property
    def scores(self) -> np.ndarray:
        """``(N, K)`` keypoint confidences."""
        kp = self.keypoints
        return kp[..., 2] if kp.size else np.zeros((0, 0), np.float32)

    @property
    def boxes(self) -> np.ndarray:
        """``(N, 5)`` boxes ``x, y, w, h, score`` the crops were made from, in image pixels."""
        if not self.instances:
            return np.zeros((0, 5), np.float32)
        return np.array([[*i.box_xywh[:4], i.box_score] for i in self.instances], np.float32)

    @property
    def instance_scores(self) -> np.ndarray:
        """``(N,)`` instance scores (mean confident keypoint score x box score)."""
        return np.array([i.score for i in self.instances], np.float32)

    @property
    def track_ids(self) -> np.ndarray:
        """``(N,)`` int64 track ids across video frames (-1 where none: images)."""
        return np.array([-1 if i.track_id is None else i.track_id for i in self.instances],
                        np.int64)

    @property
    def datasets(self) -> list[str]:
        """Each instance's keypoint set (the estimator's one dataset unless routed)."""
        return [i.dataset or self.dataset for i in self.instances]

    @property
    def categories(self) -> list[str | None]:
        """Each instance's detector class (``person``, ``dog``, ...; None when unknown)."""
        return [i.category for i in self.instances]

    def __iter__(self) -> Iterator[PoseInstance]:
        return iter(self.instances)

    def to_coco(self, category_id: int = 1) -> list[dict[str, Any]]:
        return [i.to_coco(self.image_id, category_id) for i in self.instances]

    def to_supervision(self, **options: Any) -> Any:
        """This result as ``supervision.KeyPoints`` (`vitpose.formats.to_supervision`; needs
        ``pip install 'vitpose[formats]'``)."""
        from .. import formats  # imported on use: it may load pandas / supervision
        return formats.to_supervision(self, **options)

    def to_pandas(self, **options: Any) -> Any:
        """One row per instance x keypoint as a ``pandas.DataFrame``
        (`vitpose.formats.to_pandas`, which also takes a list of results)."""
        from .. import formats
        return formats.to_pandas(self, **options)

    def drop_nonfinite(self) -> int:
        """Removes the instances holding NaN/inf (broken or diverged weights), so that every
        output stays valid JSON, and says so in `warnings`; returns how many were removed."""
        kept = [i for i in self.instances if i.is_finite()]
        dropped = len(self.instances) - len(kept)
        if dropped:
            self.instances = kept
            self.warnings.append(f"{dropped} instance(s) had non-finite (NaN or infinite) "
                                 "keypoints or scores and were left out (broken or diverged "
                                 "weights?)")
        return dropped


@runtime_checkable
class Estimator(Protocol):
    """What the predict job, the demo and the tracker need of an estimator (`PoseEstimator`,
    `RoutedPoseEstimator`): ``routed`` is True when each box's detector class picks the keypoint
    set (instances then carry their ``dataset``; tracks are matched by box IoU)."""

    routed: bool
    dataset: str
    meta: DatasetMeta
    settings: TestSettings
    batch_size: int

    def __call__(self, image: Any, boxes: Any = None, image_id: int | str | None = None,
                 labels: Any = None) -> PoseResult: ...

    def predict_many(self, items: Iterable[tuple[Any, ...]]) -> Iterator[PoseResult]: ...

    def draw(self, image: np.ndarray, result: PoseResult, kpt_thr: float = 0.3
             ) -> np.ndarray: ...

    def with_settings(self, **changes: Any) -> Estimator: ...


@dataclass
class _Pending:
    """Boxes of one image waiting for model calls. An image with more boxes than a batch keeps
    the image, not the crops, which are made chunk by chunk in `_run` (memory does not grow
    with the number of boxes); one with fewer has its crops made at once and the image
    dropped (memory does not grow with the image size)."""

    owner: int  # index of the image's result
    image: np.ndarray | None
    boxes: np.ndarray  # kept boxes [N, 5]
    ready: tuple[torch.Tensor, np.ndarray, np.ndarray] | None = None  # crops made at once
    coords: np.ndarray | None = None  # [N, K, 2] once run
    scores: np.ndarray | None = None  # [N, K]
    centers: np.ndarray | None = None  # [N, 2]
    scales: np.ndarray | None = None  # [N, 2]


def _chunks(pending: list[Any], sizes: list[int], batch_size: int
            ) -> Iterator[list[tuple[Any, int, int]]]:
    """Rows of the concatenated items in chunks of `batch_size` (the last may be shorter):
    each chunk is a list of ``(item, lo, hi)`` segments, rows ``lo:hi`` of that item."""
    chunk: list[tuple[Any, int, int]] = []
    room = batch_size
    for item, n in zip(pending, sizes):
        lo = 0
        while lo < n:
            hi = min(n, lo + room)
            chunk.append((item, lo, hi))
            room -= hi - lo
            lo = hi
            if room == 0:
                yield chunk
                chunk, room = [], batch_size
    if chunk:
        yield chunk


class PoseEstimator:
    """Top-down pose estimation with a ViTPose model.

    ``estimator(image, boxes)`` returns a `PoseResult`; ``estimator.predict_many(items)`` batches
    crops across images. Images are RGB ``uint8 [H, W, 3]`` arrays or file paths; boxes are
    ``[N, 4]`` ``x, y, w, h`` or ``[N, 5]`` with a score, in original-image pixels (None = the
    whole image).

    Args:
        model: a `ViTPose` (weights loaded).
        dataset: which dataset's keypoints to predict (head and ViTPose+ expert); default the
            model's first dataset.
        settings: `TestSettings`; default the dataset's official regime.
        meta: keypoint metadata (flip pairs, sigmas); default from the registry by dataset name.
        device: where to run; default the model's device.
        batch_size: crops per model call (a flip test doubles the work, not the batch).
        dtype: ``torch.float32`` (default), ``torch.bfloat16`` or ``torch.float16`` autocast
            (of the default torch engine).
        engine: what runs the model call (crops -> heatmaps): a `vitpose.inference.engines`
            engine for `model` and `dataset` (ONNX Runtime, OpenVINO, compiled torch, ...);
            default eager PyTorch in `dtype`. With an engine, `model` only supplies the facts
            (input size, head, datasets) and may live on the meta device.
    """

    routed = False  # one keypoint set (see `Estimator`)

    def __init__(self, model: ViTPose, dataset: str | int | None = None,
                 settings: TestSettings | None = None, meta: DatasetMeta | None = None,
                 device: str | torch.device | None = None, batch_size: int = 32,
                 dtype: torch.dtype = torch.float32, engine: Engine | None = None) -> None:
        self.model = model.eval()
        if device is not None and engine is None:
            self.model.to(device)
        index = model.dataset_index_of(dataset if dataset is not None else 0)
        self.engine = engine if engine is not None else TorchEngine(model, index, dtype)
        self.device = self.engine.device
        self.dataset_index = index
        self.dataset = model.datasets[index]
        self.head = model.head_for(index)
        if meta is None:
            try:
                meta = get_dataset_meta(self.dataset)
            except ValueError:
                raise InputError(
                    f"no built-in keypoint metadata for dataset '{self.dataset}' (a custom "
                    "dataset?): pass its metadata file (--dataset-meta FILE, or meta="
                    "load_dataset_meta(FILE) in Python)") from None
        self.meta = meta
        if self.meta.num_keypoints != self.head.out_channels:
            raise ValueError(f"dataset '{self.meta.name}' has {self.meta.num_keypoints} keypoints "
                             f"but the model head predicts {self.head.out_channels}; pass the "
                             "right dataset or metadata")
        self.settings = settings or TestSettings.for_dataset(self.dataset)
        self.batch_size = int(batch_size)
        h, w = model.input_size
        self.input_size_wh = (w, h)
        # the model's own input normalisation (`ViTPose.pixel_mean` / `pixel_std`)
        pixel_mean = getattr(model, "pixel_mean", ViTPose.pixel_mean)
        pixel_std = getattr(model, "pixel_std", ViTPose.pixel_std)
        self._mean = torch.tensor(pixel_mean, device=self.device).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(pixel_std, device=self.device).view(1, 3, 1, 1) * 255
        self._flip_pairs = np.asarray(self.meta.flip_pairs, dtype=np.int64).reshape(-1, 2)

    @classmethod
    def from_pretrained(cls, model: str | None = None, weights: str | None = None,
                        dataset: str | None = None, device: str = "cpu", **kw: Any
                        ) -> PoseEstimator:
        """Load released (or given) weights and wrap them; see `vitpose.load_model` (``model``
        None: the default variant, ``vitpose-b-simple``, or with ``weights`` the file's own
        architecture)."""
        from ..hub import load_model
        return cls(load_model(model, weights=weights, device=device, dataset=dataset),
                   dataset=dataset, **kw)

    def with_settings(self, **changes: Any) -> PoseEstimator:
        """A copy sharing the model, with `TestSettings` fields changed."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.settings = dataclasses.replace(self.settings, **changes)
        return other

    def draw(self, image: np.ndarray, result: PoseResult, kpt_thr: float = 0.3) -> np.ndarray:
        """`result` drawn on a copy of the RGB `image` with the dataset's skeleton and colours
        (boxes, and track ids when set)."""
        if not result.instances:
            return image.copy()
        kp = result.keypoints
        labels = [f"#{i.track_id}" for i in result.instances] \
            if result.instances[0].track_id is not None else None
        return draw_poses(image, kp[..., :2], kp[..., 2], self.meta.skeleton,
                          self.meta.keypoint_colors, self.meta.link_colors, kpt_thr=kpt_thr,
                          boxes_xyxy=result.boxes_xyxy, box_labels=labels)

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype of the engine's last call (``--backend auto`` may switch engines
        during a job: `engines.online`)."""
        return self.engine.dtype

    # -- the one test-time path ---------------------------------------------------------------
    def to_tensor(self, crops: np.ndarray) -> torch.Tensor:
        """uint8 RGB crops ``[N, H, W, 3]`` -> normalised float ``[N, 3, H, W]`` on the device."""
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device)
        x = x.permute(0, 3, 1, 2).float()
        return (x - self._mean) / self._std

    @torch.inference_mode()
    def forward_heatmaps(self, inputs: torch.Tensor) -> torch.Tensor:
        """Model heatmaps ``[N, K, h, w]`` (float32) with the flip test if enabled, in chunks."""
        outs = []
        for start in range(0, len(inputs), self.batch_size):
            x = inputs[start:start + self.batch_size].to(self.device)
            n = len(x)
            if self.settings.flip_test:
                # the crops and their mirrors in one model call: twice the rows per matrix
                # product, which is faster than two calls at small batch sizes
                x = torch.cat([x, x.flip(3)])
            hm = self.engine(x)
            if self.settings.flip_test:
                hm = (hm[:n] + self.flip_back(hm[n:])) * 0.5
            outs.append(hm)
        if not outs:
            h, w = self.model.cfg.heatmap_size
            return torch.zeros((0, self.head.out_channels, h, w), device=self.device)
        return torch.cat(outs)

    def flip_back(self, heatmaps: torch.Tensor) -> torch.Tensor:
        """Heatmaps of horizontally flipped crops -> heatmaps of the crops (official ``flip_back``).

        Swaps the channels of the dataset's flip pairs, reverses the width axis and, in the classic
        regime (``shift_heatmap``), shifts the result one column right.
        """
        return flip_back_heatmaps_torch(heatmaps, self._flip_pairs,
                                        shift=self.settings.shift_heatmap)

    def decode(self, heatmaps: np.ndarray | torch.Tensor, centers: np.ndarray, scales: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """Heatmaps -> keypoints in image pixels with this estimator's decoder (`TestSettings`
        ``decode`` and ``kernel``; see `vitpose.codecs.decode_heatmaps`).

        Args:
            heatmaps: ``[N, K, h, w]`` (numpy or torch, any device).
            centers: ``[N, 2]`` crop centres in image pixels.
            scales: ``[N, 2]`` crop scales (units of 200 px).

        Returns:
            ``coords`` float32 ``[N, K, 2]`` in image pixels and ``scores`` float32 ``[N, K]``.
        """
        if isinstance(heatmaps, torch.Tensor):
            heatmaps = heatmaps.detach().float().cpu().numpy()
        if len(heatmaps) == 0:
            k = heatmaps.shape[1] if heatmaps.ndim == 4 else self.head.out_channels
            return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
        return decode_heatmaps(heatmaps, np.asarray(centers), np.asarray(scales),
                               mode=self.settings.decode, kernel=self.settings.kernel)

    def predict_crops(self, inputs: torch.Tensor, centers: np.ndarray, scales: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Normalised crops -> keypoints in image pixels.

        Args:
            inputs: ``[N, 3, H, W]`` normalised crops (see `to_tensor`).
            centers: ``[N, 2]`` crop centres in image pixels.
            scales: ``[N, 2]`` crop scales (units of 200 px).

        Returns:
            ``coords`` float32 ``[N, K, 2]`` in image pixels and ``scores`` float32 ``[N, K]``.
        """
        return self.decode(self.forward_heatmaps(inputs), centers, scales)

    def crops(self, image: np.ndarray, boxes_xywh: np.ndarray
              ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Crops of `boxes_xywh` from `image`: normalised tensor, centres and scales."""
        center, scale = box_xywh_to_center_scale(boxes_xywh[:, :4], self.input_size_wh,
                                                 self.settings.padding)
        crops, _ = crop_boxes(image, center, scale, self.input_size_wh, self.settings.use_udp)
        return self.to_tensor(crops), center, scale

    # -- images -------------------------------------------------------------------------------
    def _load(self, image: np.ndarray | str | os.PathLike) -> tuple[np.ndarray, str]:
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise InputError(f"images must be RGB uint8 [H, W, 3] arrays, got {image.dtype} "
                                 f"{image.shape}")
            if image.shape[0] * image.shape[1] > HARD_MAX_PIXELS:  # OpenCV's warp would crash
                raise InputError(f"image of {image.shape[1]}x{image.shape[0]} pixels is above "
                                 f"{HARD_MAX_PIXELS}, the largest OpenCV can crop from")
            return image, "<array>"
        return read_image(image), os.fspath(image)

    def __call__(self, image: np.ndarray | str | os.PathLike, boxes: Any = None,
                 image_id: int | str | None = None, labels: Any = None) -> PoseResult:
        """Poses of one image; see `predict_many`."""
        return next(iter(self.predict_many([(image, boxes, image_id, labels)])))

    def predict_many(self, items: Iterable[tuple[Any, ...]]) -> Iterator[PoseResult]:
        """Poses for many images, crops batched across images; results in input order.

        Args:
            items: ``(image, boxes, image_id)`` triples; ``image`` is an RGB array or a path,
                ``boxes`` ``[N, 4|5]`` xywh(+score) or None for the whole image, ``image_id``
                defaults to the file name. A fourth item, the detector's class of each box
                (as `RoutedPoseEstimator` takes), is accepted and ignored: one dataset here.

        Yields:
            one `PoseResult` per item, as soon as its crops have been through the model.
        """
        pending: list[PoseResult] = []
        queue: list[_Pending] = []
        n_rows = 0
        for item in items:
            image, boxes, image_id = item[:3]
            array, source = self._load(image)
            hw = array.shape[:2]
            if boxes is None:
                boxes = np.array([[0, 0, hw[1], hw[0], 1.0]], np.float32)
            # Warnings name the file, or the image id for arrays (the CLI passes decoded images).
            name = os.path.basename(source) if not isinstance(image, np.ndarray) else \
                (f"image {image_id}" if image_id is not None else "")
            kept, warnings = sanitize_boxes(boxes, hw, source=name)
            for w in warnings:
                log.warning(w)
            result = PoseResult(source, image_id if image_id is not None else
                                os.path.basename(source), hw, self.dataset, warnings=warnings)
            pending.append(result)
            if len(kept):
                queue.append(_Pending(len(pending) - 1, array, kept) if len(kept) > self.batch_size
                             else _Pending(len(pending) - 1, None, kept, self.crops(array, kept)))
                n_rows += len(kept)
            if n_rows >= self.batch_size:
                self._run(queue, pending)
                queue, n_rows = [], 0
                yield from pending
                pending = []
        if queue:
            self._run(queue, pending)
        yield from pending

    def _run(self, queue: list[_Pending], results: list[PoseResult]) -> None:
        """The boxes of the queued images, cropped, run and decoded `batch_size` rows at a time
        (the same model calls as one concatenated batch cut into chunks): only the keypoints
        are kept, so memory does not depend on the number of boxes of an image."""
        for chunk in _chunks(queue, [len(p.boxes) for p in queue], max(self.batch_size, 1)):
            parts = [self.crops(p.image, p.boxes[lo:hi]) if p.ready is None else
                     tuple(part[lo:hi] for part in p.ready) for p, lo, hi in chunk]
            if len(parts) == 1:
                x, centers, scales = parts[0]
            else:
                x = torch.cat([t for t, _, _ in parts])
                centers = np.concatenate([c for _, c, _ in parts])
                scales = np.concatenate([s for _, _, s in parts])
            del parts
            coords, scores = self.predict_crops(x, centers, scales)
            del x
            row = 0
            for p, lo, hi in chunk:
                n = hi - lo
                if p.coords is None:  # the dtypes of the unchunked path
                    size = len(p.boxes)
                    p.coords = np.zeros((size, *coords.shape[1:]), coords.dtype)
                    p.scores = np.zeros((size, *scores.shape[1:]), scores.dtype)
                    p.centers = np.zeros((size, 2), centers.dtype)
                    p.scales = np.zeros((size, 2), scales.dtype)
                p.coords[lo:hi] = coords[row:row + n]
                p.scores[lo:hi] = scores[row:row + n]
                p.centers[lo:hi] = centers[row:row + n]
                p.scales[lo:hi] = scales[row:row + n]
                row += n
        for p in queue:
            self._fill(results[p.owner], p.boxes, p.coords, p.scores, p.centers, p.scales)
            p.image = p.ready = p.coords = p.scores = None

    def _fill(self, result: PoseResult, boxes: np.ndarray, coords: np.ndarray,
              scores: np.ndarray, centers: np.ndarray, scales: np.ndarray) -> None:
        inst_scores = rescore_instances(scores, boxes[:, 4], self.settings.vis_thr)
        keypoints = np.concatenate([coords, scores[..., None]], -1).astype(np.float32)
        order = np.arange(len(boxes))
        if self.settings.nms_thr is not None and len(boxes) > 1:
            areas = np.prod(scales * 200.0, axis=1)
            order = np.asarray(oks_nms(keypoints, inst_scores, areas, self.meta.sigmas,
                                       self.settings.nms_thr), dtype=np.int64)
        result.instances = [
            PoseInstance(boxes[i, :4].copy(), float(boxes[i, 4]), keypoints[i],
                         float(inst_scores[i]), centers[i], scales[i]) for i in order]



# ------------------------------------------------------------------------------------------------
# Per-instance keypoint sets (ViTPose+): detector classes -> heads and experts
# ------------------------------------------------------------------------------------------------


def _kept_rows(boxes: Any, hw: tuple[int, int]) -> np.ndarray:
    """Indices of the rows `sanitize_boxes` keeps (to keep per-box labels aligned)."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0,), np.int64)
    arr = arr.reshape(-1, arr.shape[-1])
    marked = np.concatenate([arr[:, :4], np.arange(1, len(arr) + 1, dtype=np.float64)[:, None]],
                            axis=1)
    kept, _ = sanitize_boxes(marked, hw)
    return np.rint(kept[:, 4] - 1).astype(np.int64)


class RoutedPoseEstimator:
    """Top-down estimation where each box's detector class picks the keypoint set: persons to a
    human head, animals to an animal head (ViTPose+), all crops in one batched backbone call
    with a per-sample ``dataset_index`` (each crop goes through its dataset's expert), then each
    dataset's head, flip test and decoding on its rows.

    ``estimator(image, boxes, image_id, labels)`` and ``predict_many`` take the per-box class
    names as a fourth item (None: every box is of the ``default`` route, e.g. HOG boxes). Boxes
    whose class has no route are dropped. Instances carry their ``dataset`` and ``category``.

    Args:
        model: a multi-dataset `ViTPose` (ViTPose+).
        routes: detector class name -> dataset name (e.g. ``{"person": "coco", "dog": "ap10k"}``).
        default: the route of boxes without a class (default: the route of ``"person"``).
        settings_overrides: `TestSettings` fields set for every dataset (``flip_test``, ...).
        device, batch_size, dtype: as for `PoseEstimator`.
    """

    routed = True  # the box classes pick the keypoint sets (see `Estimator`)

    def __init__(self, model: ViTPose, routes: dict[str, str], default: str | None = None,
                 settings_overrides: dict[str, Any] | None = None,
                 device: str | torch.device | None = None, batch_size: int = 32,
                 dtype: torch.dtype = torch.float32) -> None:
        if not routes:
            raise InputError("no detector class is routed to a keypoint set")
        overrides = dict(settings_overrides or {})
        self.children: dict[str, PoseEstimator] = {}
        for dataset in dict.fromkeys(routes.values()):
            model.head_for(dataset)  # a clear error when the checkpoint lacks the head
            self.children[dataset] = PoseEstimator(
                model, dataset=dataset, settings=TestSettings.for_dataset(dataset, **overrides),
                device=device, batch_size=batch_size, dtype=dtype)
        self.routes = {k.lower(): v for k, v in routes.items()}
        self.default = default or self.routes.get("person") or next(iter(self.children))
        self.model = model
        first = self.children[self.default]
        self.device, self.dtype, self.batch_size = first.device, first.dtype, int(batch_size)
        self.meta, self.settings, self.dataset = first.meta, first.settings, "auto"

    @property
    def classes(self) -> tuple[str, ...]:
        """The detector classes this estimator takes."""
        return tuple(self.routes)

    def with_settings(self, **changes: Any) -> RoutedPoseEstimator:
        """A copy sharing the model, with `TestSettings` fields changed for every dataset."""
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.children = {k: c.with_settings(**changes) for k, c in self.children.items()}
        other.settings = other.children[other.default].settings
        return other

    def draw(self, image: np.ndarray, result: PoseResult, kpt_thr: float = 0.3) -> np.ndarray:
        """Each instance drawn with its own keypoint set's skeleton and colours."""
        out = image.copy()
        for dataset, child in self.children.items():
            mine = [i for i in result.instances if (i.dataset or self.default) == dataset]
            if mine:
                part = PoseResult(result.source, result.image_id, result.image_hw, dataset, mine)
                out = child.draw(out, part, kpt_thr)
        return out

    def __call__(self, image: np.ndarray | str | os.PathLike, boxes: Any = None,
                 image_id: int | str | None = None, labels: Any = None) -> PoseResult:
        return next(iter(self.predict_many([(image, boxes, image_id, labels)])))

    def predict_many(self, items: Iterable[tuple[Any, ...]]) -> Iterator[PoseResult]:
        """Like `PoseEstimator.predict_many`, with ``(image, boxes, image_id[, labels])``."""
        pending: list[tuple[PoseResult, list[tuple[str, str | None, np.ndarray]], np.ndarray]] = []
        n_crops = 0
        default = self.children[self.default]
        for item in items:
            image, boxes, image_id = item[:3]
            labels = item[3] if len(item) > 3 else None
            array, source = default._load(image)
            hw = array.shape[:2]
            if boxes is None:
                boxes, labels = np.array([[0, 0, hw[1], hw[0], 1.0]], np.float32), None
            name = os.path.basename(source) if not isinstance(image, np.ndarray) else \
                (f"image {image_id}" if image_id is not None else "")
            kept, warnings = sanitize_boxes(boxes, hw, source=name)
            for w in warnings:
                log.warning(w)
            rows = _kept_rows(boxes, hw)
            result = PoseResult(source, image_id if image_id is not None else
                                os.path.basename(source), hw, "auto", warnings=warnings)
            crops: list[tuple[str, str | None, np.ndarray]] = []
            for box, row in zip(kept, rows):
                category = None if labels is None else str(labels[int(row)]).lower()
                dataset = self.default if category is None else self.routes.get(category)
                if dataset is not None:
                    crops.append((dataset, category, box))
            pending.append((result, crops, array))
            n_crops += len(crops)
            if n_crops >= self.batch_size:
                self._run(pending)
                yield from (r for r, _, _ in pending)
                pending, n_crops = [], 0
        if pending:
            self._run(pending)
            yield from (r for r, _, _ in pending)

    def _run(self, pending: list[tuple[PoseResult, list, np.ndarray]]) -> None:
        """Crops of every pending image, one backbone call per chunk, each dataset's head. The
        crops are made chunk by chunk (memory does not grow with the number of boxes)."""
        groups: list[tuple[int, str, np.ndarray]] = []
        owners, ds_index = [], []
        for k, (_result, crops, _array) in enumerate(pending):
            for dataset in self.children:
                group = [(cat, box) for d, cat, box in crops if d == dataset]
                if not group:
                    continue
                groups.append((k, dataset, np.stack([b for _, b in group])))
                owners += [(k, dataset, cat, b) for cat, b in group]
                ds_index += [self.children[dataset].dataset_index] * len(group)
        if not groups:
            return
        idx = torch.tensor(ds_index, dtype=torch.long, device=self.device)
        n_rows = len(owners)
        coords: list[Any] = [None] * n_rows
        scores: list[Any] = [None] * n_rows
        center: np.ndarray | None = None
        scale: np.ndarray | None = None
        start = 0
        for chunk in _chunks(groups, [len(g[2]) for g in groups], max(self.batch_size, 1)):
            parts = [self.children[dataset].crops(pending[k][2], boxes[lo:hi])
                     for (k, dataset, boxes), lo, hi in chunk]
            x = torch.cat([t for t, _, _ in parts])
            c = np.concatenate([c for _, c, _ in parts])
            s = np.concatenate([s for _, _, s in parts])
            del parts
            stop = start + len(x)
            if center is None:
                center = np.zeros((n_rows, 2), c.dtype)
                scale = np.zeros((n_rows, 2), s.dtype)
            center[start:stop], scale[start:stop] = c, s
            self._forward(x, idx[start:stop], c, s, coords, scores, start)
            start = stop
        per_image: dict[tuple[int, str], list[int]] = {}
        for row, (k, dataset, _, _) in enumerate(owners):
            per_image.setdefault((k, dataset), []).append(row)
        for (k, dataset), rows in per_image.items():
            child = self.children[dataset]
            boxes = np.stack([owners[r][3] for r in rows])
            kp = np.stack([coords[r] for r in rows])
            sc = np.stack([scores[r] for r in rows])
            inst_scores = rescore_instances(sc, boxes[:, 4], child.settings.vis_thr)
            keypoints = np.concatenate([kp, sc[..., None]], -1).astype(np.float32)
            order = np.arange(len(rows))
            if child.settings.nms_thr is not None and len(rows) > 1:
                areas = np.prod(scale[rows] * 200.0, axis=1)
                order = np.asarray(oks_nms(keypoints, inst_scores, areas, child.meta.sigmas,
                                           child.settings.nms_thr), dtype=np.int64)
            pending[k][0].instances += [
                PoseInstance(boxes[i, :4].copy(), float(boxes[i, 4]), keypoints[i],
                             float(inst_scores[i]), center[rows[i]], scale[rows[i]],
                             dataset=dataset, category=owners[rows[i]][2]) for i in order]

    @torch.inference_mode()
    def _forward(self, x: torch.Tensor, idx: torch.Tensor, center: np.ndarray, scale: np.ndarray,
                 coords: list, scores: list, offset: int) -> None:
        n = len(x)
        flip = any(c.settings.flip_test for c in self.children.values())
        x = x.to(self.device)
        if flip:
            x = torch.cat([x, x.flip(3)])
            idx = torch.cat([idx, idx])
        present = sorted(set(idx.tolist()))
        route: Any = present[0] if len(present) == 1 else idx  # one expert: no gather
        with torch.autocast(self.device.type, dtype=self.dtype,
                            enabled=self.dtype != torch.float32):
            feats = self.model.forward_features(x, route)
            for child in self.children.values():
                rows = (idx[:n] == child.dataset_index).nonzero(as_tuple=True)[0]
                if not len(rows):
                    continue
                both = torch.cat([rows, rows + n]) if flip else rows
                hm = child.head(feats[both]).float()
                if flip:
                    k = len(rows)
                    hm = (hm[:k] + child.flip_back(hm[k:])) * 0.5
                r = rows.cpu().numpy()
                c, s = child.decode(hm, center[r], scale[r])
                for j, row in enumerate(r):
                    coords[offset + int(row)] = c[j]
                    scores[offset + int(row)] = s[j]
