"""`vitpose evaluate --dataset NAME --ann GT.json --results RESULTS.json`: score a results file.

For users who run inference elsewhere. Prints the metrics as JSON (and writes them with --out).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..engine.build import resolve_dataset_meta
from ..metrics import evaluate


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True,
                   help="coco, aic, mpii, crowdpose, ochuman, ap10k, apt36k, wholebody, "
                        "interhand2d, or a custom keypoint-metadata file (.yaml/.json)")
    p.add_argument("--ann", required=True, help="ground-truth annotation file")
    p.add_argument("--results", required=True, help="predictions (COCO results format; "
                                                    "MPII/InterHand: ann_id + keypoints)")
    p.add_argument("--head-boxes", default=None, help="MPII: head boxes (from mpii_gt_val.mat)")
    p.add_argument("--camera", default=None, help="InterHand2.6M: camera file")
    p.add_argument("--joints-3d", default=None, help="InterHand2.6M: 3D joint file")
    p.add_argument("--out", default=None, help="also write the metrics JSON here")


def run(args: argparse.Namespace) -> int:
    metrics = evaluate(resolve_dataset_meta(args.dataset), args.ann, args.results,
                       head_boxes=args.head_boxes, camera_path=args.camera,
                       joint_3d_path=args.joints_3d)
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0
