"""Annotation readers: every sample benchmark format -> PoseRecord, and malformed-file errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from vitpose.datasets.coco import read_coco_keypoints, read_coco_wholebody, read_detections
from vitpose.datasets.interhand import read_interhand2d
from vitpose.datasets.mpii import load_mpii_head_boxes, read_mpii
from vitpose.datasets.readers import read_annotations
from vitpose.datasets.records import PoseRecord, crop_center_scale
from vitpose.errors import InputError

COCO_STYLE = {
    "coco": ("coco/test_coco.json", 14, 12),
    "aic": ("aic/test_aic.json", 9, 9),
    "crowdpose": ("crowdpose/test_crowdpose.json", 5, 4),
    "ochuman": ("ochuman/test_ochuman.json", 5, 5),
    "ap10k": ("ap10k/test_ap10k.json", 2, 2),
    "wholebody": ("coco/test_coco_wholebody.json", 14, 12),
}
NUM_K = {"coco": 17, "aic": 14, "crowdpose": 14, "ochuman": 17, "ap10k": 17, "wholebody": 133}


def _load(path: Path):
    return json.loads(path.read_text())


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def _check_record(rec: PoseRecord, k: int) -> None:
    assert rec.box_xywh.dtype == np.float32 and rec.box_xywh.shape == (4,)
    assert rec.center.dtype == np.float32 and rec.center.shape == (2,)
    assert rec.scale.dtype == np.float32 and rec.scale.shape == (2,)
    assert rec.keypoints.dtype == np.float32 and rec.keypoints.shape == (k, 2)
    assert rec.visible.dtype == np.float32 and rec.visible.shape == (k,)
    assert set(np.unique(rec.visible)) <= {0.0, 1.0}
    assert rec.image_path.is_file()


# ---- COCO-style ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(COCO_STYLE))
def test_coco_style_files(data_dir, name):
    rel, n_all, n_train = COCO_STYLE[name]
    path = data_dir / rel
    records = read_annotations(name, path)
    assert len(records) == n_train
    for rec in records:
        _check_record(rec, NUM_K[name])
        assert rec.dataset == name and rec.box_score == 1.0 and not rec.iscrowd
        assert rec.visible.sum() > 0
        # centre/scale follow the official aspect fix to 192/256 and padding 1.25
        c, s = crop_center_scale(rec.box_xywh, (256, 192), 1.25)
        np.testing.assert_allclose(rec.center, c, rtol=1e-6)
        np.testing.assert_allclose(rec.scale[0] / rec.scale[1], 0.75, rtol=1e-5)
    everything = read_annotations(name, path, skip_unlabeled=False, skip_crowd=False)
    assert len(everything) == n_all


def test_coco_first_record_by_hand(data_dir):
    rec = read_coco_keypoints(data_dir / "coco/test_coco.json", "coco")[0]
    # bbox [280.79, 44.73, 218.7, 346.68] in a 640 x 425 image
    x1, y1 = 280.79, 44.73
    w, h = 218.7 - 1, 346.68 - 1  # x2 = x1 + (w - 1)
    np.testing.assert_allclose(rec.box_xywh, [x1, y1, w, h], rtol=1e-6)
    np.testing.assert_allclose(rec.center, [x1 + w / 2, y1 + h / 2], rtol=1e-6)
    np.testing.assert_allclose(rec.scale, [h * 0.75 / 200 * 1.25, h / 200 * 1.25], rtol=1e-6)
    assert (rec.image_id, rec.ann_id, rec.category_id, rec.image_size_hw) == (785, 442619, 1,
                                                                              (425, 640))
    assert rec.area == pytest.approx(27789.11055)
    assert rec.visible.tolist() == [1.0] * 17  # v = 2 -> 1


def test_box_cleaning_and_filters(tmp_path):
    kp = [10, 10, 2] + [0, 0, 0] * 16
    data = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 80}],
        "annotations": [
            {"id": 1, "image_id": 1, "bbox": [-5, 70, 200, 50], "keypoints": kp,
             "num_keypoints": 1},  # clipped to the image
            {"id": 2, "image_id": 1, "bbox": [5, 5, 10, 10], "keypoints": kp, "area": 0},
            {"id": 3, "image_id": 1, "bbox": [5, 5, 1, 10], "keypoints": kp},  # w - 1 = 0
            {"id": 4, "image_id": 1, "bbox": [5, 5, 10, 10], "keypoints": kp, "iscrowd": 1},
            {"id": 5, "image_id": 1, "bbox": [5, 5, 10, 10], "keypoints": [0] * 51},
            {"id": 6, "image_id": 1, "bbox": [5, 5, 10, 10], "keypoints": kp,
             "num_keypoints": 0},
            {"id": 7, "image_id": 1, "bbox": [5, 5, 20, 10], "keypoints": kp},
        ],
    }
    path = _write(tmp_path / "ann.json", data)
    recs = read_coco_keypoints(path, "coco")
    assert [r.ann_id for r in recs] == [1, 7]
    np.testing.assert_allclose(recs[0].box_xywh, [0, 70, 99, 9])  # x2 = 99, y2 = 79
    assert recs[0].image_path == tmp_path / "a.jpg"
    # wide box: h grows to w / 0.75
    np.testing.assert_allclose(recs[1].scale, [19 / 200 * 1.25, 19 / 0.75 / 200 * 1.25],
                               rtol=1e-6)
    keep_all = read_coco_keypoints(path, "coco", skip_unlabeled=False, skip_crowd=False,
                                   image_root=tmp_path / "imgs")
    assert [r.ann_id for r in keep_all] == [1, 4, 5, 6, 7]
    assert keep_all[1].iscrowd and keep_all[0].image_path == tmp_path / "imgs" / "a.jpg"


def test_crowdpose_and_ap10k_extras(data_dir):
    crowd = read_annotations("crowdpose", data_dir / "crowdpose/test_crowdpose.json")
    assert {r.image_id: r.crowd_index for r in crowd} == {106848: 0.33, 103319: 0.39}
    assert all(r.area is None for r in crowd)
    animals = read_annotations("ap10k", data_dir / "ap10k/test_ap10k.json")
    assert sorted(r.category_id for r in animals) == [1, 26]


def test_wholebody_channel_order(data_dir):
    path = data_dir / "coco/test_coco_wholebody.json"
    raw = _load(path)["annotations"][0]
    rec = read_coco_wholebody(path)[0]
    expected = np.concatenate([np.array(raw[k], np.float32).reshape(-1, 3) for k in
                               ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts",
                                "righthand_kpts")])
    np.testing.assert_array_equal(rec.keypoints, expected[:, :2])
    np.testing.assert_array_equal(rec.visible, (expected[:, 2] > 0).astype(np.float32))
    assert rec.visible[91:112].sum() == 0 and rec.visible[112:].sum() == 21


# ---- MPII ----------------------------------------------------------------------------------


def test_mpii_boxes_by_hand(data_dir):
    path = data_dir / "mpii/test_mpii.json"
    raw = _load(path)
    recs = read_mpii(path)
    assert len(recs) == 5
    for rec, entry in zip(recs, raw):
        _check_record(rec, 16)
        s = entry["scale"]
        cx, cy = entry["center"]
        np.testing.assert_allclose(rec.center, [cx - 1, cy + 15 * s - 1], rtol=1e-6)
        np.testing.assert_allclose(rec.scale, [1.25 * s, 1.25 * s], rtol=1e-6)
        np.testing.assert_allclose(rec.keypoints, np.array(entry["joints"]) - 1, rtol=1e-6)
        np.testing.assert_array_equal(rec.visible, entry["joints_vis"])
        assert rec.head_size is None
    assert [r.ann_id for r in recs] == list(range(5))


def test_mpii_head_boxes_files(data_dir, tmp_path):
    path = data_dir / "mpii/test_mpii.json"
    boxes = np.array([[[10.0, 20.0], [13.0, 24.0]]] * 5)  # diagonal 5 -> head size 3
    np.savez(tmp_path / "mat_layout.npz", headboxes_src=np.transpose(boxes, (1, 2, 0)))
    _write(tmp_path / "list.json", boxes.reshape(5, 4).tolist())
    for f in ("mat_layout.npz", "list.json"):
        loaded = load_mpii_head_boxes(tmp_path / f)
        np.testing.assert_allclose(loaded.head_sizes, [3.0] * 5)
        recs = read_mpii(path, head_boxes=tmp_path / f)
        assert [r.head_size for r in recs] == pytest.approx([3.0] * 5)
    np.savez(tmp_path / "short.npz", headboxes=boxes[:3])
    with pytest.raises(InputError, match="5 entries but 3 head boxes"):
        read_mpii(path, head_boxes=tmp_path / "short.npz")
    np.savez(tmp_path / "bad.npz", headboxes_src=np.zeros((3, 5)))
    with pytest.raises(InputError, match=r"bad\.npz.*headboxes_src"):
        load_mpii_head_boxes(tmp_path / "bad.npz")
    np.savez(tmp_path / "none.npz", other=np.zeros(3))
    with pytest.raises(InputError, match="headboxes"):
        load_mpii_head_boxes(tmp_path / "none.npz")


# ---- InterHand2.6M -------------------------------------------------------------------------


def test_interhand_projection_and_hands(data_dir):
    folder = data_dir / "interhand2.6m"
    recs = read_interhand2d(folder / "test_interhand2.6m_data.json")
    data = _load(folder / "test_interhand2.6m_data.json")
    cams = _load(folder / "test_interhand2.6m_camera.json")
    joints = _load(folder / "test_interhand2.6m_joint_3d.json")
    # images 1-2 are interacting (both hands), 3 only left valid, 4 only right valid
    assert [(r.image_id, r.extras["hand"]) for r in recs] == [
        (326750, "right"), (326750, "left"), (286291, "right"), (286291, "left"),
        (680801, "left"), (471953, "right")]
    assert [r.ann_id for r in recs][:2] == [2 * 326750, 2 * 326750 + 1]
    # project left-hand joint 0 (global 21) of the first image by hand
    img = data["images"][0]
    cam = cams[str(img["capture"])]
    name = img["camera"]
    world = np.array(joints[str(img["capture"])][str(img["frame_idx"])]["world_coord"][21])
    xyz = np.array(cam["camrot"][name]) @ (world - np.array(cam["campos"][name]))
    f, c = cam["focal"][name], cam["princpt"][name]
    expect = [xyz[0] / xyz[2] * f[0] + c[0], xyz[1] / xyz[2] * f[1] + c[1]]
    np.testing.assert_allclose(recs[1].keypoints[0], expect, atol=1e-3)
    for rec in recs:
        _check_record(rec, 21)
        assert rec.visible.sum() > 11
        kp = rec.keypoints[rec.visible > 0]
        np.testing.assert_allclose(rec.box_xywh, [kp[:, 0].min(), kp[:, 1].min(),
                                                  np.ptp(kp[:, 0]), np.ptp(kp[:, 1])], atol=1e-4)
        c, s = crop_center_scale(rec.box_xywh, (256, 192), 1.5)  # x1.5 padding
        np.testing.assert_allclose(rec.scale, s, rtol=1e-6)


def test_interhand_invalid_wrist_drops_hand(data_dir, tmp_path):
    folder = data_dir / "interhand2.6m"
    data = _load(folder / "test_interhand2.6m_data.json")
    data["annotations"][0]["joint_valid"][20] = [0]  # right wrist of image 1
    data["annotations"][1]["joint_valid"][21:31] = [[0]] * 10  # left hand keeps 11 valid joints
    path = _write(tmp_path / "x_data.json", data)
    recs = read_interhand2d(path, camera_path=folder / "test_interhand2.6m_camera.json",
                            joint_3d_path=folder / "test_interhand2.6m_joint_3d.json")
    assert [(r.image_id, r.extras["hand"]) for r in recs][:2] == [(326750, "left"),
                                                                   (286291, "right")]


# ---- detections ----------------------------------------------------------------------------


def test_detections(data_dir, tmp_path):
    ann = data_dir / "coco/test_coco.json"
    det = data_dir / "coco/test_coco_det_AP_H_56.json"
    raw = _load(det)
    recs = read_detections(det, ann)
    assert len(recs) == len(raw) == 118
    first = recs[0]
    assert first.keypoints is None and first.visible is None
    assert first.box_score == pytest.approx(raw[0]["score"]) and first.image_id == 785
    np.testing.assert_allclose(first.box_xywh, raw[0]["bbox"], rtol=1e-6)
    c, s = crop_center_scale(raw[0]["bbox"], (256, 192), 1.25)
    np.testing.assert_allclose(first.center, c) and np.testing.assert_allclose(first.scale, s)
    strong = read_detections(det, ann, det_bbox_thr=0.5)
    assert len(strong) == sum(d["score"] >= 0.5 for d in raw) < 118
    mixed = _write(tmp_path / "det.json", raw[:3] + [dict(raw[3], category_id=2)])
    assert [r.ann_id for r in read_detections(mixed, ann)] == [0, 1, 2]
    assert len(read_detections(mixed, ann, category_id=None)) == 4
    crowd = read_detections(data_dir / "crowdpose/test_crowdpose_det_AP_40.json",
                            data_dir / "crowdpose/test_crowdpose.json", dataset="crowdpose")
    assert len(crowd) == 6 and crowd[0].dataset == "crowdpose"


# ---- malformed files -----------------------------------------------------------------------


def _nan_at(seq, i):
    seq = list(seq)
    seq[i] = float("nan")
    return seq


def _coco_case(case):
    def edit(d):
        a = d["annotations"]
        if case == "missing":
            del a[1]["bbox"]
            return "annotations[1]", "id=198196", "'bbox'"
        if case == "count":
            a[2]["keypoints"] = a[2]["keypoints"][:-3]
            return "annotations[2]", "id=230195", "'keypoints'"
        if case == "nan":
            a[3]["keypoints"] = _nan_at(a[3]["keypoints"], 4)
            return "annotations[3]", "id=1202706", "NaN"
        if case == "image":
            a[0]["image_id"] = 424242
            return "annotations[0]", "id=442619", "424242"
        if case == "image_key":
            del d["images"][2]["file_name"]
            return "images[2]", "id=196141", "'file_name'"
        raise AssertionError(case)
    return edit


@pytest.mark.parametrize("case", ["missing", "count", "nan", "image", "image_key"])
@pytest.mark.parametrize("fmt", ["coco", "wholebody"])
def test_malformed_coco_style(data_dir, tmp_path, fmt, case):
    src = "coco/test_coco.json" if fmt == "coco" else "coco/test_coco_wholebody.json"
    data = _load(data_dir / src)
    expect = _coco_case(case)(data)
    path = _write(tmp_path / "bad.json", data)
    with pytest.raises(InputError) as info:
        read_annotations(fmt, path)
    msg = str(info.value)
    assert str(path) in msg
    for part in expect:
        assert part in msg, msg


def test_malformed_wholebody_part(data_dir, tmp_path):
    data = _load(data_dir / "coco/test_coco_wholebody.json")
    data["annotations"][4]["lefthand_kpts"] = data["annotations"][4]["lefthand_kpts"][:60]
    del data["annotations"][5]["face_kpts"]
    path = _write(tmp_path / "wb.json", data)
    with pytest.raises(InputError, match=r"annotations\[4\] \(id=460541\).*'lefthand_kpts'.*60"):
        read_coco_wholebody(path)


def test_wrong_layout_for_dataset(data_dir):
    with pytest.raises(InputError, match=r"'keypoints' has 51 values, expected 42"):
        read_coco_keypoints(data_dir / "coco/test_coco.json", "aic")


@pytest.mark.parametrize("reader", ["coco", "mpii", "interhand2d", "detections"])
def test_unreadable_json(tmp_path, reader):
    bad = tmp_path / "broken_data.json"
    bad.write_text("{not json")
    with pytest.raises(InputError) as info:
        if reader == "detections":
            read_detections(bad, bad)
        else:
            read_annotations(reader, bad, camera_path=bad, joint_3d_path=bad)
    assert str(bad) in str(info.value) and "JSON" in str(info.value)
    with pytest.raises(InputError, match="not found"):
        read_annotations(reader if reader != "detections" else "coco", tmp_path / "nope.json",
                         camera_path=bad, joint_3d_path=bad)


@pytest.mark.parametrize("case, expect", [
    ("missing", ("entries[2]", "'joints'")),
    ("count", ("entries[1]", "'joints'", "30 values, expected 32")),
    ("nan", ("entries[4]", "'center'", "NaN")),
    ("vis", ("entries[0]", "'joints_vis'")),
    ("scale", ("entries[3]", "'scale'")),
])
def test_malformed_mpii(data_dir, tmp_path, case, expect):
    data = _load(data_dir / "mpii/test_mpii.json")
    if case == "missing":
        del data[2]["joints"]
    elif case == "count":
        data[1]["joints"] = data[1]["joints"][:15]
    elif case == "nan":
        data[4]["center"][1] = float("nan")
    elif case == "vis":
        data[0]["joints_vis"] = data[0]["joints_vis"][:10]
    elif case == "scale":
        data[3]["scale"] = -1
    path = _write(tmp_path / "mpii.json", data)
    with pytest.raises(InputError) as info:
        read_mpii(path)
    msg = str(info.value)
    assert str(path) in msg and "image=" in msg
    for part in expect:
        assert part in msg, msg


@pytest.mark.parametrize("case, which, expect", [
    ("missing", "data", ("annotations[1]", "id=286291", "'joint_valid'")),
    ("count", "data", ("annotations[0]", "'joint_valid'", "41 values, expected 42")),
    ("image", "data", ("annotations[2]", "image_id", "123")),
    ("image_key", "data", ("images[3]", "'capture'")),
    ("nan", "joint_3d", ("capture 3 frame 69148", "'world_coord'", "NaN")),
    ("camera", "camera", ("no entry 2/campos/400012", "images[1]")),
    ("frame", "joint_3d", ("no entry 7/29590", "images[2]")),
])
def test_malformed_interhand(data_dir, tmp_path, case, which, expect):
    folder = data_dir / "interhand2.6m"
    files = {k: _load(folder / f"test_interhand2.6m_{k}.json")
             for k in ("data", "camera", "joint_3d")}
    d, cams, j3d = files["data"], files["camera"], files["joint_3d"]
    if case == "missing":
        del d["annotations"][1]["joint_valid"]
    elif case == "count":
        d["annotations"][0]["joint_valid"] = d["annotations"][0]["joint_valid"][:41]
    elif case == "image":
        d["annotations"][2]["image_id"] = 123
    elif case == "image_key":
        del d["images"][3]["capture"]
    elif case == "nan":
        j3d["3"]["69148"]["world_coord"][5][1] = float("nan")
    elif case == "camera":
        del cams["2"]["campos"]["400012"]
    elif case == "frame":
        del j3d["7"]["29590"]
    paths = {k: _write(tmp_path / f"t_{k}.json", v) for k, v in files.items()}
    with pytest.raises(InputError) as info:
        read_interhand2d(paths["data"], camera_path=paths["camera"],
                         joint_3d_path=paths["joint_3d"])
    msg = str(info.value)
    assert str(paths[which]) in msg, msg
    for part in expect:
        assert part in msg, msg


@pytest.mark.parametrize("case, expect", [
    ("missing", ("detections[5]", "'score'")),
    ("nan", ("detections[2]", "'bbox'", "NaN")),
    ("image", ("detections[7]", "image_id 999", "is not in the 'images'")),
    ("count", ("detections[1]", "'bbox'", "3 values, expected 4")),
])
def test_malformed_detections(data_dir, tmp_path, case, expect):
    ann = data_dir / "coco/test_coco.json"
    dets = _load(data_dir / "coco/test_coco_det_AP_H_56.json")
    if case == "missing":
        del dets[5]["score"]
    elif case == "nan":
        dets[2]["bbox"][0] = float("nan")
    elif case == "image":
        dets[7]["image_id"] = 999
    elif case == "count":
        dets[1]["bbox"] = dets[1]["bbox"][:3]
    path = _write(tmp_path / "dets.json", dets)
    with pytest.raises(InputError) as info:
        read_detections(path, ann)
    msg = str(info.value)
    assert str(path) in msg
    for part in expect:
        assert part in msg, msg
    not_a_list = _write(tmp_path / "obj.json", {"x": 1})
    with pytest.raises(InputError, match="list of detections"):
        read_detections(not_a_list, ann)


def test_unknown_dataset_name(data_dir):
    with pytest.raises(InputError, match="known datasets"):
        read_annotations("cocoo", data_dir / "coco/test_coco.json")


def test_math_sanity_of_helper():
    c, s = crop_center_scale([0, 0, 30, 40], (256, 192), 1.25)
    assert c.tolist() == [15.0, 20.0]
    assert s.tolist() == pytest.approx([30 / 200 * 1.25, 40 / 200 * 1.25])
    c, s = crop_center_scale([0, 0, 90, 40], (256, 192), 1.0)
    assert s.tolist() == pytest.approx([0.45, 0.6]) and not math.isnan(c[0])
