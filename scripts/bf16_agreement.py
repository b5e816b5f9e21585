"""Does the bf16 fast path keep the heatmap arg-max when heatmaps have real peaks?

With random weights (all `vitpose bench` can use offline) heatmaps are nearly flat noise, so
their arg-max flips under any rounding and the bench's "argmax" column says little. This
script gives ViTPose-B simple (random backbone, the bench's seed) a head that produces peaked
heatmaps: the head's final convolution is fitted (Adam, MSE) to the UDP Gaussian targets of the
ground-truth people of the COCO sample images, on fp32 features of the random backbone. It then
compares our fp32 path with the bf16 path (`optimize_for_inference` + autocast, the path of
`vitpose predict --dtype auto`) on the ground-truth crops and on all detection crops, with the
flip test: relative L2 of the heatmaps, arg-max agreement, keypoint distance after decoding.

    python scripts/bf16_agreement.py [--data ../shared/data/coco] [--steps 300]
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

import vitpose
from vitpose.codecs.udp import UDPHeatmap
from vitpose.export import optimize_for_inference, rel_l2
from vitpose.inference.detectors import load_coco_detections
from vitpose.inference.io import read_image
from vitpose.inference.pipeline import PoseEstimator, TestSettings
from vitpose.transforms import affine_joints, crop_matrix


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/coco"))
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    data = Path(args.data)
    torch.manual_seed(args.seed)
    model = vitpose.build_model("vitpose-b-simple").eval()  # as `vitpose bench` builds it
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

    fast = optimize_for_inference(copy.deepcopy(model), torch.bfloat16)
    est16 = PoseEstimator(fast, settings=est32.settings, dtype=torch.bfloat16)

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

    report = {}
    for label, x in (("ground-truth crops (fitted)", x_gt), ("detection crops", x_det)):
        a = est32.forward_heatmaps(x)
        b = est16.forward_heatmaps(x)
        am_a, am_b = a.flatten(2).argmax(-1), b.flatten(2).argmax(-1)
        peak = a.flatten(2).amax(-1)
        report[label] = {"crops": len(x), "rel_l2": rel_l2(b, a),
                         "argmax_same": (am_a == am_b).float().mean().item(),
                         "median_peak": peak.median().item()}
        if x is x_det:
            ka, _ = est32.decode(a, c_det, s_det) if hasattr(est32, "decode") else \
                est32.predict_crops(x, c_det, s_det)
            kb, _ = est16.decode(b, c_det, s_det) if hasattr(est16, "decode") else \
                est16.predict_crops(x, c_det, s_det)
            d = np.linalg.norm(ka - kb, axis=-1)
            report[label]["keypoint_px_median"] = float(np.median(d))
            report[label]["keypoint_px_p99"] = float(np.percentile(d, 99))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
