"""Per-box keypoint sets (ViTPose+): detector classes route each box to its head and expert, all
crops in one batched backbone call."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import randomize

import vitpose
from vitpose.errors import InputError
from vitpose.inference.builder import AUTO_CLASSES, BoxSource, build_estimator, routes_for
from vitpose.inference.pipeline import PoseEstimator, RoutedPoseEstimator


@pytest.fixture(scope="module")
def plus():
    return randomize(vitpose.build_model("vitpose-plus-s", embed_dim=32, depth=2, num_heads=2))


def test_routes_for_heads():
    heads = ["coco", "aic", "mpii", "ap10k", "apt36k", "wholebody"]
    r = routes_for(heads)
    assert r["person"] == "coco" and r["dog"] == "ap10k" and r["giraffe"] == "ap10k"
    assert "bird" not in r  # no bird keypoint set
    assert routes_for(heads, wholebody=True)["person"] == "wholebody"
    assert routes_for(["coco", "apt36k"])["horse"] == "apt36k"
    assert routes_for(["coco"]) == {"person": "coco"}
    with pytest.raises(InputError, match="no whole-body head"):
        routes_for(["coco", "ap10k"], wholebody=True)
    assert set(AUTO_CLASSES) == set(r)


def _image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)


BOXES = np.array([[10, 20, 80, 160, 0.9],     # person
                  [150, 100, 120, 90, 0.8],   # dog
                  [100, 50, 40, 40, 0.7],     # bicycle: no route, dropped
                  [200, 10, 60, 80, 0.6]],    # horse
                 np.float32)
LABELS = ["person", "dog", "bicycle", "horse"]


def test_classes_pick_head_and_expert_in_one_batched_call(plus, monkeypatch):
    routed = RoutedPoseEstimator(plus, routes_for([h.dataset for h in plus.cfg.heads]),
                                 batch_size=8)
    calls = []
    inner = plus.forward_features

    def counting(x, idx=None):
        calls.append((len(x), idx))
        return inner(x, idx)

    monkeypatch.setattr(plus, "forward_features", counting)
    image = _image()
    result = routed(image, BOXES, image_id=7, labels=LABELS)
    assert len(calls) == 1 and calls[0][0] == 6  # 3 crops and their mirrors, one call
    assert isinstance(calls[0][1], torch.Tensor)  # a per-sample dataset index
    monkeypatch.setattr(plus, "forward_features", inner)
    got = {i.category: i for i in result.instances}
    assert set(got) == {"person", "dog", "horse"}
    assert got["person"].dataset == "coco" and got["dog"].dataset == "ap10k"
    # the same numbers as a one-dataset estimator on each box: its head AND its expert
    for category, dataset, row in [("person", "coco", 0), ("dog", "ap10k", 1),
                                   ("horse", "ap10k", 3)]:
        single = PoseEstimator(plus, dataset=dataset)(image, BOXES[row:row + 1])
        np.testing.assert_allclose(got[category].keypoints, single.instances[0].keypoints,
                                   atol=2e-3)
        assert got[category].score == pytest.approx(single.instances[0].score, abs=1e-4)
    # the other expert gives other keypoints, so the routing is what makes them equal
    wrong = PoseEstimator(plus, dataset="coco")(image, BOXES[1:2])
    assert np.abs(wrong.instances[0].keypoints[:, :2]
                  - got["dog"].keypoints[:, :2]).max() > 0.5
    entries = result.to_coco()
    assert {(e["category"], e["dataset"]) for e in entries} == {
        ("person", "coco"), ("dog", "ap10k"), ("horse", "ap10k")}
    drawn = routed.draw(image, result)
    assert drawn.shape == image.shape and not np.array_equal(drawn, image)


def test_wholebody_persons_and_unlabelled_boxes(plus):
    routed = RoutedPoseEstimator(plus, routes_for([h.dataset for h in plus.cfg.heads],
                                                  wholebody=True))
    image = _image()
    r = routed(image, BOXES, labels=LABELS)
    k = {i.category: i.keypoints.shape[0] for i in r.instances}
    assert k == {"person": 133, "dog": 17, "horse": 17}
    # boxes without classes (HOG, files) are persons
    r = routed(image, BOXES[:2])
    assert [i.dataset for i in r.instances] == ["wholebody", "wholebody"]
    # several images batched across, results in order
    out = list(routed.with_settings(flip_test=False).predict_many(
        [(image, BOXES, 0, LABELS), (image, None, 1, None), (image, BOXES[:0], 2, [])]))
    assert [len(o.instances) for o in out] == [3, 1, 0]


def test_build_estimator_auto(tmp_path, plus):
    path = tmp_path / "plus.pt"
    vitpose.save_checkpoint(plus, path)
    est = build_estimator(str(path), dataset="auto", dtype="float32")
    assert isinstance(est, RoutedPoseEstimator) and est.routes["cat"] == "ap10k"
    simple = tmp_path / "simple.pt"
    vitpose.save_checkpoint(vitpose.build_model("vitpose-b-simple", embed_dim=32, depth=2,
                                                num_heads=2), simple)
    one = build_estimator(str(simple), dataset="auto", dtype="float32")
    assert isinstance(one, PoseEstimator) and one.dataset == "coco"
    with pytest.raises(InputError, match="whole-body"):
        build_estimator(str(simple), dataset="auto", wholebody=True, dtype="float32")


def test_box_source_keeps_labels_and_filters_by_score():
    class Fake:
        def detect_labeled(self, image):
            return BOXES.copy(), list(LABELS)

        def __call__(self, image):
            return BOXES.copy()

    src = BoxSource(detector="whole-image", det_thr=0.65)
    src.detector = Fake()
    boxes, labels = src.labeled(None, _image())
    assert labels == ["person", "dog", "bicycle"] and len(boxes) == 3


def test_predict_dataset_auto_cli(tmp_path, plus, data_dir, monkeypatch):
    from vitpose.cli import predict as predict_cli
    from vitpose.cli.main import build_parser, main

    path = tmp_path / "plus.pt"
    vitpose.save_checkpoint(plus, path)
    args = build_parser().parse_args(["predict", "x.jpg", "--dataset", "auto"])
    assert args.detector == "auto"  # the learned detector is the default
    seen = {}

    class Src(BoxSource):
        def __init__(self, **kw):
            seen.update(kw)
            super().__init__(**{**kw, "detector": "whole-image"})

    monkeypatch.setattr(predict_cli, "BoxSource", Src)
    predict_cli.box_source(args)
    assert tuple(seen["classes"]) == AUTO_CLASSES and seen["strict_classes"] is False
    args = build_parser().parse_args(["predict", "x.jpg", "--det-classes", "person, dog"])
    predict_cli.box_source(args)
    assert seen["classes"] == ["person", "dog"] and seen["strict_classes"] is True
    image = data_dir / "coco" / "000000000785.jpg"
    out = tmp_path / "out"
    rc = main(["predict", str(image), "--model", str(path), "--dataset", "auto", "--detector",
               "whole-image", "--out-dir", str(out), "--no-draw", "--dtype", "float32"])
    assert rc == 0
    import json
    entries = json.loads((out / "results.json").read_text())
    assert [e["dataset"] for e in entries] == ["coco"]


def test_hog_cannot_find_the_classes_asked_for():
    with pytest.raises(InputError, match="HOG detector finds people only, not dog"):
        BoxSource(detector="hog", classes=["person", "dog"], strict_classes=True)
    BoxSource(detector="hog", classes=list(AUTO_CLASSES))  # dataset=auto: persons only, fine
