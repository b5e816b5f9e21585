"""Pose results for the output-format tests: the COCO sample's ground truth as predictions
(real images, real poses) and synthetic tracked videos."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vitpose.inference.pipeline import PoseInstance, PoseResult


def instance(keypoints: np.ndarray, box_xywh, track_id=None, score=0.9) -> PoseInstance:
    box = np.asarray(box_xywh, np.float32)
    return PoseInstance(box_xywh=box, box_score=1.0, keypoints=np.asarray(keypoints, np.float32),
                        score=float(score), center=box[:2] + box[2:] / 2,
                        scale=box[2:] / 200.0, track_id=track_id)


def results_from_coco(path: Path, dataset: str = "coco", field: str = "keypoints",
                      extra: tuple[str, ...] = ()) -> list[PoseResult]:
    """The annotations of a COCO file as results: labelled keypoints score 0.95 - 0.02 j,
    unlabelled ones 0.05."""
    data = json.loads(path.read_text())
    out = []
    for image in data["images"]:
        insts = []
        for ann in data["annotations"]:
            if ann["image_id"] != image["id"] or ann.get("iscrowd"):
                continue
            raw = list(ann[field]) + [v for e in extra for v in ann[e]]
            kp = np.array(raw, np.float64).reshape(-1, 3)
            if (kp[:, 2] > 0).sum() == 0:
                continue
            scores = np.where(kp[:, 2] > 0, 0.95 - 0.02 * (len(insts) % 5), 0.05)
            insts.append(instance(np.concatenate([kp[:, :2], scores[:, None]], 1), ann["bbox"]))
        out.append(PoseResult(source=str(path.parent / image["file_name"]), image_id=image["id"],
                              image_hw=(image["height"], image["width"]), dataset=dataset,
                              instances=insts))
    return out


@pytest.fixture()
def coco_results(data_dir: Path) -> list[PoseResult]:
    return results_from_coco(data_dir / "coco" / "test_coco.json")


@pytest.fixture()
def wholebody_results(data_dir: Path) -> list[PoseResult]:
    return results_from_coco(data_dir / "coco" / "test_coco_wholebody.json", "wholebody",
                             extra=("foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts"))


def walking_track(frames: int = 90, k: int = 17, seed: int = 0, noise: float = 2.0,
                  missing: tuple[int, ...] = ()) -> tuple[np.ndarray, list[PoseResult]]:
    """A smooth clean track ``(T, K, 2)`` and the frames of a video with it jittered (Gaussian
    noise of ``noise`` px), track id 7, frames in ``missing`` without the person."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames, dtype=np.float64)
    clean = np.zeros((frames, k, 2))
    for j in range(k):
        clean[:, j, 0] = 200 + 2.0 * t + 25 * np.sin(2 * np.pi * t / 40 + 0.4 * j) + 4 * j
        clean[:, j, 1] = 250 + 20 * np.cos(2 * np.pi * t / 55 + j) + 6 * j
    noisy = clean + rng.normal(0.0, noise, clean.shape)
    results = []
    for i in range(frames):
        kp = np.concatenate([noisy[i], np.full((k, 1), 0.9)], 1)
        insts = [] if i in missing else [instance(kp, [150 + 2 * i, 200, 160, 200], track_id=7)]
        results.append(PoseResult(source="walk.mp4", image_id=i, image_hw=(480, 640),
                                  dataset="coco", instances=insts))
    return clean, results


@pytest.fixture()
def make_track():
    return walking_track
