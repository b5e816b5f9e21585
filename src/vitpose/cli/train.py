"""`vitpose train CONFIG`: train or fine-tune from a config (the official ``dist_train.sh``).

Single process::

    vitpose train debug/tiny_coco --data-root ../shared/data --set schedule.epochs=5

Several processes or machines (NCCL on GPUs, Gloo on CPU)::

    torchrun --nnodes 1 --nproc_per_node 8 -m vitpose.cli train coco/vitpose_b_coco_256x192 \\
        --data-root /data --set model.pretrained=mae_pretrain_vit_base.pth

``data.batch_size`` is per process. The work dir (default ``work_dirs/<config name>``) gets
``config.yaml``, ``log.jsonl``, ``latest.pth``, ``best.pth`` and ``epoch_{n}.pth``; ``--resume``
continues a stopped run exactly (``--resume`` alone picks ``latest.pth`` of the work dir).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from .. import distributed
from ..errors import ConfigError
from ..training.config import find_config, load_config

log = logging.getLogger("vitpose.train")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="packaged config name (e.g. coco/vitpose_b_coco_256x192, "
                                   "debug/tiny_coco) or a YAML file")
    p.add_argument("--set", dest="overrides", metavar="KEY=VALUE", nargs="+", action="extend",
                   default=[], help="config overrides, e.g. --set optim.lr=1e-4 "
                                    "schedule.epochs=50 (repeatable)")
    p.add_argument("--data-root", help="folder the dataset paths are relative to (data.root)")
    p.add_argument("--work-dir", help="output folder (default: runtime.work_dir, else "
                                      "work_dirs/<config name>)")
    p.add_argument("--resume", nargs="?", const="auto", metavar="PATH",
                   help="training checkpoint to continue from; without PATH, latest.pth of the "
                        "work dir if there is one")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda:LOCAL_RANK if available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _work_dir(args: argparse.Namespace, configured: str | None) -> Path:
    if args.work_dir:
        return Path(args.work_dir)
    if configured:
        return Path(configured)
    return Path("work_dirs") / find_config(args.config).stem


def run(args: argparse.Namespace) -> int:
    from ..training.train import fit

    overrides = list(args.overrides)
    if args.data_root:
        # JSON quoting is valid YAML: any path survives the override parser.
        overrides.insert(0, f"data.root={json.dumps(str(args.data_root))}")
    cfg = load_config(args.config, overrides)
    work_dir = _work_dir(args, cfg.runtime.work_dir)
    resume = args.resume
    if resume == "auto":
        latest = work_dir / "latest.pth"
        resume = latest if latest.is_file() else None
        if resume is None:
            log.info("no %s yet: starting from scratch", latest)
    try:
        created = not distributed.is_enabled() and distributed.init_distributed(
            backend=distributed.backend_for(args.device))
    except ValueError as exc:  # a half-set torchrun environment
        raise ConfigError(str(exc)) from None
    main_process = distributed.is_main_process()
    try:
        if not main_process:
            logging.getLogger("vitpose").setLevel(logging.WARNING)
        summary = fit(cfg, work_dir, resume=resume, show_progress=not args.no_progress,
                      device=args.device)
        # every rank done before any tears Gloo down: a rank that still has traffic in flight
        # can otherwise abort at exit ("terminate called without an active exception")
        distributed.barrier()
    finally:
        if created:
            distributed.destroy_distributed()
    if main_process:
        best = summary["best"]
        best_text = (f", best {best['metric']} {best['value']:.4f} (epoch {best['epoch']})"
                     if best else "")
        print(f"trained to epoch {summary['epoch']} ({summary['iteration']} iterations)"
              f"{best_text}; checkpoints in {summary['work_dir']}")
    return 0
