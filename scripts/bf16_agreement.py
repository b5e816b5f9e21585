"""Do the fast paths (every engine and precision) keep the heatmap arg-max when heatmaps have
real peaks?

With random weights (all `vitpose bench` can use offline) heatmaps are nearly flat noise, so
their arg-max flips under any rounding and the bench's "argmax" column says little. This
script compares our fp32 path with each engine of `vitpose.inference.engines` (default: torch
bf16, the `optimize_for_inference` + autocast path; OpenVINO bf16; and the exact ONNX Runtime
and OpenVINO fp32 engines, where installed) on the ground-truth crops and on all detection crops
of the COCO sample images, with the flip test: relative L2 of the heatmaps, arg-max
agreement (all keypoints, and keypoints whose fp32 peak is >= 0.3), keypoint distance after
decoding. The model is either

* ``--weights PATH``: trained weights (released ones, or a model trained with `vitpose train`;
  docs/PERFORMANCE.md trains ViTPose-B on the sample images for this), or
* by default ViTPose-B simple with a random backbone (the bench's seed) whose head's final
  convolution is fitted (Adam, MSE) to the UDP Gaussian targets of the ground-truth people,
  on fp32 features: peaked but weak heatmaps.

    python scripts/bf16_agreement.py [--weights PATH] [--data ../shared/data/coco] [--steps 300]
        [--engines torch/bfloat16 openvino/bfloat16 ...] [--save fitted.pth]

``--save`` writes the model (with its fitted head) as a checkpoint, e.g. for
``vitpose bench --weights``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import vitpose
from vitpose.codecs.udp import UDPHeatmap
from vitpose.inference.detectors import load_coco_detections
from vitpose.inference.engines import available_backends, build_engine, rel_l2
from vitpose.inference.io import read_image
from vitpose.inference.pipeline import PoseEstimator, TestSettings
from vitpose.transforms import affine_joints, crop_matrix


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/coco"))
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", help="trained weights (path or hub id); no head fitting")
    p.add_argument("--model", default="vitpose-b-simple", help="variant (default: %(default)s)")
    p.add_argument("--json", help="also write the report here")
    p.add_argument("--engines", nargs="+", default=None, metavar="BACKEND/DTYPE",
                   help="engines to compare with our fp32 (default: torch/bfloat16, "
                        "openvino/bfloat16, onnxruntime/float32, openvino/float32, where "
                        "installed)")
    p.add_argument("--save", help="write the model (fitted head included) as a checkpoint")
    args = p.parse_args()
    data = Path(args.data)
    torch.manual_seed(args.seed)
    if args.weights:
        model = vitpose.load_model(args.model, weights=args.weights).eval()
    else:
        model = vitpose.build_model(args.model).eval()  # as `vitpose bench` builds it
    est32 = PoseEstimator(model, settings=TestSettings.for_dataset("coco", flip_test=True))

    # ground-truth crops and their UDP targets
    gt = json.loads((data / "test_coco.json").read_text())
    files = {im["id"]: im["file_name"] for im in gt["images"]}
    codec = UDPHeatmap()
    crops, targets, weights = [], [], []
    for ann in gt["annotations"]:
        if ann.get("num_keypoints", 0) == 0:
            continue
        image = read_image(data / files[ann["image_id"]])
        box = np.asarray([ann["bbox"]], np.float32)
        x, center, scale = est32.crops(image, box)
        kp = np.asarray(ann["keypoints"], np.float32).reshape(-1, 3)
        m = crop_matrix(center[0], scale[0], 0.0, est32.input_size_wh, True)
        joints = affine_joints(kp[:, :2], kp[:, 2] > 0, m, True)
        t, w = codec.encode(joints, (kp[:, 2] > 0).astype(np.float32))
        crops.append(x)
        targets.append(torch.from_numpy(t))
        weights.append(torch.from_numpy(w))
    x_gt = torch.cat(crops)
    target = torch.stack(targets)
    weight = torch.stack(weights)[..., None, None]

    if not args.weights:
        # fit the head's final conv on fixed fp32 features
        with torch.no_grad():
            feats = model.forward_features(x_gt)
        head = model.keypoint_head
        opt = torch.optim.Adam(head.parameters(), lr=args.lr)
        t0 = time.perf_counter()
        for step in range(args.steps):
            loss = (((head(feats) - target) ** 2) * weight).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 100 == 0 or step == args.steps - 1:
                print(f"step {step:4d}  loss {loss.item():.3e}  ({time.perf_counter() - t0:.0f} s)")
        model.eval()

    if args.save:
        vitpose.save_checkpoint(model, args.save)
    have = available_backends()
    wanted = args.engines or ["torch/bfloat16", "openvino/bfloat16", "onnxruntime/float32",
                              "openvino/float32"]
    estimators = {}
    for label in wanted:
        backend, dtype = label.split("/")
        if backend not in have:
            print(f"{label}: {backend} is not installed, skipped")
            continue
        engine = build_engine(backend, model, None, dtype)
        estimators[label] = PoseEstimator(model, settings=est32.settings, engine=engine)

    dets = load_coco_detections(data / "test_coco_det_AP_H_56.json", data / "test_coco.json")
    det_crops, centers, scales = [], [], []
    for name, boxes in dets.items():
        if len(boxes):
            x, c, s = est32.crops(read_image(data / name), boxes)
            det_crops.append(x)
            centers.append(c)
            scales.append(s)
    x_det = torch.cat(det_crops)
    c_det, s_det = np.concatenate(centers), np.concatenate(scales)

    report = {"weights": args.weights or "random backbone, fitted head", "model": args.model}
    refs = {"ground-truth crops": est32.forward_heatmaps(x_gt),
            "detection crops": est32.forward_heatmaps(x_det)}
    for engine_label, est16 in estimators.items():
        report[engine_label] = _compare(est32, est16, refs, x_gt, x_det, c_det, s_det)
        print(engine_label, json.dumps(report[engine_label]), flush=True)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


def _compare(est32, est16, refs, x_gt, x_det, c_det, s_det):
    out = {}
    for label, x, c, s in (("ground-truth crops", x_gt, None, None),
                           ("detection crops", x_det, c_det, s_det)):
        a = refs[label]
        b = est16.forward_heatmaps(x)
        am_a, am_b = a.flatten(2).argmax(-1), b.flatten(2).argmax(-1)
        peak = a.flatten(2).amax(-1)
        same = am_a == am_b
        confident = peak >= 0.3
        row = {"crops": len(x), "keypoints": same.numel(), "rel_l2": rel_l2(b, a),
               "argmax_same": same.float().mean().item(),
               "median_peak": peak.median().item(),
               "confident_keypoints": int(confident.sum()),
               "argmax_same_confident": same[confident].float().mean().item()
               if confident.any() else None}
        if c is not None:
            ka, _ = est32.decode(a, c, s)
            kb, _ = est16.decode(b, c, s)
            d = np.linalg.norm(ka - kb, axis=-1)
            row["keypoint_px_median"] = float(np.median(d))
            row["keypoint_px_p99"] = float(np.percentile(d, 99))
            row["keypoint_px_max"] = float(d.max())
        out[label] = row
    return out

if __name__ == "__main__":
    main()
