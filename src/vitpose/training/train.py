"""Training and fine-tuning: build everything from an :class:`ExperimentConfig`, run the epochs.

The loop reads from top to bottom as in MAE's ``main_finetune.py`` / ``engine_finetune.py``
(no hooks): :func:`build_model_from_config` -> :func:`build_datasets` -> :func:`build_loader`
-> AdamW with layer-wise lr decay (``training/optim.py``) -> :func:`train_one_epoch` per epoch ->
validation (``training/evaluate.py``) -> checkpoint (``training/checkpoint.py``). :func:`fit` ties
them together, single-process or under ``torchrun`` (DDP; NCCL on GPUs, Gloo on CPU).

The recipe is the official one (ref §2): augmentations and targets come from
:class:`~vitpose.datasets.topdown.TopDownDataset`, the loss is the joints MSE with target
weights (``training/loss.py``; one head per dataset for multi-task and ViTPose+ batches),
linear warm-up then step decay computed from the iteration, optional bf16 / fp16 (with loss
scaling), global gradient clipping and drop path (``model.drop_path_rate``).

Reproducibility: sample order and augmentations are pure functions of ``(seed, epoch, index)``,
every rank seeds torch with ``seed + rank``, evaluation runs under a forked RNG, and a
checkpoint holds every RNG state; so a resumed run reaches the same weights as an uninterrupted
one, and ``W`` processes with per-process batch ``B`` follow the same trajectory as one process
with batch ``W * B`` (up to float summation order; heads with BatchNorm see per-process batch
statistics, as in the official runs).
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from vitpose import distributed
from vitpose.checkpoints import (
    load_state_dict_strict,
)
from vitpose.datasets.mixing import MixedDataset, MixingSampler
from vitpose.datasets.readers import read_annotations
from vitpose.datasets.topdown import AugmentConfig, TopDownDataset, collate_topdown
from vitpose.errors import CheckpointError, ConfigError, InputError, VitPoseError
from vitpose.fileio import clean_stale_temporaries
from vitpose.inference.io import read_image
from vitpose.models.vitpose import ViTPose
from vitpose.training.build import (
    build_model_from_config,
    load_initial_weights,
    resolve_dataset_meta,
)
from vitpose.training.checkpoint import (
    WriteBudget,
    atomic_copy,
    atomic_save,
    build_training_state,
    capture_rng_state,
    load_training_state,
    restore_rng_state,
)
from vitpose.training.config import (
    DatasetConfig,
    ExperimentConfig,
    config_to_dict,
    dump_config,
)
from vitpose.training.logging import (
    JsonLinesWriter,
    MetricLogger,
    SmoothedValue,
    Timer,
    peak_memory_mb,
    progress,
)
from vitpose.training.loss import multi_head_loss
from vitpose.training.optim import GradScalerStep, apply_lr, build_optimizer, lr_at

__all__ = [
    "TrainingError",
    "resolve_dataset_meta",
    "build_model_from_config",
    "load_initial_weights",
    "build_datasets",
    "build_loader",
    "TrainStep",
    "train_one_epoch",
    "fit",
]

log = logging.getLogger(__name__)

#: Consecutive non-finite losses tolerated with ``runtime.on_bad_sample='skip'`` before stopping.
MAX_CONSECUTIVE_NONFINITE = 20
#: Metrics where lower is better (everything else, AP, PCKh, AUC, ..., higher is better).
LOWER_IS_BETTER = ("EPE", "loss")


class TrainingError(VitPoseError):
    """Training cannot go on (non-finite loss, a failed checkpoint write, ...)."""


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def _augment(ds: DatasetConfig) -> AugmentConfig:
    return AugmentConfig(
        flip_prob=ds.flip_prob if ds.flip else 0.0,
        half_body_prob=ds.prob_half_body if ds.half_body else 0.0,
        num_joints_half_body=ds.num_joints_half_body,
        scale_factor=ds.scale_factor,
        rot_factor=ds.rot_factor,
        rot_prob=ds.rot_prob,
        center_jitter_prob=ds.center_jitter_prob,
        half_body_padding=ds.half_body_padding,
        center_jitter=ds.center_jitter,
    )


def _check_images(records: Sequence[Any], where: str, on_bad_sample: str) -> None:
    paths = sorted({str(r.image_path) for r in records})
    missing = [p for p in paths if not os.path.isfile(p)]
    if not missing:
        return
    listed = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
    if on_bad_sample == "error":
        raise InputError(
            f"{where}: {len(missing)} of {len(paths)} training images are missing ({listed}); "
            "fix img_prefix / --data-root, or set runtime.on_bad_sample=skip to train without them"
        )
    log.warning("%s: %d of %d training images are missing (%s); their samples will be skipped",
                where, len(missing), len(paths), listed)


def build_datasets(cfg: ExperimentConfig) -> MixedDataset:
    """The training datasets of ``cfg.data.train``, mixed, targets padded to the largest K.

    Raises:
        ConfigError: no training data configured.
        InputError: a missing annotation file, no usable annotations, or missing images (unless
            ``runtime.on_bad_sample='skip'``).
    """
    data = cfg.data
    if not data.train:
        raise ConfigError("data.train is empty: nothing to train on")
    if tuple(data.heatmap_size) != (data.image_size[0] // 4, data.image_size[1] // 4):
        raise ConfigError(
            f"data.heatmap_size {list(data.heatmap_size)} must be a quarter of data.image_size "
            f"{list(data.image_size)} (the heads upsample the 1/16 features 4x)"
        )
    metas = [resolve_dataset_meta(ds.name, data) for ds in data.train]
    max_k = max(m.num_keypoints for m in metas)
    members = []
    for i, (ds, meta) in enumerate(zip(data.train, metas)):
        where = f"data.train.{i} ({meta.name})"
        ann = data.resolve(ds.ann_file)
        if not ann.is_file():
            raise InputError(f"{where}: annotation file {ann} not found (data.root is "
                             f"'{data.root}'; set --data-root)")
        extra: dict[str, Any] = {}
        if meta.name == "interhand2d":
            extra = {"camera_path": data.resolve(ds.camera_file),
                     "joint_3d_path": data.resolve(ds.joint_file)}
        records = read_annotations(meta, ann, image_root=data.resolve(ds.img_prefix),
                                   input_size_hw=tuple(data.image_size),
                                   padding=ds.box_padding, **extra)
        if not records:
            raise InputError(f"{where}: {ann} has no usable annotated instances")
        _check_images(records, where, cfg.runtime.on_bad_sample)
        members.append(TopDownDataset(
            records, meta, tuple(data.image_size), train=True, use_udp=ds.use_udp,
            sigma=data.sigma, augment=_augment(ds), dataset_index=ds.dataset_index,
            max_num_joints=max_k, seed=cfg.runtime.seed, on_bad_sample=cfg.runtime.on_bad_sample,
            image_reader=read_image,  # the decoder of `predict`
        ))
    return MixedDataset(members)


def build_loader(
    dataset: MixedDataset,
    cfg: ExperimentConfig,
    rank: int | None = None,
    world_size: int | None = None,
) -> tuple[DataLoader, MixingSampler]:
    """Loader of one process: mixing sampler (weights from ``DatasetConfig.weight``), batches of
    ``data.batch_size``; the incomplete last batch is kept, as officially (``drop_last=False``).

    Returns:
        ``(loader, sampler)``; call ``sampler.set_epoch`` and ``dataset.set_epoch`` each epoch.
    """
    sampler = MixingSampler(
        dataset.sizes, [ds.weight for ds in cfg.data.train], seed=cfg.runtime.seed,
        rank=rank, world_size=world_size,
    )
    batch_size = cfg.data.batch_size
    generator = torch.Generator()
    generator.manual_seed(cfg.runtime.seed)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=cfg.data.workers,
        collate_fn=collate_topdown,
        drop_last=False,
        pin_memory=torch.cuda.is_available(),
        generator=generator,  # keeps worker seeding off the global torch RNG
    )
    return loader, sampler


# --------------------------------------------------------------------------------------------
# One epoch
# --------------------------------------------------------------------------------------------


class TrainStep(nn.Module):
    """Model + loss in one module, so DDP sees the whole multi-head forward.

    ``forward(images, dataset_index, target, target_weight)`` returns
    ``(loss, {dataset index: that dataset's loss})`` (see ``training.loss.multi_head_loss``).
    As officially, every head runs on the whole batch (``ViTPose.forward_train``).
    """

    def __init__(self, model: ViTPose) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, dataset_index: torch.Tensor, target: torch.Tensor,
                target_weight: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        index, outputs = self.model.forward_train(images, dataset_index)
        return multi_head_loss(outputs, index, target, target_weight)


def _unwrap_loader_error(exc: InputError) -> InputError:
    # Errors raised in loader workers carry the worker traceback; keep the last line.
    lines = [line for line in str(exc).splitlines() if line.strip()]
    message = lines[-1].split(": ", 1)[-1] if len(lines) > 1 else str(exc)
    return InputError(f"{message}; set runtime.on_bad_sample=skip to skip unreadable samples")


def train_one_epoch(
    step_module: nn.Module,
    model: ViTPose,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scaler: GradScalerStep,
    cfg: ExperimentConfig,
    epoch: int,
    device: torch.device,
    writer: JsonLinesWriter | None = None,
    show_progress: bool = True,
    dataset_indices: Sequence[int] = (0,),
) -> dict[str, float]:
    """Train one epoch.

    Iteration ``i`` of epoch ``e`` is global iteration ``e * len(loader) + i``; its lr comes from
    ``engine.optim.lr_at``. A non-finite loss (averaged over processes) raises
    :class:`TrainingError`, or with ``runtime.on_bad_sample='skip'`` skips the step and is
    counted (training stops after ``MAX_CONSECUTIVE_NONFINITE`` in a row). A batch whose samples
    were all unreadable is skipped too.

    Args:
        step_module: :class:`TrainStep` around ``model`` (DDP-wrapped when distributed).
        model: the unwrapped model (for names).
        loader: this process's loader.
        optimizer: the optimiser (groups carry ``lr_scale``).
        scaler: backward / clip / step with optional mixed precision.
        cfg: the experiment.
        epoch: 0-based epoch.
        device: where the model runs.
        writer: JSON-lines log (main process).
        show_progress: tqdm bar on the main process.
        dataset_indices: dataset indices of the training mix (per-dataset loss meters).

    Returns:
        Epoch averages over all processes: ``loss``, ``loss_<dataset>``, ``lr``, ``grad_norm``,
        ``time``, ``data_time``, plus counts ``skipped_samples`` and ``skipped_steps``.
    """
    step_module.train()
    iters = len(loader)
    world = distributed.get_world_size()
    indices = sorted(set(int(d) for d in dataset_indices))
    names = {d: model.datasets[d] for d in indices}
    meters = MetricLogger()
    # Every rank holds the same meters, so their synchronisation matches across processes.
    for name in ["loss", "lr", "grad_norm", "time", "data_time"] + [
        f"loss_{names[d]}" for d in indices
    ]:
        meters.add_meter(name, SmoothedValue())
    skipped_samples = 0
    skipped_steps = 0
    nonfinite_run = 0
    timer = Timer()
    bar = progress(loader, total=iters, desc=f"epoch {epoch + 1}/{cfg.schedule.epochs}",
                   enabled=show_progress and distributed.is_main_process(), leave=False)
    it = iter(timer.wrap(bar))
    for i in range(iters):
        try:
            batch = next(it)
        except StopIteration:
            break
        except InputError as exc:
            raise _unwrap_loader_error(exc) from None
        iteration = epoch * iters + i
        lr = lr_at(iteration, iters, cfg.optim.lr, cfg.schedule)
        apply_lr(optimizer, lr)
        skipped_samples += int(batch["skipped"])
        has_data = "image" in batch
        if not has_data and world == 1:
            skipped_steps += 1
            continue
        if has_data:
            images = batch["image"].to(device, non_blocking=True)
            target = batch["target"].to(device, non_blocking=True)
            weight = batch["target_weight"].to(device, non_blocking=True)
            dataset_index = batch["dataset_index"].to(device)
        else:  # a rank with nothing to train on still joins the gradient all-reduce
            h, w = cfg.data.image_size
            hh, hw = cfg.data.heatmap_size
            k = model.heads[0].final_layer.out_channels
            images = torch.zeros(1, 3, h, w, device=device)
            target = torch.zeros(1, k, hh, hw, device=device)
            weight = torch.zeros(1, k, device=device)
            dataset_index = torch.zeros(1, dtype=torch.long, device=device)
        with scaler.autocast():
            loss, per_dataset = step_module(images, dataset_index, target, weight)
        if not has_data:
            loss = loss * 0.0
        # One all-reduce gives the global mean loss (also the NaN check every rank agrees on)
        # and the per-dataset losses weighted by their sample counts.
        counts = torch.bincount(dataset_index, minlength=max(indices) + 1).double().cpu()
        stats = [loss.detach().double().cpu().reshape(1)]
        for d in indices:
            n_d = counts[d] if has_data else torch.tensor(0.0, dtype=torch.float64)
            value = per_dataset[d].double().cpu() * n_d if d in per_dataset else n_d * 0
            stats += [value.reshape(1), n_d.reshape(1)]
        stats = distributed.all_reduce_sum(torch.cat(stats))
        global_loss = float(stats[0]) / world
        if not math.isfinite(global_loss):
            nonfinite_run += 1
            if cfg.runtime.on_bad_sample != "skip":
                raise TrainingError(
                    f"the loss is {global_loss} at epoch {epoch + 1}, iteration {iteration} "
                    f"(lr {lr:.3g}); training stopped and the last checkpoint is untouched. "
                    "Lower optim.lr, keep optim.clip_grad, use runtime.amp=none or bf16, or set "
                    "runtime.on_bad_sample=skip to skip such steps"
                )
            if nonfinite_run > MAX_CONSECUTIVE_NONFINITE:
                raise TrainingError(
                    f"{nonfinite_run} non-finite losses in a row (epoch {epoch + 1}, iteration "
                    f"{iteration}): training diverged; lower optim.lr"
                )
            scaler(loss, optimizer, update=False)  # every rank back-propagates (DDP), then drop
            optimizer.zero_grad(set_to_none=True)
            skipped_steps += 1
            log.warning("non-finite loss at iteration %d skipped", iteration)
            continue
        nonfinite_run = 0
        grad_norm = scaler(loss, optimizer)
        values: dict[str, float] = {"loss": global_loss, "lr": lr}
        if grad_norm is not None and math.isfinite(grad_norm):
            values["grad_norm"] = grad_norm
        for j, d in enumerate(indices):
            n_d = float(stats[2 + 2 * j])
            if n_d > 0:
                values[f"loss_{names[d]}"] = float(stats[1 + 2 * j]) / n_d
        meters.update(**values)
        meters.update(time=timer.iter_time, data_time=timer.data_time)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{global_loss:.3g}", lr=f"{lr:.2g}", refresh=False)
        if writer is not None and (i % cfg.runtime.log_interval == 0 or i == iters - 1):
            writer.write({
                "mode": "train", "epoch": epoch + 1, "iter": i + 1, "iteration": iteration + 1,
                **values, "time": timer.iter_time, "data_time": timer.data_time,
                "memory": peak_memory_mb(device),
            })
    averages = meters.averages(synchronize=True)
    averages["skipped_samples"] = float(distributed.all_reduce_sum(float(skipped_samples)))
    averages["skipped_steps"] = float(skipped_steps)
    return averages


# --------------------------------------------------------------------------------------------
# The whole run
# --------------------------------------------------------------------------------------------


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _pick_metric(metrics: Mapping[str, Any] | None, name: str) -> tuple[str, float] | None:
    """``(dataset/metric, value)`` of the first validation dataset that reports ``name``."""
    for dataset, values in (metrics or {}).items():
        if isinstance(values, Mapping) and name in values:
            value = float(values[name])
            if math.isfinite(value):
                return f"{dataset}/{name}", value
    return None


def _is_better(value: float, best: Mapping[str, Any] | None, name: str) -> bool:
    if best is None:
        return True
    if name in LOWER_IS_BETTER:
        return value < float(best["value"])
    return value > float(best["value"])


def _config_differences(old: Mapping[str, Any], new: Mapping[str, Any],
                         prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        path = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _config_differences(a, b, path + ".")
        elif a != b:
            out.append(path)
    return out


# Keys that may change between a run and its resumption without a warning.
_RESUME_FREE_KEYS = ("schedule.epochs", "runtime.work_dir", "data.root", "data.workers",
                     "runtime.eval_interval", "runtime.save_interval", "runtime.log_interval",
                     "runtime.latest_share",
                     "description")


def _restore(state: Mapping[str, Any], model: ViTPose, optimizer: torch.optim.Optimizer,
             scaler: GradScalerStep, cfg: ExperimentConfig, iters_per_epoch: int,
             source: str) -> None:
    load_state_dict_strict(model, state["state_dict"], source)
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{source}: the optimiser state does not fit this model/config "
                              f"({exc})") from None
    scaler.load_state_dict(state.get("scaler") or {})
    changed = [k for k in _config_differences(state["config"], config_to_dict(cfg))
               if not k.startswith(_RESUME_FREE_KEYS)]
    if changed:
        log.warning("resuming with a config that differs from the checkpoint's in: %s",
                    ", ".join(changed[:10]) + (" ..." if len(changed) > 10 else ""))
    old_ipe = (state.get("scheduler") or {}).get("iters_per_epoch")
    if old_ipe is not None and int(old_ipe) != iters_per_epoch:
        log.warning("iterations per epoch changed from %d to %d (batch size or process count); "
                    "the run continues but no longer matches an uninterrupted one", old_ipe,
                    iters_per_epoch)


def _evaluate(model: ViTPose, cfg: ExperimentConfig, work_dir: Path, show_progress: bool
              ) -> dict[str, dict[str, float]]:
    from vitpose.training.evaluate import evaluate_model

    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    # Evaluation must not move the training RNG: a resumed run would diverge otherwise.
    with torch.random.fork_rng(devices=devices):
        py_state, np_state = random.getstate(), np.random.get_state()
        was_training = model.training
        model.eval()
        try:
            # PyTorch whatever test.backend: the weights change every epoch, so another
            # engine would export (and cache) a new graph each time
            metrics = evaluate_model(model, cfg, work_dir=work_dir, progress=show_progress,
                                     backend="torch")
        finally:
            model.train(was_training)
            random.setstate(py_state)
            np.random.set_state(np_state)
    return distributed.broadcast_object(metrics)


def _check_finite(model: nn.Module, epoch: int) -> None:
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p.detach()).all()]
    if bad:
        raise TrainingError(
            f"the model diverged: its weights hold NaN/inf after epoch {epoch + 1} "
            f"({', '.join(bad[:3])}), after non-finite losses or outputs; no checkpoint was "
            "written and the last one is intact. Lower optim.lr, train in fp32 "
            "(runtime.amp=none) and keep gradient clipping (optim.clip_grad)"
        )


def _save(state: dict[str, Any], work_dir: Path, epoch: int, improved: bool,
          save_interval: int) -> None:
    """Rank 0 writes; every rank learns whether it worked (no rank waits forever)."""
    error = None
    if distributed.is_main_process():
        try:
            latest = atomic_save(state, work_dir / "latest.pth")
            if improved:
                atomic_copy(latest, work_dir / "best.pth")
            if save_interval and (epoch + 1) % save_interval == 0:
                atomic_copy(latest, work_dir / f"epoch_{epoch + 1}.pth")
        except (OSError, RuntimeError, VitPoseError) as exc:
            error = f"cannot write the checkpoint in {work_dir}: {exc}"
    error = distributed.broadcast_object(error)
    if error:
        raise TrainingError(error)


def fit(
    cfg: ExperimentConfig,
    work_dir: str | os.PathLike,
    resume: str | os.PathLike | None = None,
    show_progress: bool = True,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Train (or fine-tune) ``cfg`` to ``schedule.epochs``, validating and checkpointing.

    Under ``torchrun`` each process calls this; the process group is created from the
    environment (NCCL on GPUs, Gloo on CPU). ``data.batch_size`` is per process.

    Writes in ``work_dir`` (main process only): ``config.yaml`` (resolved config),
    ``log.jsonl`` (one JSON object per logged iteration, epoch and validation), ``latest.pth``
    after each epoch whose write fits ``runtime.latest_share`` of the run's time (always after
    the last one, a validation and a snapshot), ``best.pth`` (best ``runtime.best_metric`` of
    the first validation dataset that reports it), ``epoch_{n}.pth`` every
    ``runtime.save_interval`` epochs and the evaluation outputs under ``eval/``. Validation runs
    every ``runtime.eval_interval`` epochs and after the last one (0: only after the last one).

    Args:
        cfg: the experiment.
        work_dir: output folder.
        resume: a training checkpoint (``latest.pth``) to continue from exactly.
        show_progress: progress bar on the main process.
        device: default ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU.

    Returns:
        ``{"epoch", "iteration", "train": last epoch averages, "metrics": last validation,
        "best": {"metric", "value", "epoch"} or None, "work_dir", "checkpoint"}``.

    Raises:
        ConfigError, InputError, CheckpointError: bad config, data or checkpoints.
        TrainingError: a non-finite loss or weights, or a checkpoint that cannot be written.
    """
    created_group = not distributed.is_enabled() and distributed.init_distributed(
        backend=distributed.backend_for(device))
    deterministic = torch.are_deterministic_algorithms_enabled()
    benchmark = torch.backends.cudnn.benchmark
    try:
        return _fit(cfg, Path(work_dir), resume, show_progress, device)
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.backends.cudnn.benchmark = benchmark
        if created_group:
            distributed.destroy_distributed()


def _fit(cfg: ExperimentConfig, work_dir: Path, resume: str | os.PathLike | None,
         show_progress: bool, device: str | torch.device | None) -> dict[str, Any]:
    rank, world = distributed.get_rank(), distributed.get_world_size()
    main = rank == 0
    if device is None:
        device = (torch.device("cuda", distributed.local_device_index())
                  if torch.cuda.is_available()
                  else torch.device("cpu"))
    device = torch.device(device)
    if cfg.runtime.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # warn_only: the backward of bilinear upsampling (the simple decoder) has no
        # deterministic CUDA kernel; PyTorch would raise on the first step otherwise
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    _seed_everything(cfg.runtime.seed + rank)

    state = load_training_state(resume) if resume is not None else None
    from vitpose.training.evaluate import check_val_files
    check_val_files(cfg, "set --data-root, or data.val=[] to train without validation")
    model = build_model_from_config(cfg, with_weights=state is None).to(device)
    dataset = build_datasets(cfg)
    loader, sampler = build_loader(dataset, cfg, rank, world)
    iters_per_epoch = len(loader)
    if iters_per_epoch == 0:
        raise ConfigError("the training loader yields no batch; lower data.batch_size")
    optimizer = build_optimizer(model, cfg.optim, model.cfg.depth)
    scaler = GradScalerStep(cfg.runtime.amp, device.type, cfg.optim.clip_grad)
    start_epoch, best, metrics = 0, None, None
    if state is not None:
        _restore(state, model, optimizer, scaler, cfg, iters_per_epoch, str(resume))
        start_epoch, best, metrics = int(state["epoch"]), state.get("best"), state.get("metrics")
    step_module: nn.Module = TrainStep(model)
    if world > 1:
        step_module = nn.parallel.DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None,
            # every head runs on every batch; only the experts of absent datasets sit out
            find_unused_parameters=model.cfg.is_moe,
        )
    if state is not None:
        rng = state["rng"]
        if len(rng) == world:
            restore_rng_state(rng[rank])
        else:
            log.warning("the checkpoint holds RNG states of %d processes, this run has %d: "
                        "random draws are reseeded", len(rng), world)

    writer = JsonLinesWriter(work_dir / "log.jsonl")
    if main:
        work_dir.mkdir(parents=True, exist_ok=True)
        clean_stale_temporaries(work_dir, include_own=True)  # left by killed writers
        dump_config(cfg, work_dir / "config.yaml")
    indices = sorted({ds.dataset_index for ds in cfg.data.train})
    global_batch = cfg.data.batch_size * world
    writer.write({
        "mode": "start", "world_size": world, "device": str(device),
        "batch_size": cfg.data.batch_size, "global_batch_size": global_batch,
        "iters_per_epoch": iters_per_epoch, "epochs": cfg.schedule.epochs,
        "samples": [{"dataset": model.datasets[ds.dataset_index], "name": ds.name, "samples": n}
                    for ds, n in zip(cfg.data.train, dataset.sizes)],
        "params": sum(p.numel() for p in model.parameters()),
        "resumed_from": str(resume) if resume is not None else None, "start_epoch": start_epoch,
    })
    if main:
        log.info("training %s: %d samples, %d x %d = %d per step, %d iterations per epoch, "
                 "epochs %d..%d, work dir %s", cfg.model.variant, len(dataset),
                 cfg.data.batch_size, world, global_batch, iters_per_epoch, start_epoch + 1,
                 cfg.schedule.epochs, work_dir)

    train_stats: dict[str, float] = {}
    epoch = start_epoch - 1
    budget = WriteBudget(cfg.runtime.latest_share)  # latest.pth: see RuntimeConfig.latest_share
    for epoch in range(start_epoch, cfg.schedule.epochs):
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        loader.generator.manual_seed(cfg.runtime.seed * 100_003 + epoch)
        started = time.perf_counter()
        train_stats = train_one_epoch(step_module, model, loader, optimizer, scaler, cfg, epoch,
                                      device, writer, show_progress, indices)
        writer.write({"mode": "train_epoch", "epoch": epoch + 1,
                      "iteration": (epoch + 1) * iters_per_epoch,
                      "epoch_time": time.perf_counter() - started, **train_stats})
        if main:
            log.info("epoch %d/%d: loss %.4g, lr %.3g, %.1fs", epoch + 1, cfg.schedule.epochs,
                     train_stats["loss"], train_stats["lr"], time.perf_counter() - started)
        # before validation: a diverged model is reported as such, not as NaN predictions
        _check_finite(model, epoch)
        last = epoch + 1 == cfg.schedule.epochs
        interval = cfg.runtime.eval_interval
        improved = False
        evaluated = bool(cfg.data.val and (last or (interval and (epoch + 1) % interval == 0)))
        if evaluated:
            metrics = _evaluate(model, cfg, work_dir / "eval" / f"epoch_{epoch + 1}",
                                show_progress)
            writer.write({"mode": "val", "epoch": epoch + 1,
                          **{f"{d}/{k}": v for d, m in metrics.items() for k, v in m.items()}})
            picked = _pick_metric(metrics, cfg.runtime.best_metric)
            if picked is None:
                log.warning("validation reports no '%s' (runtime.best_metric); best.pth is not "
                            "written", cfg.runtime.best_metric)
            elif _is_better(picked[1], best, cfg.runtime.best_metric):
                best = {"metric": picked[0], "value": picked[1], "epoch": epoch + 1}
                improved = True
            if main:
                log.info("epoch %d validation: %s", epoch + 1, "; ".join(
                    f"{d} " + ", ".join(f"{k} {v:.4f}" for k, v in m.items())
                    for d, m in metrics.items()))
        # rank 0's clock decides for every rank (the RNG gather below is collective)
        snapshot = (epoch + 1) % cfg.runtime.save_interval == 0
        due = distributed.broadcast_object(last or evaluated or snapshot
                                           or budget.due(time.perf_counter()))
        if not due:
            continue
        rng = distributed.all_gather_object(capture_rng_state())
        write_start = time.perf_counter()
        state = build_training_state(
            model=model, optimizer=optimizer, scaler_state=scaler.state_dict(),
            epoch=epoch + 1, iteration=(epoch + 1) * iters_per_epoch,
            iters_per_epoch=iters_per_epoch, config=config_to_dict(cfg), rng=rng, best=best,
            metrics=metrics,
        ) if main else {}
        _save(state, work_dir, epoch, improved, cfg.runtime.save_interval)
        budget.wrote(write_start, time.perf_counter())
    return {
        "epoch": epoch + 1,
        "iteration": (epoch + 1) * iters_per_epoch,
        "train": train_stats,
        "metrics": metrics,
        "best": best,
        "work_dir": str(work_dir),
        "checkpoint": str(work_dir / "latest.pth"),
    }
