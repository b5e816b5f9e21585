"""The most a prefetch thread in `PoseEstimator.predict_many` could win: the time
`predict_many` spends outside the engine call (reading, cropping, flip, heatmap decoding,
rescoring), per pass over the COCO sample images with the paper's detections.

    python scripts/nonmodel_share.py [--data DATA_DIR] vitpose-s-simple [vitpose-b-simple ...]
"""

import argparse
import json
import sys
import time
from collections import defaultdict

import numpy as np
import torch

import vitpose
from vitpose.inference.engines import build_engine
from vitpose.inference.pipeline import PoseEstimator, TestSettings


class Timed:
    """An engine whose calls are timed."""

    def __init__(self, engine):
        self.engine, self.seconds = engine, 0.0

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def __call__(self, x):
        t0 = time.perf_counter()
        y = self.engine(x)
        self.seconds += time.perf_counter() - t0
        return y


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", help="variants, e.g. vitpose-s-simple")
    p.add_argument("--data", default="../shared/data/coco", help="COCO sample folder")
    args = p.parse_args(argv)
    root = args.data
    with open(f"{root}/test_coco.json") as fh:
        files = {im["id"]: im["file_name"] for im in json.load(fh)["images"]}
    dets = defaultdict(list)
    with open(f"{root}/test_coco_det_AP_H_56.json") as fh:
        for d in json.load(fh):
            if d["image_id"] in files:
                dets[d["image_id"]].append(d["bbox"] + [d["score"]])
    items = [(f"{root}/{files[i]}", np.array(b, np.float32), i) for i, b in dets.items()]
    print("images", len(items), "boxes", sum(len(b) for _, b, _ in items))
    for name in args.models:
        model = vitpose.build_model(name).eval()
        for dt in (torch.float32, torch.bfloat16):
            timed = Timed(build_engine("openvino", model, "coco", dt, "cpu"))
            settings = TestSettings.for_dataset("coco", flip_test=True)
            est = PoseEstimator(model, dataset="coco", settings=settings, batch_size=16,
                                engine=timed.engine)
            est.engine = timed
            list(est.predict_many(items))  # warm-up
            for _ in range(3):
                timed.seconds = 0.0
                t0 = time.perf_counter()
                list(est.predict_many(items))
                total = time.perf_counter() - t0
                out = total - timed.seconds
                print(f"{name} openvino/{dt}: total {total:.2f} s, engine {timed.seconds:.2f} s, "
                      f"outside the engine {out:.3f} s = {100 * out / total:.2f}%", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
