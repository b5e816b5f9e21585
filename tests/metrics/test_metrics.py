"""Metrics: perfect predictions score perfectly, PCKh / PCK / AUC / EPE match small cases worked
out by hand, bad inputs are clear errors. (OKS metrics against the official evaluator itself:
test_metrics_reference.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vitpose.datasets.interhand import read_interhand2d
from vitpose.datasets.mpii import read_mpii
from vitpose.errors import InputError
from vitpose.metrics import (
    bbox_normalizer,
    evaluate,
    keypoint_auc,
    keypoint_epe,
    keypoint_pck,
    mpii_pckh,
    pckh_per_joint,
)

# Sigmas written out from the reference (§4.1, §4.2, §4.4, §4.6, §4.7), not read from vitpose.
COCO_SIGMAS = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
               0.107, 0.107, 0.087, 0.087, 0.089, 0.089]
AIC_SIGMAS = [0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144, 0.03909642,
              0.03686941, 0.01981803, 0.03843971, 0.03412318, 0.02415081, 0.01291456, 0.01236173]
CROWDPOSE_SIGMAS = [0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089,
                    0.089, 0.079, 0.079]
AP10K_SIGMAS = [0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.072, 0.062, 0.079, 0.072, 0.062,
                0.107, 0.087, 0.089, 0.107, 0.087, 0.089]
FOOT_SIGMAS = [0.068, 0.066, 0.066, 0.092, 0.094, 0.094]

OKS_FILES = {
    "coco": ("coco/test_coco.json", COCO_SIGMAS, True),
    "aic": ("aic/test_aic.json", AIC_SIGMAS, False),
    "crowdpose": ("crowdpose/test_crowdpose.json", CROWDPOSE_SIGMAS, False),
    "ochuman": ("ochuman/test_ochuman.json", COCO_SIGMAS, True),
    "ap10k": ("ap10k/test_ap10k.json", AP10K_SIGMAS, True),
}
WB_KEYS = ("keypoints", "foot_kpts", "face_kpts", "lefthand_kpts", "righthand_kpts")


def _load(path: Path):
    return json.loads(path.read_text())


def _gt_as_results(gt: dict, wholebody: bool = False) -> list[dict]:
    out = []
    for ann in gt["annotations"]:
        keys = WB_KEYS if wholebody else ("keypoints",)
        kp = np.concatenate([np.array(ann[k], float).reshape(-1, 3) for k in keys])
        kp[:, 2] = (kp[:, 2] > 0).astype(float)  # score 1 on labelled joints, 0 elsewhere
        out.append({"image_id": ann["image_id"], "category_id": ann["category_id"],
                    "keypoints": kp.reshape(-1).tolist(), "score": 1.0})
    return out


# ---- perfect predictions on every sample folder ---------------------------------------------


@pytest.mark.parametrize("name", sorted(OKS_FILES))
def test_gt_as_predictions_oks(data_dir, name):
    rel, _, _ = OKS_FILES[name]
    gt = _load(data_dir / rel)
    out = evaluate(name, data_dir / rel, _gt_as_results(gt))
    one = pytest.approx(1.0, abs=1e-12)  # precision is tp / (tp + fp + eps)
    for key in ("AP", "AP50", "AP75", "AR", "AR50", "AR75"):
        assert out[key] == one, (key, out)
    if name == "crowdpose":
        assert out["AP (M)"] == one and out["AP (E)"] == out["AP (H)"] == -1.0
    else:
        assert out["AP (L)"] == one and out["AP (M)"] in (one, -1.0)


def test_gt_as_predictions_wholebody(data_dir, tmp_path):
    path = data_dir / "coco/test_coco_wholebody.json"
    gt = _load(path)
    results = _gt_as_results(gt, wholebody=True)
    out = evaluate("coco_wholebody", path, results)
    for part in ("body", "foot", "face", "lefthand", "righthand", "wholebody"):
        assert out[f"{part} AP"] == 1.0 and out[f"{part} AR"] == 1.0, part
    assert out["AP"] == out["wholebody AP"] == 1.0
    # the same results with separate part fields, from a json file
    split = []
    for res in results:
        kp = np.array(res["keypoints"]).reshape(-1, 3)
        cuts = np.cumsum([0, 17, 6, 68, 21, 21])
        entry = dict(res)
        for key, lo, hi in zip(WB_KEYS, cuts[:-1], cuts[1:]):
            entry[key] = kp[lo:hi].reshape(-1).tolist()
        split.append(entry)
    res_path = tmp_path / "wb_results.json"
    res_path.write_text(json.dumps(split))
    assert evaluate("wholebody", path, res_path) == out


def test_gt_as_predictions_mpii(data_dir, tmp_path):
    path = data_dir / "mpii/test_mpii.json"
    recs = read_mpii(path)
    boxes = np.array([[r.keypoints[9] - 15, r.keypoints[9] + 15] for r in recs])
    np.savez(tmp_path / "heads.npz", headboxes=boxes)
    results = [{"ann_id": r.ann_id, "keypoints": np.c_[r.keypoints, np.ones(16)].tolist()}
               for r in reversed(recs)]
    out = evaluate("mpii", path, results, head_boxes=tmp_path / "heads.npz")
    assert out == {k: 100.0 for k in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee",
                                      "Ankle", "PCKh", "PCKh@0.1")}


def test_gt_as_predictions_interhand(data_dir):
    path = data_dir / "interhand2.6m/test_interhand2.6m_data.json"
    recs = read_interhand2d(path)
    out = evaluate("interhand2d", path, np.stack([r.keypoints for r in recs]))
    assert out == {"PCK": 1.0, "AUC": pytest.approx(0.95), "EPE": 0.0}
    listed = [{"ann_id": r.ann_id, "keypoints": r.keypoints.tolist()} for r in recs[::-1]]
    assert evaluate("interhand2d", path, listed)["EPE"] == 0.0


def test_mpii_official_gt_layout_matches_json(data_dir, tmp_path):
    path = data_dir / "mpii/test_mpii.json"
    raw = _load(path)
    recs = read_mpii(path)
    rng = np.random.default_rng(0)
    preds = np.stack([r.keypoints for r in recs]) + rng.normal(0, 12, size=(5, 16, 2))
    boxes = np.array([[r.keypoints[9] - 25, r.keypoints[9] + 25] for r in recs])  # [N, 2, 2]
    np.savez(tmp_path / "json_gt.npz", headboxes=boxes)
    np.savez(tmp_path / "mat_gt.npz",
             headboxes_src=np.transpose(boxes, (1, 2, 0)),
             pos_gt_src=np.transpose(np.array([e["joints"] for e in raw], float), (1, 2, 0)),
             jnt_missing=1 - np.array([e["joints_vis"] for e in raw]).T)
    a = evaluate("mpii", path, preds, head_boxes=tmp_path / "json_gt.npz")
    b = evaluate("mpii", path, preds, head_boxes=tmp_path / "mat_gt.npz")
    assert a == pytest.approx(b)
    assert 0 < a["PCKh"] < 100

    # the official MATLAB file itself (SciPy reads it): the same keys, dtypes as in
    # mpii_gt_val.mat (uint8 flags, a cell array of joint names beside the arrays)
    scipy_io = pytest.importorskip("scipy.io")
    with np.load(tmp_path / "mat_gt.npz") as npz:
        mat = dict(npz)
    mat["jnt_missing"] = mat["jnt_missing"].astype(np.uint8)
    mat["dataset_joints"] = np.array([[np.array([n]) for n in ("rank", "rkne", "rhip", "lhip",
                                       "lkne", "lank", "pelv", "thor", "neck", "head", "rwri",
                                       "relb", "rsho", "lsho", "lelb", "lwri")]], dtype=object)
    scipy_io.savemat(tmp_path / "mpii_gt_val.mat", mat)
    c = evaluate("mpii", path, preds, head_boxes=tmp_path / "mpii_gt_val.mat")
    assert c == pytest.approx(b)
    (tmp_path / "broken.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated")
    with pytest.raises(InputError, match="broken.mat"):
        evaluate("mpii", path, preds, head_boxes=tmp_path / "broken.mat")


# ---- small cases by hand ---------------------------------------------------------------------


def test_pckh_by_hand():
    gt = np.zeros((2, 16, 2))
    pred = np.zeros((2, 16, 2))
    heads = np.array([10.0, 20.0])
    visible = np.ones((2, 16), bool)
    pred[0, :, 0] = 4.0          # 0.4 head sizes: correct
    pred[0, 9, 0] = 6.0          # head_top 0.6: wrong
    pred[0, 0, 0] = 5.0          # right_ankle exactly 0.5: correct (<=)
    pred[0, 12, 0] = 0.0         # right_shoulder exact
    pred[0, 13, 0] = 1.05        # left_shoulder 0.105: outside PCKh@0.1 (pckAll[10] = 0.10)
    pred[1, :, 0] = 9.0          # 0.45: correct
    pred[1, 15, 0] = 11.0        # left_wrist 0.55: wrong
    pred[1, 12, 0] = 0.0
    pred[1, 13, 0] = 2.0         # left_shoulder exactly 0.1: inside PCKh@0.1 (<=)
    visible[1, 4] = False        # left_knee not labelled in sample 1
    out = mpii_pckh(pred, gt, visible, heads)
    assert out["Head"] == 50.0
    assert out["Wrist"] == 75.0
    assert out["Shoulder"] == out["Elbow"] == out["Hip"] == out["Knee"] == out["Ankle"] == 100.0
    # 14 joints without pelvis/thorax, 27 visible samples, 25 correct
    assert out["PCKh"] == pytest.approx(100 * 25 / 27)
    # at 0.1: both right shoulders and sample 1's left shoulder (the old row 11, 0.11, also
    # counted sample 0's left shoulder at 0.105)
    assert out["PCKh@0.1"] == pytest.approx(100 * 3 / 27, abs=1e-5)
    pck, counts = pckh_per_joint(pred, gt, visible, heads, thr=0.1)  # an exact 0.1
    assert pck[12] == 100.0 and pck[13] == 50.0 and counts[4] == 1


def test_pck_auc_epe_by_hand():
    gt = np.zeros((2, 3, 2))
    pred = np.zeros((2, 3, 2))
    mask = np.ones((2, 3), bool)
    pred[0, :, 0] = [1.0, 3.3, 2.0]
    pred[1, :, 0] = [6.6, 0.0, 2.0]
    mask[1, 1] = False
    norm = np.array([[10.0, 10.0], [20.0, 20.0]])
    acc, mean, count = keypoint_pck(pred, gt, mask, 0.2, norm)
    # k0: 0.1 ok, 0.33 no | k1: 0.33 no | k2: 0.2 is not < 0.2, 0.1 ok
    assert acc.tolist() == [0.5, 0.0, 0.5] and mean == pytest.approx(1 / 3) and count == 3
    # AUC over t = 0, .05, ..., .95 with a 30 px normaliser (worked out in the docstring above)
    assert keypoint_auc(pred, gt, mask, 30.0) == pytest.approx((1 / 6 + 1 / 2 + 5 / 6 + 5 / 6
                                                                + 15) / 20)
    assert keypoint_epe(pred, gt, mask) == pytest.approx((1 + 3.3 + 2 + 6.6 + 2) / 5)
    # a sample with a zero normaliser is left out
    acc2, _, _ = keypoint_pck(pred, gt, mask, 0.2, np.array([[10.0, 10.0], [0.0, 20.0]]))
    assert acc2.tolist() == [1.0, 0.0, 0.0]
    np.testing.assert_array_equal(bbox_normalizer([[0, 0, 4, 9], [1, 1, 8, 2]]),
                                  [[9, 9], [8, 8]])
    np.testing.assert_array_equal(bbox_normalizer([[0, 0, 4, 9]], "wh"), [[4, 9]])


# ---- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case, expect", [
    ("image", ("results[2]", "image_id 4242", "not in the ground truth")),
    ("count", ("results[1]", "'keypoints'", "48 values, expected 51")),
    ("nan", ("results[0]", "'keypoints'", "NaN")),
    ("score", ("results[3]", "'score'")),
])
def test_malformed_results(data_dir, tmp_path, case, expect):
    gt = _load(data_dir / "coco/test_coco.json")
    results = _gt_as_results(gt)
    if case == "image":
        results[2]["image_id"] = 4242
    elif case == "count":
        results[1]["keypoints"] = results[1]["keypoints"][:48]
    elif case == "nan":
        results[0]["keypoints"][7] = float("nan")
    elif case == "score":
        del results[3]["score"]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    with pytest.raises(InputError) as info:
        evaluate("coco", data_dir / "coco/test_coco.json", path)
    msg = str(info.value)
    assert str(path) in msg
    for part in expect:
        assert part in msg, msg


def test_other_evaluation_errors(data_dir, tmp_path):
    coco = data_dir / "coco/test_coco.json"
    with pytest.raises(InputError, match="known datasets"):
        evaluate("cocoo", coco, [])
    with pytest.raises(InputError, match="list of results"):
        evaluate("coco", coco, {"image_id": 1})
    ap10k = data_dir / "ap10k/test_ap10k.json"
    res = _gt_as_results(_load(ap10k))
    del res[0]["category_id"]
    with pytest.raises(InputError, match=r"results\[0\].*'category_id'"):
        evaluate("ap10k", ap10k, res)
    aic = data_dir / "aic/test_aic.json"
    with pytest.raises(InputError, match=r"annotations\[0\].*'area'"):
        evaluate("aic", aic, _gt_as_results(_load(aic)), use_area=True)
    mpii = data_dir / "mpii/test_mpii.json"
    with pytest.raises(InputError, match="head boxes"):
        evaluate("mpii", mpii, np.zeros((5, 16, 2)))
    np.savez(tmp_path / "h.npz", headboxes=np.ones((5, 4)))
    with pytest.raises(InputError, match=r"no result for .*ann_id \[3\]"):
        evaluate("mpii", mpii, [{"ann_id": i, "keypoints": [0.0] * 32} for i in (0, 1, 2, 4)],
                 head_boxes=tmp_path / "h.npz")
    with pytest.raises(InputError, match=r"results\[1\] \(ann_id=9\).*not a ground-truth"):
        evaluate("mpii", mpii, [{"ann_id": i, "keypoints": [0.0] * 32} for i in (0, 9, 2, 3, 4)],
                 head_boxes=tmp_path / "h.npz")
    hand = data_dir / "interhand2.6m/test_interhand2.6m_data.json"
    with pytest.raises(InputError, match=r"shape \[6, 21, 2 or 3\]"):
        evaluate("interhand2d", hand, np.zeros((5, 21, 2)))


def test_empty_results_score_zero(data_dir):
    out = evaluate("coco", data_dir / "coco/test_coco.json", [])
    assert out["AP"] == 0.0 and out["AR"] == 0.0
