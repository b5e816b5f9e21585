"""`vitpose test CONFIG_OR_VARIANT`: evaluate a model on benchmark splits (``dist_test.sh``).

Runs under ``torchrun --nproc_per_node N`` too (records sharded, results gathered). Prints a
metrics table and writes ``metrics.json`` (the metrics of each split, and under ``"engine"``
what ran each: `Engine.describe()`) plus the raw results into the work dir.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import torch

from .. import distributed as dist
from ..checkpoints import load_local_weights
from ..errors import ConfigError
from ..fileio import atomic_write_json
from ..hub import resolve_weights
from ..inference.engines.auto import BACKENDS
from ..inference.engines.precision import DTYPE_CHOICES
from ..models.vitpose import canonical_name
from ..training.build import build_model_from_config
from ..training.config import ExperimentConfig, find_config, load_config
from ..training.evaluate import check_val_files, evaluate_model, format_metrics


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="config name or file (see src/vitpose/configs), or a variant "
                                  "name (its COCO val config)")
    p.add_argument("--weights", default=None,
                   help="checkpoint path or hub id (default: model.weights of the config, else "
                        "the variant's released weights)")
    p.add_argument("--data-root", default=None, help="folder holding the datasets (data.root)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set test.flip_test=false (repeatable)")
    p.add_argument("--work-dir", default=None, help="output folder (default work_dirs/test_<cfg>)")
    p.add_argument("--device", default=None, help="cpu or cuda[:i] (default: cuda if available)")
    p.add_argument("--dtype", default=None, choices=DTYPE_CHOICES,
                   help="compute dtype (test.dtype): float32 = exact, the official numbers; "
                        "auto = bfloat16 on CPUs with AVX512-BF16/AMX and recent GPUs, float16 "
                        "on older GPUs (default: the config's, float32)")
    p.add_argument("--backend", default=None, choices=BACKENDS,
                   help="inference engine (test.backend): torch = eager PyTorch, with the "
                        "default test.dtype=float32 the official numbers exactly; auto = the "
                        "fastest engine of this machine that passes the accuracy gate, as in "
                        "predict; onnxruntime (float32) needs vitpose[onnx], openvino "
                        "(float32, bfloat16) vitpose[openvino] (default: the config's, torch; "
                        "see docs/PERFORMANCE.md)")


def resolve_config(name: str, overrides: list[str]) -> ExperimentConfig:
    """A config by name/path; a bare variant name means its COCO val config."""
    try:
        find_config(name)
    except ConfigError:
        variant = canonical_name(name)
        if variant is None or variant.startswith("vitpose-plus") or "-multi" in variant:
            raise
        size_simple = variant.removeprefix("vitpose-").replace("-", "_")
        name = f"coco/vitpose_{size_simple}_coco_256x192"
    return load_config(name, overrides)


def run(args: argparse.Namespace) -> int:
    overrides = list(args.set)
    if args.data_root:
        overrides.append(f"data.root={args.data_root}")
    if args.dtype:
        overrides.append(f"test.dtype={args.dtype}")
    if args.backend:
        overrides.append(f"test.backend={args.backend}")
    cfg = resolve_config(args.config, overrides)
    # the reported splits (data.test) when they are not the validation ones
    section = "val" if cfg.data.test is None else "test"
    if not getattr(cfg.data, section):
        raise ConfigError(f"config '{args.config}' has no split to test (data.{section})")
    check_val_files(cfg, section=section)  # cheap checks first: no download for a doomed run
    if section == "test":
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, val=cfg.data.test))
    weights = resolve_weights(args.weights or cfg.model.weights or cfg.model.variant,
                              prefer_original=True)
    dist.init_distributed(backend=dist.backend_for(args.device))
    device = args.device or (f"cuda:{dist.local_device_index()}" if torch.cuda.is_available()
                             else "cpu")
    model = build_model_from_config(cfg, with_weights=False)
    load_local_weights(model, weights)
    work_dir = Path(args.work_dir or f"work_dirs/test_{Path(args.config).stem}")
    engines: dict[str, dict[str, Any]] = {}
    # prepare: the torch engine casts the weights once to test.dtype, as in predict
    metrics = evaluate_model(model, cfg, work_dir=work_dir, device=device, prepare=True,
                             engines=engines)
    if dist.is_main_process():
        work_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(work_dir / "metrics.json", {**metrics, "engine": engines}, indent=2)
        print(format_metrics(metrics))
        for name, facts in engines.items():
            print(f"{name} engine: {facts['engine']} on {facts['device']}")
        print(f"metrics and results written to {work_dir}")
    dist.barrier()  # every rank done before any tears the process group down
    dist.destroy_distributed()
    return 0
