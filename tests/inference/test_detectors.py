"""Tests for vitpose.inference.detectors: box files, sanitising, HOG and transformers detectors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from vitpose.errors import DownloadError, InputError
from vitpose.inference import detectors as det
from vitpose.inference.detectors import (
    HOGPersonDetector,
    WholeImageDetector,
    build_detector,
    decode_detr_outputs,
    find_boxes,
    load_box_mapping,
    load_coco_detections,
    load_image_ids,
    nms_boxes,
    registry,
    runners,
    sanitize_boxes,
    transformers_detector,
    whole_image_box,
)

HAS_HOG = hasattr(cv2, "HOGDescriptor")


def _iou_xywh(a: np.ndarray, b: np.ndarray) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


# ------------------------------------------------------------------ box helpers


def test_whole_image_box() -> None:
    b = whole_image_box((480, 640))
    assert b.dtype == np.float32 and b.tolist() == [[0, 0, 640, 480, 1]]
    assert WholeImageDetector()(np.zeros((10, 20, 3), np.uint8)).tolist() == [[0, 0, 20, 10, 1]]


def test_sanitize_boxes_clips_and_drops() -> None:
    boxes = np.array(
        [
            [10, 10, 50, 80, 0.9],  # fine
            [-20, 5, 50, 40, 0.8],  # clipped on the left
            [90, 90, 50, 50, 0.7],  # clipped right/bottom
            [0, 0, 0, 10, 0.9],  # zero width
            [5, 5, -3, 10, 0.9],  # negative width
            [np.nan, 1, 2, 3, 0.9],  # NaN
            [300, 300, 10, 10, 0.9],  # fully outside
            [10, 10, 20, 20, np.inf],  # infinite score
            [99.5, 10, 20, 20, 0.5],  # 0.5 px wide after clipping
        ],
        dtype=np.float64,
    )
    kept, warnings = sanitize_boxes(boxes, (100, 100), source="img.jpg")
    assert kept.dtype == np.float32 and kept.shape == (3, 5)
    np.testing.assert_allclose(kept[0], [10, 10, 50, 80, 0.9], rtol=1e-6)
    np.testing.assert_allclose(kept[1], [0, 5, 30, 40, 0.8], rtol=1e-6)
    np.testing.assert_allclose(kept[2], [90, 90, 10, 10, 0.7], rtol=1e-6)
    text = "\n".join(warnings)
    assert "img.jpg" in text
    assert "NaN" in text and "negative" in text and "outside" in text and "clipped 2" in text
    assert "smaller than" in text


def test_sanitize_boxes_accepts_four_columns_and_empty() -> None:
    kept, warnings = sanitize_boxes([[1, 2, 3, 4]], (10, 10))
    assert kept.tolist() == [[1, 2, 3, 4, 1]] and warnings == []
    empty, warnings = sanitize_boxes(np.zeros((0, 5)), (10, 10))
    assert empty.shape == (0, 5) and warnings == []
    with pytest.raises(InputError, match="shape"):
        sanitize_boxes(np.zeros((2, 3)), (10, 10))


def test_nms_keeps_best_of_overlapping() -> None:
    boxes = np.array([[0, 0, 10, 10, 0.5], [1, 1, 10, 10, 0.9], [50, 50, 10, 10, 0.3]])
    assert nms_boxes(boxes, 0.5).tolist() == [1, 2]
    assert nms_boxes(boxes, 0.99).tolist() == [1, 0, 2]
    assert nms_boxes(np.zeros((0, 5)), 0.5).shape == (0,)


# ------------------------------------------------------------------ detection files


def test_load_coco_detections_by_file_name(data_dir: Path) -> None:
    coco = data_dir / "coco"
    det_file, gt_file = coco / "test_coco_det_AP_H_56.json", coco / "test_coco.json"
    raw = json.loads(det_file.read_text())
    mapping = load_coco_detections(det_file, gt_file)
    names = {im["file_name"] for im in json.loads(gt_file.read_text())["images"]}
    assert set(mapping) == names
    total = sum(len(v) for v in mapping.values())
    assert total == sum(1 for d in raw if d.get("category_id", 1) == 1)
    for boxes in mapping.values():
        assert boxes.dtype == np.float32 and boxes.shape[1] == 5
        assert np.all(np.diff(boxes[:, 4]) <= 0)  # best first
    strict = load_coco_detections(det_file, gt_file, score_thr=0.5)
    assert 0 < sum(len(v) for v in strict.values()) < total
    by_id = load_coco_detections(det_file)
    assert all(isinstance(k, int) for k in by_id)
    found = find_boxes(by_id, coco / "000000000785.jpg")
    assert found is not None and len(found) == len(mapping["000000000785.jpg"])


def test_load_coco_detections_errors_name_file_and_entry(tmp_path: Path) -> None:
    p = tmp_path / "dets.json"
    p.write_text(json.dumps([{"image_id": 1, "bbox": [0, 0, 5, 5], "score": 0.9}, {"bbox": [1]}]))
    with pytest.raises(InputError, match=r"dets\.json entry 1"):
        load_coco_detections(p)
    p.write_text(json.dumps([{"image_id": 1, "bbox": [0, 0, "a", 5], "score": 0.9}]))
    with pytest.raises(InputError, match="entry 0"):
        load_coco_detections(p)
    p.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_coco_detections(p)
    with pytest.raises(InputError, match="not found"):
        load_coco_detections(tmp_path / "missing.json")


def test_load_coco_detections_category_filter(tmp_path: Path) -> None:
    p = tmp_path / "d.json"
    entries = [
        {"image_id": 3, "bbox": [0, 0, 5, 5], "score": 0.9, "category_id": 1},
        {"image_id": 3, "bbox": [0, 0, 6, 6], "score": 0.8, "category_id": 2},
    ]
    p.write_text(json.dumps(entries))
    assert len(load_coco_detections(p)[3]) == 1
    assert len(load_coco_detections(p, category_id=None)[3]) == 2


def test_load_box_mapping(tmp_path: Path) -> None:
    p = tmp_path / "boxes.json"
    p.write_text(json.dumps({"a.jpg": [[1, 2, 3, 4, 0.5], [5, 6, 7, 8]], "b.jpg": []}))
    m = load_box_mapping(p)
    assert m["a.jpg"].tolist() == [[1, 2, 3, 4, 0.5], [5, 6, 7, 8, 1.0]]
    assert m["b.jpg"].shape == (0, 5)
    assert find_boxes(m, Path("some/dir/a.jpg")) is m["a.jpg"]
    assert find_boxes(m, "c.jpg") is None
    p.write_text(json.dumps({"a.jpg": [[1, 2, 3]]}))
    with pytest.raises(InputError, match=r"boxes\.json \['a\.jpg'\] box 0"):
        load_box_mapping(p)
    p.write_text(json.dumps([[1, 2, 3, 4]]))
    with pytest.raises(InputError, match="must hold an object"):
        load_box_mapping(p)


def _coco_images(*entries: tuple[int, str]) -> dict:
    return {"images": [{"id": i, "file_name": name} for i, name in entries]}


def test_load_image_ids_maps_names_and_unambiguous_last_parts(tmp_path: Path) -> None:
    p = tmp_path / "images.json"
    p.write_text(json.dumps(_coco_images((1, "a/x.jpg"), (2, "b/x.jpg"), (3, "c/y.jpg"),
                                         (3, "c/y.jpg"), (3, "./c/y.jpg"))))  # repeats
    assert load_image_ids(p) == {"a/x.jpg": 1, "b/x.jpg": 2, "c/y.jpg": 3, "y.jpg": 3}
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 3, "bbox": [0, 0, 5, 5], "score": 0.9}]))
    mapping = load_coco_detections(dets, p)  # keyed by the names as written
    assert sorted(mapping) == ["./c/y.jpg", "a/x.jpg", "b/x.jpg", "c/y.jpg"]
    assert len(mapping["c/y.jpg"]) == len(mapping["./c/y.jpg"]) == 1
    p.write_text(json.dumps([{"id": 7, "file_name": "z.jpg"}]))  # a bare list of images
    assert load_image_ids(p) == {"z.jpg": 7}


@pytest.mark.parametrize("entries, message", [
    ([(1, "a.jpg"), (1, "b.jpg")], r"image id 1 is given to two files \('a\.jpg' and 'b\.jpg'\)"),
    ([(1, "a.jpg"), (2, "a.jpg")], r"'a\.jpg' is listed twice, with ids 1 and 2"),
    ([(1, "d/a.jpg"), (2, "d//a.jpg")], r"'d/a\.jpg' is listed twice"),
])
def test_images_file_with_duplicated_ids_or_names_is_refused(
    tmp_path: Path, entries: list, message: str
) -> None:
    """One id for two files (or two ids for one file) would give one image's detections to
    the other, or lose them: refused by `load_image_ids` and by `load_coco_detections`."""
    images = tmp_path / "images.json"
    images.write_text(json.dumps(_coco_images(*entries)))
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 1, "bbox": [0, 0, 5, 5], "score": 0.9},
                                {"image_id": 2, "bbox": [1, 1, 5, 5], "score": 0.8}]))
    with pytest.raises(InputError, match=message):
        load_image_ids(images)
    with pytest.raises(InputError, match=message):
        load_coco_detections(dets, images)


@pytest.mark.parametrize("entry, message", [
    ({"id": "7", "file_name": "a.jpg"}, "ids are integers"),
    ({"id": True, "file_name": "a.jpg"}, "ids are integers"),
    ({"id": 7, "file_name": 3}, "file_name must be a non-empty string"),
    ({"id": 7}, "needs 'id' and 'file_name'"),
])
def test_images_file_entries_are_checked(tmp_path: Path, entry: dict, message: str) -> None:
    p = tmp_path / "images.json"
    p.write_text(json.dumps({"images": [entry]}))
    no_detections = tmp_path / "dets.json"
    no_detections.write_text("[]")
    for read in (load_image_ids, lambda f: load_coco_detections(no_detections, f)):
        with pytest.raises(InputError, match=message):
            read(p)


MALFORMED_JSON = {
    "deep": "[" * 100_000,
    "long integer": "[" + "9" * 5000 + "]",
    "not utf-8": b"\xff\xfe[1]",
}


@pytest.mark.parametrize("kind", sorted(MALFORMED_JSON))
def test_malformed_json_is_one_input_error_in_every_detection_file(
    tmp_path: Path, kind: str
) -> None:
    """Deep nesting, a 5000-digit integer, bytes that are not UTF-8: one InputError naming
    the file (not a RecursionError or ValueError traceback)."""
    bad = tmp_path / "bad.json"
    data = MALFORMED_JSON[kind]
    bad.write_bytes(data if isinstance(data, bytes) else data.encode())
    no_detections = tmp_path / "dets.json"
    no_detections.write_text("[]")
    for read in (load_coco_detections, load_box_mapping, load_image_ids,
                 lambda f: load_coco_detections(no_detections, f)):  # as --images-file
        with pytest.raises(InputError, match=r"bad\.json.*not valid JSON"):
            read(bad)


def test_numbers_beyond_a_float_are_input_errors(tmp_path: Path) -> None:
    """A 400-digit integer is valid JSON but no float: the entry is named (it was an
    OverflowError traceback); so is an infinite or fractional image id."""
    huge = "1" + "0" * 400
    p = tmp_path / "d.json"
    for text, message in [
        (f'[{{"image_id": 1, "bbox": [0, 0, {huge}, 5], "score": 0.9}}]', "entry 0: box values"),
        (f'[{{"image_id": 1, "bbox": [0, 0, 5, 5], "score": {huge}}}]', "entry 0: score"),
        ('[{"image_id": Infinity, "bbox": [0, 0, 5, 5]}]', "entry 0: image_id must be an integer"),
        ('[{"image_id": 1.5, "bbox": [0, 0, 5, 5]}]', "entry 0: image_id must be an integer"),
    ]:
        p.write_text(text)
        with pytest.raises(InputError, match=message):
            load_coco_detections(p)
    p.write_text(json.dumps({"a.jpg": [[0, 0, 5, 5]]}).replace("5]", f"{huge}]"))
    with pytest.raises(InputError, match=r"\['a\.jpg'\] box 0: box values must be numbers"):
        load_box_mapping(p)
    p.write_text('[{"image_id": "785", "bbox": [0, 0, 5, 5]}, {"image_id": 9.0, "bbox": [1, 1, 2, 2]}]')
    assert sorted(load_coco_detections(p)) == [9, 785]  # ids written as text or as 9.0


# ------------------------------------------------------------------ factory


def test_build_detector_names() -> None:
    assert isinstance(build_detector("none"), WholeImageDetector)
    assert isinstance(build_detector("Whole-Image"), WholeImageDetector)
    with pytest.raises(InputError, match="unknown detector"):
        build_detector("yolo")
    with pytest.raises(InputError, match="invalid options"):
        build_detector("none", threshold=0.3)


# ------------------------------------------------------------------ HOG


def test_hog_missing_gives_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(cv2, "HOGDescriptor", raising=False)
    monkeypatch.delattr(cv2, "HOGDescriptor_getDefaultPeopleDetector", raising=False)
    with pytest.raises(DownloadError, match="HOG"):
        HOGPersonDetector()


@pytest.mark.skipif(not HAS_HOG, reason="this OpenCV build has no HOG detector (OpenCV 5 main)")
def test_hog_finds_a_person_on_coco_image(data_dir: Path) -> None:
    from vitpose.inference.io import read_image

    coco = data_dir / "coco"
    gt = json.loads((coco / "test_coco.json").read_text())
    image_id = next(im["id"] for im in gt["images"] if im["file_name"] == "000000197388.jpg")
    gt_boxes = [np.asarray(a["bbox"]) for a in gt["annotations"] if a["image_id"] == image_id]
    image = read_image(coco / "000000197388.jpg")
    boxes = build_detector("hog")(image)
    assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 5
    assert len(boxes) >= 1
    best = max(_iou_xywh(b[:4], g) for b in boxes for g in gt_boxes)
    assert best > 0.4
    assert np.all((boxes[:, 4] > 0) & (boxes[:, 4] < 1))
    assert len(HOGPersonDetector()(np.full((300, 200, 3), 127, np.uint8))) == 0


@pytest.mark.skipif(not HAS_HOG, reason="this OpenCV build has no HOG detector (OpenCV 5 main)")
def test_hog_downscales_huge_images_and_maps_back(data_dir: Path) -> None:
    from vitpose.inference.io import read_image

    image = read_image(data_dir / "coco" / "000000197388.jpg")
    big = cv2.resize(image, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)
    small_boxes = HOGPersonDetector()(image)
    big_boxes = HOGPersonDetector(max_long_side=640)(big)
    assert len(big_boxes) >= 1
    best = max(_iou_xywh(b[:4] / 3.0, s[:4]) for b in big_boxes for s in small_boxes)
    assert best > 0.7


# ------------------------------------------------------------------ DETR-family decoding


def test_decode_detr_outputs_sigmoid() -> None:
    logits = np.full((3, 4), -10.0)
    logits[0, 2] = 3.0  # person (id 2), confident
    logits[1, 0] = 3.0  # other class
    logits[2, 2] = -0.5  # person, weak
    pred = np.array([[0.5, 0.5, 0.2, 0.4], [0.1, 0.1, 0.1, 0.1], [0.25, 0.25, 0.1, 0.1]])
    out = decode_detr_outputs(logits, pred, (200, 100), [2], 0.5, sigmoid=True)
    assert out.shape == (1, 5)
    np.testing.assert_allclose(out[0, :4], [40, 60, 20, 80], rtol=1e-6)
    np.testing.assert_allclose(out[0, 4], 1 / (1 + np.exp(-3.0)), rtol=1e-6)
    out = decode_detr_outputs(logits, pred, (200, 100), [2], 0.3, sigmoid=True)
    assert out.shape == (2, 5) and out[0, 4] > out[1, 4]


def test_decode_detr_outputs_softmax_excludes_no_object() -> None:
    logits = np.zeros((3, 4))  # 3 real classes + no-object
    logits[0, 1] = 5.0  # person (id 1)
    logits[1, 3] = 9.0  # no object
    logits[1, 1] = 2.0
    logits[2, 0] = 5.0  # another class
    pred = np.full((3, 4), 0.5)
    out = decode_detr_outputs(logits, pred, (10, 10), [1], 0.1, sigmoid=False)
    assert out.shape == (1, 5)
    np.testing.assert_allclose(out[0, :4], [2.5, 2.5, 5, 5])


def test_preprocess_sizes() -> None:
    fixed = det.DetrPreprocess({"size": {"height": 640, "width": 640}, "do_normalize": False})
    assert fixed.fixed_size and fixed.output_hw(480, 1000) == (640, 640)
    x = fixed(np.full((48, 100, 3), 255, np.uint8))
    assert x.shape == (3, 640, 640) and x.dtype == np.float32
    np.testing.assert_allclose(x, 1.0, atol=1e-6)
    keep = det.DetrPreprocess({"size": {"shortest_edge": 800, "longest_edge": 1333}})
    assert not keep.fixed_size
    assert keep.output_hw(480, 640) == (800, 1067)
    assert keep.output_hw(400, 1600) == (333, 1333)


# ------------------------------------------------------------------ transformers detector


@pytest.fixture(scope="module")
def tiny_rtdetr_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    backbone = transformers.RTDetrResNetConfig(
        embedding_size=8,
        hidden_sizes=[8, 16, 16, 16],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        out_features=["stage2", "stage3", "stage4"],
    )
    labels = {0: "car", 1: "dog", 2: "person"}
    config = transformers.RTDetrConfig(
        backbone_config=backbone,
        use_pretrained_backbone=False,
        d_model=16,
        encoder_hidden_dim=16,
        encoder_in_channels=[16, 16, 16],
        decoder_in_channels=[16, 16, 16],
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=20,
        num_denoising=0,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    out = tmp_path_factory.mktemp("tiny_rtdetr")
    transformers.RTDetrForObjectDetection(config).eval().save_pretrained(out)
    (out / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "RTDetrImageProcessor",
                "do_resize": True,
                "size": {"height": 64, "width": 64},
                "resample": 2,
                "do_rescale": True,
                "rescale_factor": 1 / 255,
                "do_normalize": False,
            }
        )
    )
    return out


def test_transformers_detector_with_tiny_offline_model(tiny_rtdetr_dir: Path) -> None:
    detector = build_detector("rtdetr", model_id=str(tiny_rtdetr_dir), threshold=0.0, device="cpu")
    assert detector.label_ids == [2]  # looked up by name, not hard-coded
    assert detector.device == torch.device("cpu")  # the pose model's device, given by predict
    assert isinstance(build_detector("hog", device="cuda:1"), det.HOGPersonDetector)  # ignored
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (90, 120, 3), dtype=np.uint8) for _ in range(2)]
    images.append(rng.integers(0, 255, (50, 30, 3), dtype=np.uint8))
    batch = detector.detect_batch(images)
    assert len(batch) == 3
    for img, boxes in zip(images, batch, strict=True):
        assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 5
        assert len(boxes) > 0  # threshold 0 keeps every query
        h, w = img.shape[:2]
        assert np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 0] + boxes[:, 2] <= w + 1e-3)
        assert np.all(boxes[:, 1] >= 0) and np.all(boxes[:, 1] + boxes[:, 3] <= h + 1e-3)
        assert np.all(np.diff(boxes[:, 4]) <= 0)
    single = detector(images[2])
    np.testing.assert_allclose(single, batch[2], rtol=1e-4, atol=1e-4)
    strict = det.TransformersPersonDetector(str(tiny_rtdetr_dir), threshold=1.01, device="cpu")
    assert strict(np.zeros((40, 40, 3), np.uint8)).shape == (0, 5)


def test_transformers_detector_without_wanted_label(tiny_rtdetr_dir: Path) -> None:
    with pytest.raises(InputError, match="no class named"):
        det.TransformersPersonDetector(str(tiny_rtdetr_dir), labels=("giraffe",), device="cpu")


def test_transformers_detector_offline_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("transformers")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DownloadError, match="--detector hog"):
        det.TransformersPersonDetector("vitpose-tests/no-such-detector", cache_dir=tmp_path)


def test_hub_detector_downloads_through_hub_fetch(
    tiny_rtdetr_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hub id goes through the one hub door (`vitpose.hub.fetch`) with its revision and
    cache folder; the snapshot's commit keys the cached ONNX export."""
    from vitpose import hub

    seen: dict[str, object] = {}

    def fetch(repo_id, filename=None, **kwargs):
        seen.update(kwargs, repo_id=repo_id, filename=filename)
        snapshot = tmp_path / "snapshots" / "0123abcd"
        if not snapshot.exists():
            import shutil
            shutil.copytree(tiny_rtdetr_dir, snapshot)
        return snapshot

    monkeypatch.setattr(hub, "fetch", fetch)
    d = det.TransformersDetector("someone/tiny-detector", revision="v1", cache_dir=tmp_path,
                                 device="cpu", engine="torch")
    assert seen["repo_id"] == "someone/tiny-detector" and seen["filename"] is None
    assert seen["revision"] == "v1" and seen["cache_dir"] == tmp_path
    assert "*.safetensors" in seen["allow_patterns"] and "--detector hog" in seen["advice"]
    assert d.model.config._commit_hash == "0123abcd"
    assert d(np.zeros((64, 64, 3), np.uint8)).shape[1] == 5


@pytest.mark.parametrize("name", ["./no-such-folder", "/no/such/detector", "a/b/c"])
def test_a_missing_local_detector_folder_is_not_a_download(name: str) -> None:
    pytest.importorskip("transformers")
    with pytest.raises(InputError, match="does not exist"):
        det.TransformersDetector(name)


def test_unreachable_hub_fails_fast_for_a_detector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No cached copy and no hub: one DownloadError from `hub.fetch`'s probe, with the
    detector's offline advice, and no download attempt (it would retry for tens of seconds)."""
    pytest.importorskip("transformers")
    import huggingface_hub

    def probe(*args, **kwargs):
        raise OSError("[Errno -2] Name or service not known")

    def download(*args, **kwargs):
        if not kwargs.get("local_files_only"):
            raise AssertionError("an online download was attempted")
        raise huggingface_hub.utils.LocalEntryNotFoundError("not cached")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", probe)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", download)
    with pytest.raises(DownloadError) as err:
        det.TransformersDetector("vitpose-tests/no-such-detector", cache_dir=tmp_path)
    text = str(err.value)
    assert "the detector 'vitpose-tests/no-such-detector'" in text
    assert "unreachable" in text and "--detector hog" in text and "--weights" not in text


def test_transformers_missing_gives_download_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(DownloadError, match="pip install transformers"):
        build_detector("transformers")


# ------------------------------------------------------------------ D-FINE (the auto detector)


def _tiny_dfine(labels: dict[int, str], queries: int = 30):
    """A D-FINE-N-shaped model (smaller input and query count) with seeded random weights, the
    weights perturbed so that the encoder's query selection has no exact ties (transformers'
    init gives every anchor the same class score)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    backbone = dict(
        model_type="hgnet_v2", hidden_sizes=[16, 32, 64, 128], stem_channels=[3, 8, 8],
        stage_in_channels=[8, 16, 32, 64], stage_mid_channels=[8, 8, 16, 16],
        stage_out_channels=[16, 32, 64, 128], stage_num_blocks=[1, 1, 1, 1],
        stage_downsample=[False, True, True, True], stage_light_block=[False, False, True, True],
        stage_kernel_size=[3, 3, 5, 5], stage_numb_of_layers=[2, 2, 2, 2], out_indices=[3, 4],
        use_learnable_affine_block=True, layer_type="basic", embedding_size=8)
    config = transformers.DFineConfig(
        backbone_config=backbone, num_labels=len(labels), num_feature_levels=2,
        encoder_ffn_dim=32, encode_proj_layers=[1], d_model=32, encoder_hidden_dim=32,
        decoder_ffn_dim=32, encoder_in_channels=[64, 128], decoder_n_points=[2, 2],
        decoder_in_channels=[32, 32], feat_strides=[16, 32], depth_mult=0.5, decoder_layers=2,
        hidden_expansion=0.34, num_queries=queries, encoder_attention_heads=2,
        decoder_attention_heads=2, id2label=labels, label2id={v: k for k, v in labels.items()})
    model = transformers.DFineForObjectDetection(config).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return model


_DFINE_PRE = {"do_resize": True, "size": {"height": 128, "width": 128}, "do_rescale": True,
              "rescale_factor": 1 / 255, "do_normalize": False}
_LABELS = {0: "person", 1: "bicycle", 2: "dog", 3: "horse"}


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_dfine_random_weights_decoding_is_engine_independent(runtime: str) -> None:
    pytest.importorskip(runtime)
    model = _tiny_dfine(_LABELS)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (96, 160, 3), dtype=np.uint8),
              rng.integers(0, 255, (200, 90, 3), dtype=np.uint8)]
    runs = {}
    for engine in ("torch", runtime):
        d = det.TransformersDetector.from_model(model, _DFINE_PRE, labels=("person", "dog"),
                                                threshold=0.0, engine=engine)
        assert d.engine == engine
        runs[engine] = d.detect_labeled_batch(images)
    for (b_t, l_t), (b_o, l_o), img in zip(runs["torch"], runs[runtime], images):
        assert len(b_t) == 30 and set(l_t) <= {"person", "dog"}  # wanted classes only
        h, w = img.shape[:2]
        assert np.all(b_t[:, 0] >= 0) and np.all(b_t[:, 0] + b_t[:, 2] <= w + 1e-3)
        assert np.all(b_t[:, 1] >= 0) and np.all(b_t[:, 1] + b_t[:, 3] <= h + 1e-3)
        assert np.all(np.diff(b_t[:, 4]) <= 0)
        np.testing.assert_allclose(b_o, b_t, rtol=1e-3, atol=1e-2)
        assert l_o == l_t
    # the person-only detector keeps the person boxes of the two-class one
    persons = det.TransformersDetector.from_model(model, _DFINE_PRE, threshold=0.0,
                                                  engine="torch")(images[0])
    boxes, names = runs["torch"][0]
    mine = boxes[np.array([n == "person" for n in names], bool)]
    for row in mine:  # same query, same person score
        assert np.abs(persons - row).max(axis=1).min() < 1e-4


def test_detector_engine_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    cpu = torch.device("cpu")
    monkeypatch.setattr(runners, "onnxruntime_available", lambda: True)
    monkeypatch.setattr(runners, "openvino_available", lambda: True)
    # both runtimes are candidates (the calibration picks; OpenVINO first on a tie)
    assert det.detector_engine_order("auto", True, cpu) == ["openvino", "onnxruntime"]
    assert det.detector_engine_order("auto", False, cpu) == []  # varying input size: PyTorch
    assert det.detector_engine_order("auto", True, torch.device("cuda")) == []
    assert det.detector_engine_order("openvino", True, cpu) == ["openvino"]
    assert det.detector_engine_order("torch", True, cpu) == []
    with pytest.raises(InputError, match="on the CPU"):
        det.detector_engine_order("openvino", True, torch.device("cuda"))
    monkeypatch.setattr(runners, "onnxruntime_available", lambda: False)
    assert det.detector_engine_order("auto", True, cpu) == ["openvino"]
    assert det.available_detector_engines("cpu") == ["torch", "openvino"]
    monkeypatch.setattr(runners, "openvino_available", lambda: False)
    assert det.detector_engine_order("auto", True, cpu) == []
    with pytest.raises(InputError, match="needs openvino"):
        det.detector_engine_order("openvino", True, cpu)


def test_choose_detector_engine_takes_the_fastest_and_breaks_ties_by_order() -> None:
    order = ("openvino", "onnxruntime")
    assert det.choose_detector_engine({"openvino": 0.060, "onnxruntime": 0.040}, order) == \
        "onnxruntime"
    assert det.choose_detector_engine({"openvino": 0.040, "onnxruntime": 0.060}, order) == \
        "openvino"
    # within DETECTOR_TIE of the fastest: the first of the order
    assert det.choose_detector_engine({"openvino": 0.0505, "onnxruntime": 0.0500}, order) == \
        "openvino"
    assert det.choose_detector_engine({"onnxruntime": 0.05}, order) == "onnxruntime"
    with pytest.raises(ValueError):
        det.choose_detector_engine({}, order)


class _FakeRunner:
    def __init__(self, name: str) -> None:
        self.name = name


def test_auto_detector_engine_is_calibrated_once_and_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected timings (no test depends on speed): the faster engine wins, the choice is
    written beside the export and read back without timing or building the other engine; a
    different machine or runtime calibrates again."""
    built: list[str] = []

    def build(name, graph, hw, path):
        built.append(name)
        return _FakeRunner(name)

    timings = {"openvino": 0.090, "onnxruntime": 0.030}
    monkeypatch.setattr(runners, "_build_runner", build)
    monkeypatch.setattr(runners, "_time_runners", lambda runners, hw: dict(timings))
    monkeypatch.setattr(runners, "_calibration_fingerprint",
                        lambda names: {"cpu": "test cpu", "candidates": list(names)})
    export = tmp_path / "dfine-640x640-key.onnx"
    names = ["openvino", "onnxruntime"]
    runner = runners.calibrated_runner(None, (640, 640), export, names, "m")
    assert runner.name == "onnxruntime" and sorted(built) == sorted(names)
    record = json.loads((tmp_path / "dfine-640x640-key.auto-engine.json").read_text())
    assert record["engine"] == "onnxruntime"
    assert record["ms_per_frame"] == {"openvino": 90.0, "onnxruntime": 30.0}

    def no_timing(runners, hw):
        raise AssertionError("timed again")

    monkeypatch.setattr(runners, "_time_runners", no_timing)
    built.clear()
    assert runners.calibrated_runner(None, (640, 640), export, names, "m").name == "onnxruntime"
    assert built == ["onnxruntime"]  # only the remembered engine is built

    timings = {"openvino": 0.020, "onnxruntime": 0.030}
    monkeypatch.setattr(runners, "_time_runners", lambda runners, hw: dict(timings))
    monkeypatch.setattr(runners, "_calibration_fingerprint",
                        lambda names: {"cpu": "another cpu", "candidates": list(names)})
    assert runners.calibrated_runner(None, (640, 640), export, names, "m").name == "openvino"
    # not cacheable (no export file): timed each time, nothing written
    assert runners.calibrated_runner(None, (640, 640), None, names, "m").name == "openvino"


def test_detector_export_and_choice_live_in_the_one_cache_folder(
    tiny_rtdetr_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder detector's export goes to ``<cache folder>/detectors`` (the engines'
    `cache_dir`, here $VITPOSE_CACHE), written whole; ``auto``'s choice (timings injected) is
    remembered beside it, and the next build neither exports nor times again."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    monkeypatch.setenv("VITPOSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(runners, "_time_runners",
                        lambda runners, hw: {"openvino": 0.05, "onnxruntime": 0.01})
    image = np.random.default_rng(0).integers(0, 255, (70, 90, 3), dtype=np.uint8)
    first = build_detector(str(tiny_rtdetr_dir), engine="auto", device="cpu", threshold=0.0)
    assert first.engine == "onnxruntime"
    folder = tmp_path / "cache" / "detectors"
    (export,) = folder.glob("*.onnx")
    assert export.name.startswith(f"{tiny_rtdetr_dir.name}-64x64-")
    choice = export.with_name(export.stem + ".auto-engine.json")
    assert sorted(p.name for p in folder.iterdir()) == sorted([export.name, choice.name])
    record = json.loads(choice.read_text())
    assert record["engine"] == "onnxruntime"
    assert record["ms_per_frame"] == {"openvino": 50.0, "onnxruntime": 10.0}
    assert record["fingerprint"]["candidates"] == ["openvino", "onnxruntime"]

    def no_timing(*args: object) -> None:
        raise AssertionError("timed again")

    monkeypatch.setattr(runners, "_time_runners", no_timing)
    written = export.stat().st_mtime_ns
    again = build_detector(str(tiny_rtdetr_dir), engine="auto", device="cpu", threshold=0.0)
    assert again.engine == "onnxruntime" and export.stat().st_mtime_ns == written
    np.testing.assert_allclose(again(image), first(image), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_auto_detector_engine_on_real_runtimes_follows_the_timings(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    for faster in ("onnxruntime", "openvino"):
        other = {"onnxruntime": "openvino", "openvino": "onnxruntime"}[faster]
        monkeypatch.setattr(runners, "_time_runners",
                            lambda runners, hw, f=faster, o=other: {f: 0.01, o: 0.05})
        d = det.TransformersDetector.from_model(_tiny_dfine(_LABELS), _DFINE_PRE,
                                                engine="auto", device="cpu")
        assert d.engine == faster


def test_detector_auto_engine_falls_back_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no such runtime today")

    monkeypatch.setattr(runners, "AUTO_DETECTOR_ENGINES", ("openvino", "onnxruntime"))
    monkeypatch.setattr(runners, "OpenVinoRunner", broken)
    d = det.TransformersDetector.from_model(_tiny_dfine(_LABELS), _DFINE_PRE, engine="auto",
                                            device="cpu")
    assert d.engine == "onnxruntime"
    with pytest.raises(InputError, match="could not be run with OpenVINO"):
        det.TransformersDetector.from_model(_tiny_dfine(_LABELS), _DFINE_PRE,
                                            engine="openvino", device="cpu")


def test_decode_detr_detections_returns_each_box_class() -> None:
    logits = np.full((4, 4), -9.0)
    logits[0, 0] = 3.0  # person
    logits[1, 2] = 2.0  # dog
    logits[2, 1] = 5.0  # bicycle: not wanted
    logits[3, 3] = 1.0  # horse
    boxes = np.tile([[0.5, 0.5, 0.2, 0.4]], (4, 1))
    out, ids = det.decode_detr_detections(logits, boxes, (100, 200), [0, 2, 3], 0.5, True)
    assert ids.tolist() == [0, 2, 3] and np.all(np.diff(out[:, 4]) <= 0)
    np.testing.assert_allclose(out[0, :4], [80, 30, 40, 40], atol=1e-4)


def test_missing_classes_are_named() -> None:
    model = _tiny_dfine(_LABELS)
    with pytest.raises(InputError, match=r"no class named 'unicorn'.*person"):
        det.TransformersDetector.from_model(model, _DFINE_PRE, labels=("person", "unicorn"))
    lenient = det.TransformersDetector.from_model(
        model, _DFINE_PRE, labels=("person", "giraffe"), strict_labels=False, engine="torch")
    assert lenient.label_ids == [0]


def test_a_folder_or_file_that_is_not_a_detector(tmp_path: Path, tiny_rtdetr_dir: Path) -> None:
    bert = tmp_path / "not_a_detector"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 10}))
    with pytest.raises(InputError, match="not a transformers object-detection model"):
        build_detector(str(bert))
    weights = tmp_path / "detector.pth"
    weights.write_bytes(b"\0" * 16)
    with pytest.raises(InputError, match="not a transformers object-detection model"):
        build_detector(str(weights))
    # a real detector folder is accepted by path, without a name
    d = build_detector(str(tiny_rtdetr_dir), threshold=0.0, engine="torch", device="cpu")
    assert isinstance(d, det.TransformersDetector) and d.engine == "torch"


def test_auto_offline_says_which_detector_once_and_falls_back_to_hog(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def offline(model_id, revision, cache_dir):
        calls.append(model_id)
        raise DownloadError(f"could not download the detector {model_id!r} (offline). "
                            f"{det.OFFLINE_HINT}")

    monkeypatch.setattr(transformers_detector, "_load_transformers_detector", offline)
    monkeypatch.setattr(registry, "_AUTO_WARNED", False)
    with caplog.at_level("WARNING", logger=registry.logger.name):
        first = build_detector("auto", device="cpu")
        second = build_detector("auto", device="cpu")
    assert isinstance(first, det.HOGPersonDetector) and isinstance(second, det.HOGPersonDetector)
    assert calls == ["ustc-community/dfine-nano-coco"] * 2
    warnings = [r.getMessage() for r in caplog.records if "D-FINE-N" in r.getMessage()]
    assert len(warnings) == 1 and "ustc-community/dfine-nano-coco" in warnings[0]
    assert "HOG" in warnings[0]
    # a named learned detector does not fall back
    with pytest.raises(DownloadError):
        build_detector("rtdetr")


def test_named_detectors_map_to_hub_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def fake(model_id, revision, cache_dir):
        seen.append(model_id)
        raise DownloadError("offline")

    monkeypatch.setattr(transformers_detector, "_load_transformers_detector", fake)
    for name in ("dfine-n", "dfine-s", "rtdetr"):
        with pytest.raises(DownloadError):
            build_detector(name)
    assert seen == ["ustc-community/dfine-nano-coco", "ustc-community/dfine-small-coco",
                    "PekingU/rtdetr_r50vd_coco_o365"]
    with pytest.raises(InputError, match="unknown detector engine"):
        build_detector("dfine-n", engine="tensorrt")


@pytest.mark.parametrize("name, params_m", [("dfine-n", 3.8), ("dfine-s", 10.3)])
def test_detector_configs_match_the_published_models(name: str, params_m: float) -> None:
    """The random-weight stand-ins used for speed measurements have the published size
    (D-FINE-N ~4 M, D-FINE-S ~10 M parameters), 80 COCO classes and a 640x640 input."""
    pytest.importorskip("transformers")
    d = det.random_detector(name, engine="torch")
    n = sum(p.numel() for p in d.model.parameters()) / 1e6
    assert n == pytest.approx(params_m, abs=0.1)
    assert d.label_ids == [0] and d.preprocess.output_hw(480, 640) == (640, 640)
    assert len(det.COCO_CLASSES) == 80 and set(det.ANIMAL_CLASSES) <= set(det.COCO_CLASSES)
