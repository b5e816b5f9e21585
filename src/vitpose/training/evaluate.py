"""Evaluation runs: a dataset split -> the one test-time path -> post-processing -> metrics.

Used by `vitpose test` (the original ``dist_test.sh``) and by validation during training.
Records are sharded over the ranks of a ``torchrun`` job and the results gathered on every rank,
so the metrics equal those of a single process. Crops go through
`PoseEstimator.predict_crops` (flip test, decoding, transform back), then the paper's protocol:
instance rescoring and per-image OKS-NMS for the OKS benchmarks (vitpose-reference §4).
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .. import distributed as dist
from ..dataset_meta import DatasetMeta
from ..datasets.coco import WHOLEBODY_PART_KEYS
from ..datasets.readers import read_annotations, read_detections
from ..datasets.records import PoseRecord
from ..errors import InputError, VitPoseError
from ..fileio import atomic_write_json
from ..inference.builder import engine_for
from ..inference.engines import Engine, calibration_rows
from ..inference.io import read_image
from ..inference.pipeline import PoseEstimator, TestSettings
from ..inference.postprocess import oks_nms, rescore_instances
from ..metrics import evaluate as compute_metrics
from ..models.vitpose import ViTPose
from ..transforms import crop_boxes
from .build import resolve_dataset_meta
from .config import DataConfig, DatasetConfig, ExperimentConfig
from .logging import progress as progress_bar

__all__ = ["engine_facts", "evaluate_model", "evaluate_dataset", "evaluation_engine", "load_eval_records",
           "format_metrics"]

log = logging.getLogger(__name__)

_PCK_DATASETS = {"mpii", "interhand2d"}


def _head_boxes_beside(ann: Path) -> Path | None:
    # The official MPII evaluation reads mpii_gt_val.mat next to the annotations (§4.3).
    for name in ("mpii_gt_val.npz", "mpii_gt_val.json", "mpii_gt_val.mat"):
        if (ann.parent / name).is_file():
            return ann.parent / name
    return None


def load_eval_records(ds: DatasetConfig, data: DataConfig, meta: DatasetMeta
                      ) -> list[PoseRecord]:
    """Records of an evaluation split: ground-truth boxes or detections (with its threshold)."""
    ann = data.resolve(ds.ann_file)
    images = data.resolve(ds.img_prefix)
    size = tuple(data.image_size)
    if ds.use_gt_bbox:
        return read_annotations(meta, ann, image_root=images, input_size_hw=size,
                                padding=ds.box_padding,
                                head_boxes=_head_boxes_beside(ann) if meta.name == "mpii" else None,
                                camera_path=data.resolve(ds.camera_file),
                                joint_3d_path=data.resolve(ds.joint_file))
    if not ds.det_file:
        raise InputError(f"dataset '{ds.name}' uses detections but has no det_file")
    return read_detections(data.resolve(ds.det_file), ann, dataset=meta, image_root=images,
                           input_size_hw=size, padding=ds.box_padding,
                           det_bbox_thr=ds.det_bbox_thr, category_id=1)


class _CropDataset(Dataset):
    """Crops (uint8) of records, for a DataLoader: image reading and warping in workers."""

    def __init__(self, records: Sequence[PoseRecord], input_size_wh: tuple[int, int],
                 use_udp: bool) -> None:
        self.records = records
        self.input_size_wh = input_size_wh
        self.use_udp = use_udp

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        rec = self.records[i]
        img = read_image(rec.image_path)  # the decoder of `predict`: corrupt files are errors
        crops, _ = crop_boxes(img, rec.center[None], rec.scale[None], self.input_size_wh,
                              self.use_udp)
        return crops[0], i


def _collate(items):
    return np.stack([c for c, _ in items]), [i for _, i in items]


def evaluate_dataset(estimator: PoseEstimator, records: Sequence[PoseRecord], ds: DatasetConfig,
                     data: DataConfig, oks_thr: float | None = 0.9, workers: int = 0,
                     batch_size: int = 32, show_progress: bool = True
                     ) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Predict every record (sharded over ranks) and score the split with its metric.

    Returns:
        ``(metrics, results)``; metrics are computed on rank 0 and broadcast, results are the
        gathered prediction entries (COCO results format, or ``ann_id`` + keypoints for PCK).
    """
    meta = estimator.meta
    rank, world = dist.get_rank(), dist.get_world_size()
    shard = list(range(rank, len(records), world))
    loader = DataLoader(_CropDataset([records[i] for i in shard], estimator.input_size_wh,
                                     estimator.settings.use_udp),
                        batch_size=batch_size, num_workers=workers, collate_fn=_collate)
    local: list[tuple[int, np.ndarray]] = []
    for crops, idx in progress_bar(loader, total=len(loader), desc=f"test {ds.name}",
                               enabled=show_progress and dist.is_main_process()):
        recs = [records[shard[i]] for i in idx]
        centers = np.stack([r.center for r in recs])
        scales = np.stack([r.scale for r in recs])
        coords, scores = estimator.predict_crops(estimator.to_tensor(crops), centers, scales)
        kp = np.concatenate([coords, scores[..., None]], -1)
        local += [(shard[i], kp[j]) for j, i in enumerate(idx)]
    gathered = [x for part in dist.all_gather_object(local) for x in part]
    gathered.sort(key=lambda t: t[0])
    keypoints = {i: kp for i, kp in gathered}
    if not all(np.isfinite(kp).all() for kp in keypoints.values()):  # every rank agrees
        raise InputError(
            f"{ds.name}: the model's outputs hold NaN or infinite values, so the model "
            "diverged (its loss or outputs became non-finite in training); evaluate an "
            "earlier checkpoint, or retrain with a lower optim.lr, in fp32 "
            "(runtime.amp=none) and with gradient clipping (optim.clip_grad)")
    results = _results(records, keypoints, meta, estimator.settings.vis_thr, oks_thr)
    metrics: dict[str, float] = {}
    if dist.is_main_process():
        metrics = compute_metrics(
            meta, data.resolve(ds.ann_file), results,
            head_boxes=_head_boxes_beside(data.resolve(ds.ann_file)) if meta.name == "mpii"
            else None,
            camera_path=data.resolve(ds.camera_file), joint_3d_path=data.resolve(ds.joint_file))
    metrics = dist.broadcast_object(metrics)
    return metrics, results


def _results(records: Sequence[PoseRecord], keypoints: dict[int, np.ndarray], meta: DatasetMeta,
             vis_thr: float, oks_thr: float | None) -> list[dict[str, Any]]:
    if meta.name in _PCK_DATASETS:
        return [{"ann_id": int(records[i].ann_id), "image_id": records[i].image_id,
                 "keypoints": keypoints[i].tolist()} for i in sorted(keypoints)]
    by_image: dict[Any, list[int]] = defaultdict(list)
    for i in sorted(keypoints):
        by_image[records[i].image_id].append(i)
    out: list[dict[str, Any]] = []
    for image_id, idx in by_image.items():
        kp = np.stack([keypoints[i] for i in idx]).astype(np.float32)
        box_scores = np.array([records[i].box_score for i in idx], np.float32)
        scores = rescore_instances(kp[..., 2], box_scores, vis_thr)
        areas = np.array([np.prod(records[i].scale * 200.0) for i in idx], np.float32)
        keep = range(len(idx))
        if oks_thr is not None and len(idx) > 1:
            keep = oks_nms(kp, scores, areas, meta.sigmas, oks_thr)
        for j in keep:
            rec = records[idx[j]]
            entry: dict[str, Any] = {"image_id": image_id, "category_id": int(rec.category_id)}
            flat = [round(float(v), 3) for v in kp[j].reshape(-1)]
            if meta.name == "wholebody":  # the official writer's separate part fields
                start = 0
                for key, count in WHOLEBODY_PART_KEYS:
                    entry[key] = flat[3 * start: 3 * (start + count)]
                    start += count
            else:
                entry["keypoints"] = flat
            # The official results carry the crop centre and scale, and no 'bbox': the
            # evaluator's loadRes would take a bbox's area as the prediction's area (it uses the
            # keypoints' extent otherwise), which changes AP (M) / AP (L).
            entry.update({"score": float(scores[j]),
                          "center": [round(float(v), 3) for v in rec.center],
                          "scale": [round(float(v), 6) for v in rec.scale]})
            out.append(entry)
    return out


def check_val_files(cfg: ExperimentConfig, advice: str = "pass --data-root DIR",
                    section: str = "val") -> None:
    """Every file the evaluation splits need exists (cheap: called before any weights are
    fetched, models built or epochs trained). `advice` ends the message; `section` is
    ``'val'`` or ``'test'`` (``data.test``)."""
    for i, ds in enumerate(getattr(cfg.data, section) or ()):
        needed = [("ann_file", ds.ann_file), ("img_prefix", ds.img_prefix)]
        if not ds.use_gt_bbox:
            needed.append(("det_file", ds.det_file))
        for key, value in needed:
            path = cfg.data.resolve(value)
            if path is None or not path.exists():
                raise InputError(f"data.{section}.{i}.{key} ({ds.name}): {path} not found (data.root "
                                 f"is '{cfg.data.root}'; {advice})")


def evaluate_model(model: ViTPose, cfg: ExperimentConfig, work_dir: str | os.PathLike | None = None,
                   progress: bool = True, device: str | torch.device | None = None, *,
                   backend: str | None = None, prepare: bool = False,
                   engines: dict[str, dict[str, Any]] | None = None
                   ) -> dict[str, dict[str, float]]:
    """Evaluate `model` on every validation split of `cfg` (``cfg.data.val``).

    Writes ``results_<name>.json`` and ``metrics_<name>.json`` (rank 0) into `work_dir` if given.

    Args:
        backend: the engine (default ``cfg.test.backend``); see `evaluation_engine`.
        prepare: the caller hands `model` over (`vitpose test`): the torch engine may cast its
            weights to ``cfg.test.dtype`` once; False leaves it as it is (training goes on).
        engines: filled with each split's `Engine.describe()` (and what ``auto`` chose).

    Returns:
        ``{dataset name: {metric: value}}``.
    """
    was_training = model.training
    model.eval()
    if device is not None:
        model.to(device)
    out: dict[str, dict[str, float]] = {}
    try:
        for ds in cfg.data.val:
            meta = resolve_dataset_meta(ds.name, cfg.data)
            settings = TestSettings(flip_test=cfg.test.flip_test, decode=cfg.test.decode,
                                    kernel=cfg.test.blur_kernel, padding=ds.box_padding,
                                    vis_thr=cfg.test.vis_thr)
            if settings.use_udp != ds.use_udp:
                raise InputError(f"dataset '{ds.name}': test.decode={cfg.test.decode} does not "
                                 f"match use_udp={ds.use_udp}")
            records = load_eval_records(ds, cfg.data, meta)
            crops = len(records) * (2 if cfg.test.flip_test else 1)  # what ``auto`` weighs
            engine, facts = evaluation_engine(model, cfg, ds.dataset_index,
                                              backend or cfg.test.backend, prepare, crops=crops)
            estimator = PoseEstimator(model, dataset=ds.dataset_index, settings=settings,
                                      meta=meta, batch_size=cfg.data.val_batch_size,
                                      engine=engine)
            metrics, results = evaluate_dataset(
                estimator, records, ds, cfg.data,
                oks_thr=cfg.test.oks_thr if cfg.test.oks_nms else None,
                workers=cfg.data.workers, batch_size=cfg.data.val_batch_size,
                show_progress=progress)
            if engines is not None:  # what ran the split (``auto`` may choose during it)
                engines[meta.name] = engine_facts(engine, facts.get("choice"))
            out[meta.name] = metrics
            if work_dir is not None and dist.is_main_process():
                wd = Path(work_dir)
                wd.mkdir(parents=True, exist_ok=True)
                atomic_write_json(wd / f"results_{meta.name}.json", results)
                atomic_write_json(wd / f"metrics_{meta.name}.json", metrics, indent=2)
    finally:
        model.train(was_training)
    return out


def evaluation_engine(model: ViTPose, cfg: ExperimentConfig, dataset: int, backend: str,
                      prepare: bool = False, crops: int | None = None
                      ) -> tuple[Engine, dict[str, Any]]:
    """The engine of one split and its facts (`engine_facts`; under ``"choice"`` the `AutoChoice`
    of ``auto``, which a calibration during the split updates).
    `crops`: the split's crops, flip mirrors included (whether ``auto`` calibrates).

    Built as `predict` builds it (`vitpose.inference.builder.engine_for`) in ``cfg.test.dtype``
    on the model's device. Under ``torchrun`` every rank builds its own, rank 0 first: the
    others then find its ONNX export, compiled model and ``auto`` choice in the cache (one
    choice for all ranks on the CPU), and the runtimes use the threads torch uses per rank.
    """
    device = next(model.parameters()).device
    threads = torch.get_num_threads() if dist.get_world_size() > 1 else None
    rows = calibration_rows(cfg.data.val_batch_size, cfg.test.flip_test)
    engine, choice = dist.main_first(
        lambda: engine_for(model, dataset, backend, cfg.test.dtype, device, prepare=prepare,
                           threads=threads, rows=rows, crops=crops),
        catch=VitPoseError)
    facts = engine_facts(engine, choice)
    log.info("evaluating with %s", facts["engine"])
    return engine, {**facts, "choice": choice}


def engine_facts(engine: Engine, choice: Any = None) -> dict[str, Any]:
    """`Engine.describe()` and, for ``auto``, the reason of its choice (an `AutoChoice`)."""
    facts = engine.describe()
    if choice is not None:
        facts["auto"] = choice.reason
    return facts


def format_metrics(metrics: dict[str, dict[str, float]]) -> str:
    """A plain-text table of ``{dataset: {metric: value}}``."""
    lines = []
    for name, m in metrics.items():
        lines.append(f"{name}:")
        width = max((len(k) for k in m), default=0)
        for k, v in m.items():
            lines.append(f"  {k:<{width}}  {v:.4f}" if isinstance(v, float) else f"  {k}  {v}")
    return "\n".join(lines)
