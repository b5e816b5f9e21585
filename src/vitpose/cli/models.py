"""`vitpose models`: the variant table and where each variant's weights come from."""

from __future__ import annotations

import argparse
import json

import torch

from ..hub import RELEASED_WEIGHTS
from ..models import VARIANTS, build_model


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    rows = []
    for name, cfg in sorted(VARIANTS.items()):
        with torch.device("meta"):
            params = sum(p.numel() for p in build_model(cfg).parameters())
        rel = RELEASED_WEIGHTS.get(name)
        source = "-" if rel is None else (rel.hf_repo or rel.original or "OneDrive (manual)")
        rows.append({"name": name, "params_M": round(params / 1e6, 2), "decoder": cfg.decoder,
                     "input_hw": list(cfg.img_size), "datasets": list(cfg.datasets),
                     "weights": source, "coco_ap": rel.coco_ap if rel else None})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'variant':28s} {'params':>8s}  {'decoder':8s} {'COCO AP':>7s}  weights")
    for r in rows:
        ap = f"{r['coco_ap']:.1f}" if r["coco_ap"] else "-"
        print(f"{r['name']:28s} {r['params_M']:7.1f}M  {r['decoder']:8s} {ap:>7s}  {r['weights']}")
    return 0
