"""`vitpose split CHECKPOINT --out DIR`: one plain checkpoint per task of a multi-task model.

For a ViTPose+ checkpoint (ours or the original project's) every task's file holds the dense
backbone of that task (``fc2`` rows concatenated with the task's expert in every block, ref
§1.11-1.12) and the task's head as ``keypoint_head``; no expert or other head is left behind
(the original ``tools/model_split.py`` keeps the experts). A multi-task checkpoint without
experts (COCO+AIC+MPII) gives the shared backbone with each head. Files are named after the
datasets (``coco.pth``, ``ap10k.pth``, ...), carry their architecture in ``meta`` and load with
``vitpose.load_model(path)``. Tasks whose head the checkpoint lacks (the Hugging Face ViTPose+
files keep only the COCO head) are skipped with a note.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import torch

from ..checkpoints import checkpoint_config, densify_moe, read_checkpoint
from ..errors import CheckpointError, InputError
from ..models.vitpose import ViTPose, ViTPoseConfig
from ..training.checkpoint import atomic_save

log = logging.getLogger("vitpose.split")

#: A task name becomes a file name: letters, digits, ``_ - + .``, not starting with a dot.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+.-]{0,63}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="ViTPose+ or multi-task checkpoint (ours, official, "
                                      "transformers folder)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--datasets", help="comma-separated dataset names per index, overriding "
                                      "the checkpoint's (default: recorded or ViTPose+ order)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")


def _check_names(names: Sequence[str], origin: str) -> None:
    """Task names are file names inside the output folder: no paths, no duplicates."""
    bad = [n for n in names if not isinstance(n, str) or not _SAFE_NAME.fullmatch(n)]
    if bad:
        raise InputError(f"dataset name(s) {bad} from {origin} cannot be file names: use "
                         "letters, digits, '_', '-', '+' or '.' (not first), up to 64 characters")
    lowered = [n.lower() for n in names]
    dupes = sorted({n for n in names if lowered.count(n.lower()) > 1})
    if dupes:
        raise InputError(f"dataset name(s) {dupes} from {origin} appear more than once")


def _check_fits(cfg: ViTPoseConfig, sd: dict, name: str) -> None:
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in ViTPose(cfg).state_dict().items()}
    given = {k: tuple(v.shape) for k, v in sd.items()}
    if expected != given:
        missing = sorted(set(expected) - set(given))[:5]
        extra = sorted(set(given) - set(expected))[:5]
        shapes = [k for k in expected if k in given and expected[k] != given[k]][:5]
        raise CheckpointError(f"task '{name}': the split weights do not form a plain model "
                              f"(missing {missing}, unexpected {extra}, shapes {shapes})")


def split_checkpoint(
    path: str | Path,
    out_dir: str | Path,
    datasets: Sequence[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write one plain per-task checkpoint per dataset of a multi-task checkpoint.

    Args:
        path: the ViTPose+ / multi-task checkpoint.
        out_dir: output folder (created).
        datasets: dataset names per index; default the checkpoint's recorded names, else the
            ViTPose+ order (coco, aic, mpii, ap10k, apt36k, wholebody) or the multi-task order.
        overwrite: replace existing files instead of refusing.

    Returns:
        ``{dataset name: written file}``.

    Raises:
        CheckpointError: unreadable file, or a single-task checkpoint (nothing to split).
        InputError: an output file exists and ``overwrite`` is False.
    """
    if datasets is not None:
        _check_names(datasets, "--datasets")
    obj = read_checkpoint(path)
    cfg, sd = checkpoint_config(obj, source=str(path))
    n_tasks = max(cfg.num_experts if cfg.is_moe else 1, len(cfg.heads))
    if n_tasks < 2:
        raise CheckpointError(f"{path} is a single-task checkpoint (one head, no experts): "
                              "nothing to split")
    if datasets is not None:
        if len(datasets) != n_tasks:
            raise InputError(f"--datasets gives {len(datasets)} name(s) ({', '.join(datasets)}) "
                             f"but {path} has {n_tasks} tasks: give one name per task, in "
                             f"order (now: {', '.join(cfg.datasets[:n_tasks])})")
        cfg = dataclasses.replace(cfg, datasets=tuple(datasets), heads=tuple(
            dataclasses.replace(h, dataset=datasets[i]) for i, h in enumerate(cfg.heads)))
    names = list(cfg.datasets[:n_tasks])
    _check_names(names, f"the checkpoint {path} (pass --datasets to rename them)")
    out_dir = Path(out_dir)
    root = out_dir.resolve()
    targets = {name: out_dir / f"{name}.pth" for name in names}
    for target in targets.values():  # belt and braces: never write outside the folder
        if target.resolve().parent != root:
            raise InputError(f"refusing to write {target}: outside the output folder {out_dir}")
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not overwrite:
        raise InputError(f"output file(s) exist: {', '.join(existing)} (pass --overwrite)")
    written: dict[str, Path] = {}
    try:
        for index, name in enumerate(names):
            prefix = "keypoint_head" if index == 0 else f"associate_keypoint_heads.{index - 1}"
            if index >= len(cfg.heads) or not any(k.startswith(prefix + ".") for k in sd):
                log.warning("skipping '%s': the checkpoint has no head for it", name)
                continue
            task_sd = densify_moe(sd, index)
            head = dataclasses.replace(cfg.heads[index], dataset=name)
            task_cfg = dataclasses.replace(cfg, num_experts=1, part_features=0, datasets=(name,),
                                           heads=(head,))
            _check_fits(task_cfg, task_sd, name)
            written[name] = atomic_save({
                "state_dict": task_sd,
                "meta": {"vitpose_config": json.dumps(task_cfg.to_dict()), "dataset": name,
                         "dataset_index": index, "split_from": str(path)},
            }, targets[name])
    except BaseException:  # a failed split leaves no partial set that blocks the rerun
        for file in written.values():
            file.unlink(missing_ok=True)
        raise
    if not written:
        raise CheckpointError(f"{path}: no task had a head to write")
    return written


def run(args: argparse.Namespace) -> int:
    datasets = [d.strip() for d in args.datasets.split(",")] if args.datasets is not None \
        else None
    written = split_checkpoint(args.checkpoint, args.out, datasets, overwrite=args.overwrite)
    for name, file in written.items():
        print(f"{name}: {file}")
    return 0
