"""Reference OKS metrics computed by the official evaluator, xtcocotools, for the metric tests.

The official ViTPose / mmpose 0.x evaluation calls xtcocotools' ``COCOeval`` (ref §4). This
script builds evaluation cases from the sample data in ``../shared/data`` (ground truth,
sometimes edited, and perturbed prediction sets), scores each with xtcocotools exactly as the
official dataset classes call it, and writes ``tests/data/xtcocotools_references.json``. The
tests (``tests/test_metrics_reference.py``) read that file and require ``vitpose evaluate`` to
give the same numbers to 1e-6; they never import xtcocotools.

xtcocotools is not a dependency of vitpose and does not import with numpy 2, so run this script
in a separate virtual environment:

.. code-block:: bash

    python3 -m venv /tmp/xtc && /tmp/xtc/bin/pip install "numpy<2" xtcocotools==1.14.3
    /tmp/xtc/bin/python tests/tools/xtcocotools_references.py            # from the repository root

The cases are generated with Python's ``random`` (seeded), so the same inputs come out on any
machine; the json stores the inputs (ground truth without segmentation polygons, and the
results) next to the expected numbers, so the tests do not regenerate anything.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import random
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "tests" / "data" / "xtcocotools_references.json"

COCO_SIGMAS = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
               0.107, 0.107, 0.087, 0.087, 0.089, 0.089]
AIC_SIGMAS = [0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144,
              0.03909642, 0.03686941, 0.01981803, 0.03843971, 0.03412318, 0.02415081,
              0.01291456, 0.01236173]
CROWDPOSE_SIGMAS = [0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087,
                    0.089, 0.089, 0.079, 0.079]
AP10K_SIGMAS = [0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.072, 0.062, 0.079, 0.072, 0.062,
                0.107, 0.087, 0.089, 0.107, 0.087, 0.089]
FOOT = [0.068, 0.066, 0.066, 0.092, 0.094, 0.094]
FACE = [0.042, 0.043, 0.044, 0.043, 0.040, 0.035, 0.031, 0.025, 0.020, 0.023, 0.029, 0.032,
        0.037, 0.038, 0.043, 0.041, 0.045, 0.013, 0.012, 0.011, 0.011, 0.012, 0.012, 0.011,
        0.011, 0.013, 0.015, 0.009, 0.007, 0.007, 0.007, 0.012, 0.009, 0.008, 0.016, 0.010,
        0.017, 0.011, 0.009, 0.011, 0.009, 0.007, 0.013, 0.008, 0.011, 0.012, 0.010, 0.034,
        0.008, 0.008, 0.009, 0.008, 0.008, 0.007, 0.010, 0.008, 0.009, 0.009, 0.009, 0.007,
        0.007, 0.008, 0.011, 0.008, 0.008, 0.008, 0.010, 0.008]
HAND = [0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018, 0.024, 0.022,
        0.026, 0.017, 0.021, 0.021, 0.032, 0.020, 0.019, 0.022, 0.031]
WHOLEBODY_SIGMAS = COCO_SIGMAS + FOOT + FACE + HAND + HAND
WB_KEYS = ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")
WB_PARTS = ("body", "foot", "face", "lefthand", "righthand", "wholebody")

STAT_NAMES = ("AP", "AP50", "AP75", "AP (M)", "AP (L)", "AR", "AR50", "AR75", "AR (M)", "AR (L)")
CROWD_NAMES = ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP (E)", "AP (M)", "AP (H)")

# dataset name -> (sample file, sigmas, official iouType, use_area)
DATASETS = {
    "coco": ("coco/test_coco.json", COCO_SIGMAS, "keypoints", True),
    "aic": ("aic/test_aic.json", AIC_SIGMAS, "keypoints", False),
    "crowdpose": ("crowdpose/test_crowdpose.json", CROWDPOSE_SIGMAS, "keypoints_crowd", False),
    "ochuman": ("ochuman/test_ochuman.json", COCO_SIGMAS, "keypoints", True),
    "ap10k": ("ap10k/test_ap10k.json", AP10K_SIGMAS, "keypoints", True),
    # APT-36K uses the AP-10K dataset class and keypoint layout; the AP-10K sample stands in
    "apt36k": ("ap10k/test_ap10k.json", AP10K_SIGMAS, "keypoints", True),
    "wholebody": ("coco/test_coco_wholebody.json", WHOLEBODY_SIGMAS, "wholebody", True),
}


def _load_gt(rel: str) -> dict:
    gt = json.loads((DATA / rel).read_text())
    # segmentation polygons, urls and licences play no part in keypoint evaluation
    for ann in gt["annotations"]:
        ann.pop("segmentation", None)
    for img in gt["images"]:
        for key in ("coco_url", "flickr_url", "url", "license", "date_captured"):
            img.pop(key, None)
        for key in ("face_box", "lefthand_box", "righthand_box", "face_valid",
                    "lefthand_valid", "righthand_valid", "foot_valid"):
            ann.pop(key, None)
    gt["categories"] = [{"id": c["id"], "name": c["name"]} for c in gt["categories"]]
    gt.pop("licenses", None)
    gt.pop("info", None)
    return gt


def _keys(name: str) -> tuple[str, ...]:
    return WB_KEYS if name == "wholebody" else ("keypoints",)


def _points(ann: dict, keys) -> list[list[float]]:
    flat = [v for k in keys for v in ann[k]]
    return [flat[i:i + 3] for i in range(0, len(flat), 3)]


def _to_result(name: str, image_id: int, cat: int, pts, score: float, rng=None,
               with_part_scores: bool = False) -> dict:
    flat = [round(v, 1 if i % 3 < 2 else 3) for p in pts for i, v in enumerate(p)]
    res = {"image_id": image_id, "category_id": cat, "score": round(score, 6)}
    if name != "wholebody":
        res["keypoints"] = flat
        return res
    cuts = [0, 17, 23, 91, 112, 133]
    for key, lo, hi in zip(WB_KEYS, cuts[:-1], cuts[1:]):
        res[key] = flat[3 * lo: 3 * hi]
    if with_part_scores:
        for part in WB_PARTS[1:]:
            res[f"{part}_score"] = round(rng.uniform(0.05, 1.0), 6)
    return res


def perfect(name: str, gt: dict) -> list[dict]:
    out = []
    for ann in gt["annotations"]:
        pts = [[x, y, 1.0 if v > 0 else 0.0] for x, y, v in _points(ann, _keys(name))]
        out.append(_to_result(name, ann["image_id"], ann["category_id"], pts, 1.0))
    return out


def perturbed(name: str, gt: dict, seed: int, drop: float = 0.15, fp_rate: float = 0.3,
              noise: tuple[float, float] = (0.01, 0.12), part_scores: bool = False) -> list[dict]:
    """Noisy copies of the labelled instances (some dropped) plus shifted false positives."""
    rng = random.Random(seed)
    out = []
    for ann in gt["annotations"]:
        pts = _points(ann, _keys(name))
        if not any(v > 0 for _, _, v in pts) or rng.random() < drop:
            continue
        size = math.sqrt(ann["bbox"][2] * ann["bbox"][3])
        sd = rng.uniform(*noise) * size
        bx, by, bw, bh = ann["bbox"]
        # unlabelled joints (0, 0 in the file) are predicted somewhere in the box
        pts = [[x, y, v] if v > 0 else [bx + rng.uniform(0, bw), by + rng.uniform(0, bh), v]
               for x, y, v in pts]
        noisy = [[x + rng.gauss(0, sd), y + rng.gauss(0, sd), rng.uniform(0.2, 1.0)]
                 for x, y, _ in pts]
        out.append(_to_result(name, ann["image_id"], ann["category_id"], noisy,
                              rng.uniform(0.3, 1.0), rng, part_scores))
        if rng.random() < fp_rate:
            fp = [[x + 0.5 * size, y + 0.3 * size, s] for x, y, s in noisy]
            out.append(_to_result(name, ann["image_id"], ann["category_id"], fp,
                                  rng.uniform(0.0, 1.0), rng, part_scores))
    rng.shuffle(out)
    return out


def with_id_zero(gt: dict) -> dict:
    """The first annotation with labelled keypoints gets id 0 (lost by pycocotools)."""
    gt = copy.deepcopy(gt)
    for ann in gt["annotations"]:
        if ann.get("num_keypoints", 1) > 0 and max(ann["keypoints"]) > 0:
            ann["id"] = 0
            break
    return gt


def with_crowd_region(name: str, gt: dict) -> dict:
    """An iscrowd region (no keypoints) over the first image's first person box."""
    gt = copy.deepcopy(gt)
    first = gt["annotations"][0]
    x, y, w, h = first["bbox"]
    region = {key: [0] * len(first[key]) for key in _keys(name)}
    region.update({"id": 900001, "image_id": first["image_id"],
                   "category_id": first["category_id"], "iscrowd": 1, "num_keypoints": 0,
                   "bbox": [x + 0.1 * w, y + 0.05 * h, 0.9 * w, 0.9 * h],
                   "area": 0.6 * w * h})
    if "area" not in first:
        region.pop("area")
    gt["annotations"].append(region)
    return gt


def crowd_region_results(name: str, gt: dict, seed: int) -> list[dict]:
    """Perturbed results plus predictions inside the crowd region (matched to it, ignored)."""
    rng = random.Random(seed)
    out = perturbed(name, gt, seed)
    region = gt["annotations"][-1]
    x, y, w, h = region["bbox"]
    k = len(_points(region, _keys(name)))
    for _ in range(3):
        pts = [[x + rng.uniform(0, w), y + rng.uniform(0, h), rng.uniform(0.2, 1)]
               for _ in range(k)]
        out.append(_to_result(name, region["image_id"], region["category_id"], pts,
                              rng.uniform(0.2, 1.0), rng))
    return out


def with_head_neck_only(gt: dict) -> dict:
    """CrowdPose: a person labelled only at head_top and neck; the file's num_keypoints (which
    leaves out those two joints) is 0, so the official evaluation ignores the person."""
    gt = copy.deepcopy(gt)
    src = next(a for a in gt["annotations"] if a["keypoints"][3 * 12 + 2] > 0)
    kp = [0] * 42
    kp[36:42] = src["keypoints"][36:42]
    kp[36] += 40
    kp[39] += 40
    x, y, w, h = src["bbox"]
    gt["annotations"].append({"id": 900002, "image_id": src["image_id"], "category_id": 1,
                              "iscrowd": 0, "num_keypoints": 0, "keypoints": kp,
                              "bbox": [x + 40, y, 0.5 * w, 0.4 * h]})
    return gt


def head_neck_results(gt: dict, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = perturbed("crowdpose", gt, seed, drop=0.0, fp_rate=0.2)
    person = gt["annotations"][-1]
    pts = [[x + rng.gauss(0, 2), y + rng.gauss(0, 2), 0.9] for x, y, _ in
           _points(person, ("keypoints",))]
    for p in pts[:12]:  # unlabelled joints: somewhere around the head
        p[0], p[1] = pts[12][0] + rng.uniform(-30, 30), pts[12][1] + rng.uniform(0, 60)
    out.append(_to_result("crowdpose", person["image_id"], 1, pts, 0.95))
    return out


def with_crowd_levels(gt: dict, values) -> dict:
    gt = copy.deepcopy(gt)
    for img, value in zip(gt["images"], values):
        img["crowdIndex"] = value
    return gt


def with_boxes(results: list[dict], gt: dict) -> list[dict]:
    """Results carrying a 'bbox' (xtcocotools then takes the box area as the prediction area)."""
    out = []
    for res in results:
        kp = res["keypoints"]
        xs, ys = kp[0::3], kp[1::3]
        w, h = max(xs) - min(xs), max(ys) - min(ys)
        # loose boxes: some predictions change area range (medium/large) with the box area
        box = [min(xs) - w, min(ys) - h, 3 * w, 3 * h]
        out.append({**res, "bbox": [round(v, 2) for v in box]})
    return out


def cases():
    for name, (rel, _, _, _) in DATASETS.items():
        gt = _load_gt(rel)
        yield name, "perfect", gt, perfect(name, gt)
        # AIC's sigmas are about 4x smaller than COCO's: smaller noise keeps its AP informative
        small = 0.25 if name == "aic" else 1.0
        for seed in ((0,) if name == "wholebody" else (0, 1)):  # wholebody results are large
            yield name, f"noisy-{seed}", gt, perturbed(name, gt, seed + 10 * len(name),
                                                       noise=(0.01 * small, 0.12 * small),
                                                       part_scores=name == "wholebody")
        yield name, "false-positives", gt, perturbed(name, gt, 7, drop=0.3, fp_rate=1.0,
                                                     noise=(0.05 * small, 0.3 * small))
        if name == "wholebody":
            continue  # its results are large; the id-0 and crowd rules are shared code paths
        zero = with_id_zero(gt)
        yield name, "annotation-id-0", zero, perturbed(name, zero, 3, drop=0.0,
                                                       noise=(0.01 * small, 0.12 * small))
        crowd = with_crowd_region(name, gt)
        yield name, "crowd-region", crowd, crowd_region_results(name, crowd, 5)
        if name == "coco":
            yield name, "results-with-bbox", gt, with_boxes(perturbed(name, gt, 4, fp_rate=1.0),
                                                            gt)
            yield name, "empty-results", gt, []
        if name == "crowdpose":
            hn = with_head_neck_only(gt)
            yield name, "head-neck-only", hn, head_neck_results(hn, 6)
            levels = with_crowd_levels(hn, (0.1, 0.5))
            yield name, "head-neck-easy-medium", levels, head_neck_results(levels, 8)
            hard = with_crowd_levels(gt, (0.85, 0.95))
            yield name, "hard", hard, perturbed(name, hard, 9)


def _coco(gt: dict, folder: Path, tag: str):
    from xtcocotools.coco import COCO
    path = folder / f"{tag}.json"
    path.write_text(json.dumps(gt))
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def reference(name: str, gt: dict, results: list[dict], folder: Path, tag: str) -> dict:
    """The official numbers for one case (the calls of the mmpose 0.x dataset classes)."""
    import numpy as np
    from xtcocotools.cocoeval import COCOeval

    _, sigmas, iou_type, use_area = DATASETS[name]
    sigmas = np.array(sigmas)
    coco = _coco(gt, folder, tag)
    res_path = folder / f"{tag}_results.json"
    res_path.write_text(json.dumps(results))
    out = {}
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not results:
            # loadRes of an empty list builds no categories; the official code never sees one
            dt = coco.loadRes(str(res_path))
            dt.dataset["categories"] = copy.deepcopy(coco.dataset["categories"])
            dt.createIndex()
        else:
            dt = coco.loadRes(str(res_path))
        if iou_type == "wholebody":
            cuts = np.cumsum([0, 17, 6, 68, 21, 21])
            for part, lo, hi in zip(WB_PARTS[:-1], cuts[:-1], cuts[1:]):
                ev = COCOeval(coco, dt, f"keypoints_{part}", sigmas[lo:hi], use_area=True)
                ev.params.useSegm = None
                ev.evaluate(), ev.accumulate(), ev.summarize()
                out.update({f"{part} {k}": float(v) for k, v in zip(STAT_NAMES, ev.stats)})
            ev = COCOeval(coco, dt, "keypoints_wholebody", sigmas, use_area=True)
            ev.params.useSegm = None
            ev.evaluate(), ev.accumulate(), ev.summarize()
            out.update({f"wholebody {k}": float(v) for k, v in zip(STAT_NAMES, ev.stats)})
            out.update({k: float(v) for k, v in zip(STAT_NAMES, ev.stats)})
        else:
            ev = COCOeval(coco, dt, iou_type, sigmas, use_area=use_area)
            ev.params.useSegm = None
            ev.evaluate(), ev.accumulate(), ev.summarize()
            names = CROWD_NAMES if iou_type == "keypoints_crowd" else STAT_NAMES
            out.update({k: float(v) for k, v in zip(names, ev.stats)})
    return out


def main() -> int:
    import argparse
    argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=f"writes {OUT.relative_to(ROOT)}; run it with a numpy<2 venv that has "
               "xtcocotools==1.14.3 (see the module docstring)").parse_args()
    import xtcocotools
    refs = {"generator": "tests/tools/xtcocotools_references.py",
            "xtcocotools": getattr(xtcocotools, "__version__", "1.14.3"),
            "ground_truths": {}, "cases": []}
    gt_keys: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for i, (name, case, gt, results) in enumerate(cases()):
            text = json.dumps(gt, sort_keys=True)
            key = gt_keys.get(text)
            if key is None:
                key = gt_keys[text] = f"{name}:{case}"
                refs["ground_truths"][key] = gt
            expected = reference(name, gt, copy.deepcopy(results), folder, f"case{i}")
            refs["cases"].append({"dataset": name, "case": case, "gt": key,
                                  "results": results, "expected": expected})
            print(f"{name:10s} {case:24s} AP {expected['AP']:.6f}", file=sys.stderr)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(refs, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KiB, {len(refs['cases'])} cases)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
