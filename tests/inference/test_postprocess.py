"""Rescoring and OKS-NMS: parity with the official fixtures, plus properties."""

from __future__ import annotations

import numpy as np
import pytest

from vitpose.inference.postprocess import oks_iou, oks_nms, rescore_instances


@pytest.fixture(scope="module")
def pp(fixtures_dir):
    z = np.load(fixtures_dir / "postprocess.npz")
    return {k: z[k] for k in z.files}


@pytest.mark.parametrize("thr", ["0.9", "0.5"])
def test_oks_nms_matches_fixture(pp, thr):
    keep = oks_nms(pp["nms_keypoints"], pp["nms_scores"], pp["nms_areas"], pp["nms_sigmas"],
                   float(thr))
    assert keep.dtype == np.int64
    np.testing.assert_array_equal(keep, pp[f"nms_keep_thr{thr}"])


def test_oks_iou_matches_fixture(pp):
    k, a = pp["nms_keypoints"], pp["nms_areas"]
    ious = oks_iou(k[0], k[1:], a[0], a[1:], pp["nms_sigmas"])
    assert ious.shape == (6,) and ious.dtype == np.float32
    np.testing.assert_allclose(ious, pp["oks_iou_0_vs_all"], rtol=1e-5, atol=1e-7)


def test_oks_iou_properties(pp):
    k, sig = pp["nms_keypoints"], pp["nms_sigmas"]
    assert np.allclose(oks_iou(k[0], k[:1], 100.0, [100.0], sig), 1.0)
    moved = k[0].copy()
    moved[:, 0] += 5.0
    small = oks_iou(k[0], moved[None], 100.0, [100.0], sig)[0]
    large = oks_iou(k[0], moved[None], 10000.0, [10000.0], sig)[0]
    assert 0 <= small < large < 1  # the same offset matters less for a larger instance
    # vis_thr: only keypoints confident in both poses count
    a = k[0].copy()
    b = k[0].copy()
    b[:, 0] += 50.0
    b[:3, :2] = a[:3, :2]  # three keypoints agree ...
    a[3:, 2] = 0.0  # ... and only those are confident in a
    assert np.isclose(oks_iou(a, b[None], 100.0, [100.0], sig, vis_thr=0.2)[0], 1.0)
    a[:, 2] = 0.0
    assert oks_iou(a, b[None], 100.0, [100.0], sig, vis_thr=0.2)[0] == 0.0


def test_oks_nms_edge_cases():
    sig = np.full(3, 0.05)
    pose = np.array([[10, 10, 1], [20, 20, 1], [30, 30, 1]], float)
    same = np.stack([pose, pose + [0.1, 0, 0], pose + [300, 300, 0]])
    keep = oks_nms(same, [0.5, 0.9, 0.7], [1000, 1000, 1000], sig, thr=0.9)
    np.testing.assert_array_equal(keep, [1, 2])  # highest first, duplicate removed
    assert oks_nms(np.zeros((0, 3, 3)), np.zeros(0), np.zeros(0), sig).size == 0
    with pytest.raises(ValueError):
        oks_nms(same, [0.5, 0.9], [1, 1, 1], sig)


def test_rescore_instances():
    ks = np.array([[0.9, 0.1, 0.5, 0.2], [0.1, 0.05, 0.2, 0.0], [0.3, 0.3, 0.3, 0.3]])
    out = rescore_instances(ks, np.array([0.8, 0.9, 0.5]), vis_thr=0.2)
    # mean of scores strictly above 0.2, times the box score; none above -> 0
    np.testing.assert_allclose(out, [0.7 * 0.8, 0.0, 0.3 * 0.5])
    with pytest.raises(ValueError):
        rescore_instances(ks, np.array([1.0, 1.0]))
