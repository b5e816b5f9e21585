"""Geometry and augmentation: parity with the official fixtures, plus properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitpose import transforms as T

COCO_FLIP_PAIRS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]
COCO_UPPER = list(range(11))


@pytest.fixture(scope="module")
def pp(fixtures_dir):
    z = np.load(fixtures_dir / "postprocess.npz")
    return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def tg(fixtures_dir):
    z = np.load(fixtures_dir / "targets.npz")
    return {k: z[k] for k in z.files}


# ------------------------------------------------------------------------------ parity


def test_box_to_center_scale_matches_fixture(pp):
    center, scale = T.box_xywh_to_center_scale(pp["bbox_xywh"], (192, 256), 1.25)
    assert center.dtype == np.float32 and scale.dtype == np.float32
    np.testing.assert_array_equal(center, pp["center"])
    np.testing.assert_array_equal(scale, pp["scale"])
    c1, s1 = T.box_xywh_to_center_scale(pp["bbox_xywh"][1])
    np.testing.assert_array_equal(c1, pp["center"][1])
    np.testing.assert_array_equal(s1, pp["scale"][1])


def test_center_scale_to_box_round_trip():
    boxes = np.array([[10.0, 20.0, 75.0, 100.0], [0.0, 0.0, 30.0, 40.0]])  # aspect 0.75
    center, scale = T.box_xywh_to_center_scale(boxes, padding=1.0)
    xyxy = T.center_scale_to_box_xyxy(center, scale)
    np.testing.assert_allclose(xyxy, [[10, 20, 85, 120], [0, 0, 30, 40]], atol=1e-4)


def test_get_affine_transform_matches_fixture(pp):
    for i in range(len(pp["affine_rot"])):
        m = T.get_affine_transform(pp["affine_center"][i], pp["affine_scale"][i],
                                   pp["affine_rot"][i], pp["affine_output_size"][i],
                                   shift=pp["affine_shift"][i], inv=bool(pp["affine_inv"][i]))
        assert m.shape == (2, 3) and m.dtype == np.float64
        np.testing.assert_allclose(m, pp["affine_matrix"][i], rtol=1e-6, atol=1e-6,
                                   err_msg=f"case {i}")


def test_get_warp_matrix_matches_fixture(pp):
    for i in range(len(pp["warp_theta"])):
        m = T.get_warp_matrix(pp["warp_theta"][i], pp["warp_size_input"][i],
                              pp["warp_size_dst"][i], pp["warp_size_target"][i])
        assert m.dtype == np.float32
        np.testing.assert_allclose(m, pp["warp_matrix"][i], rtol=1e-6, atol=1e-5,
                                   err_msg=f"case {i}")


def test_crop_matrix_udp_uses_topdown_affine_arguments(pp):
    # The first 6 warp cases are (rot, 2c, size - 1, 200 s): recover c and s and rebuild.
    for i in range(6):
        c = pp["warp_size_input"][i] / 2
        s = pp["warp_size_target"][i] / 200
        size = pp["warp_size_dst"][i] + 1
        m = T.crop_matrix(c, s, pp["warp_theta"][i], size, use_udp=True)
        np.testing.assert_allclose(m, pp["warp_matrix"][i], rtol=1e-5, atol=1e-3)


def test_transform_preds_matches_fixture(pp):
    for i in range(len(pp["tp_use_udp"])):
        out = T.transform_preds(pp["tp_coords"][i], pp["tp_center"][i], pp["tp_scale"][i],
                                pp["tp_output_size"][i], bool(pp["tp_use_udp"][i]))
        np.testing.assert_allclose(out, pp["tp_result"][i], atol=1e-3, rtol=0)
    # vectorised over instances (same output size for all four cases)
    for udp in (False, True):
        idx = np.flatnonzero(pp["tp_use_udp"] == udp)
        out = T.transform_preds(pp["tp_coords"][idx], pp["tp_center"][idx], pp["tp_scale"][idx],
                                (48, 64), udp)
        np.testing.assert_allclose(out, pp["tp_result"][idx], atol=1e-3, rtol=0)


@pytest.mark.parametrize("shift", [False, True])
def test_flip_back_matches_fixture_numpy_and_torch(pp, shift):
    ref = pp["flip_back_shifted_output" if shift else "flip_back_output"]
    out = T.flip_back_heatmaps(pp["flip_input"], pp["flip_pairs"], shift=shift)
    np.testing.assert_array_equal(out, ref)
    out_t = T.flip_back_heatmaps_torch(torch.from_numpy(pp["flip_input"]), pp["flip_pairs"],
                                       shift=shift)
    assert isinstance(out_t, torch.Tensor)
    np.testing.assert_array_equal(out_t.numpy(), ref)


def test_flip_back_torch_keeps_autograd():
    x = torch.randn(2, 17, 8, 6, requires_grad=True)
    T.flip_back_heatmaps_torch(x, COCO_FLIP_PAIRS, shift=True).sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize("case", [0, 1, 2, 3])
def test_topdown_affine_joints_match_fixture(tg, case):
    p = f"affine{case}_"
    use_udp = bool(tg[p + "use_udp"])
    m = T.crop_matrix(tg[p + "center"], tg[p + "scale"], float(tg[p + "rotation"]), (192, 256),
                      use_udp)
    out = T.affine_joints(tg[p + "joints_in"], tg[p + "vis"], m, use_udp)
    assert out.shape == (17, 3)
    np.testing.assert_allclose(out, tg[p + "joints_out"], atol=1e-3, rtol=0)
    if not use_udp:  # invisible joints keep their input coordinates
        inv = tg[p + "vis"][:, 0] == 0
        assert inv.any()
        np.testing.assert_array_equal(out[inv], tg[p + "joints_in"][inv])


@pytest.mark.parametrize("case", [1, 3])
def test_topdown_affine_image_matches_fixture(tg, case):
    p = f"affine{case}_"
    crop, joints = T.top_down_affine(tg[p + "img_in"], tg[p + "joints_in"], tg[p + "vis"],
                                     tg[p + "center"], tg[p + "scale"], float(tg[p + "rotation"]),
                                     (192, 256), bool(tg[p + "use_udp"]))
    ref = tg[p + "img_out"]
    assert crop.shape == ref.shape and crop.dtype == np.uint8
    diff = np.abs(crop.astype(np.int16) - ref.astype(np.int16))
    # OpenCV's fixed-point bilinear warp: identical matrices give identical pixels; allow a
    # rounding difference on a handful of pixels.
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3
    np.testing.assert_allclose(joints, tg[p + "joints_out"], atol=1e-3)


def test_crop_boxes_equals_single_crops(tg):
    img = tg["affine1_img_in"]
    centers = np.array([[30.0, 25.0], [50.0, 40.0]], np.float32)
    scales = np.array([[0.2, 0.26666667], [0.3, 0.4]], np.float32)
    for udp in (False, True):
        crops, mats = T.crop_boxes(img, centers, scales, (192, 256), udp, rotations=[0, 10])
        assert crops.shape == (2, 256, 192, 3) and mats.shape == (2, 2, 3)
        for i, rot in enumerate([0, 10]):
            m = T.crop_matrix(centers[i], scales[i], rot, (192, 256), udp)
            np.testing.assert_array_equal(crops[i], T.warp_crop(img, m, (192, 256)))


# ------------------------------------------------------------------------------ consistency


@pytest.mark.parametrize("use_udp", [False, True])
def test_crop_then_transform_preds_round_trip(use_udp):
    """image -> crop (crop_matrix) -> heatmap -> image (transform_preds) is the identity."""
    rng = np.random.default_rng(0)
    center = np.array([321.5, 200.25], np.float32)
    scale = np.array([1.2, 1.6], np.float32)
    pts = center + rng.uniform(-100, 100, size=(50, 2))
    crop_pts = T.affine_points(pts, T.crop_matrix(center, scale, 0.0, (192, 256), use_udp))
    if use_udp:  # UDP: pixel-centre intervals, (size - 1) ratios
        hm = crop_pts * np.array([47 / 191, 63 / 255])
    else:
        hm = crop_pts / 4.0
    back = T.transform_preds(hm[None], center[None], scale[None], (48, 64), use_udp)[0]
    np.testing.assert_allclose(back, pts, atol=2e-3)


def test_crop_matrix_maps_center_to_crop_center():
    c, s = np.array([100.0, 80.0], np.float32), np.array([0.96, 1.28], np.float32)
    classic = T.affine_points(c, T.crop_matrix(c, s, 30.0, (192, 256), False))
    udp = T.affine_points(c, T.crop_matrix(c, s, 30.0, (192, 256), True))
    np.testing.assert_allclose(classic, [96, 128], atol=1e-3)
    np.testing.assert_allclose(udp, [95.5, 127.5], atol=1e-3)


def test_rotation_sense_of_classic_and_udp_differ():
    """Pin the official quirk: +90 degrees turns the classic crop CCW and the UDP crop CW."""
    c, s = np.array([100.0, 100.0], np.float32), np.array([0.96, 1.28], np.float32)
    right_of_center = np.array([150.0, 100.0])
    classic = T.affine_points(right_of_center, T.crop_matrix(c, s, 90.0, (192, 256), False))
    udp = T.affine_points(right_of_center, T.crop_matrix(c, s, 90.0, (192, 256), True))
    assert classic[1] < 128 - 40 and abs(classic[0] - 96) < 1e-3  # above the centre
    assert udp[1] > 127.5 + 40 and abs(udp[0] - 95.5) < 1e-3  # below the centre


# ------------------------------------------------------------------------------ augmentations


def _person(rng):
    joints = np.zeros((17, 3), np.float32)
    joints[:11, 0] = rng.uniform(80, 120, 11)
    joints[:11, 1] = rng.uniform(40, 100, 11)  # upper body high in the image
    joints[11:, 0] = rng.uniform(80, 120, 6)
    joints[11:, 1] = rng.uniform(150, 250, 6)  # lower body low in the image
    vis = np.ones((17, 3), np.float32)
    vis[:, 2] = 0
    return joints, vis


def test_flip_joints_twice_is_identity_and_swaps_pairs():
    rng = np.random.default_rng(0)
    joints, vis = _person(rng)
    vis[4] = 0
    once, vis1 = T.flip_joints(joints, vis, 200, COCO_FLIP_PAIRS)
    # left/right swapped and mirrored about (W - 1) / 2
    np.testing.assert_allclose(once[1, 0], 199 - joints[2, 0], atol=1e-4)
    np.testing.assert_allclose(once[2, :2], [199 - joints[1, 0], joints[1, 1]], atol=1e-4)
    np.testing.assert_array_equal(vis1[3], vis[4])  # visibility swapped with the pair
    assert np.all(once[3] == 0)  # invisible joint (was 4) zeroed, as the original
    twice, vis2 = T.flip_joints(once, vis1, 200, COCO_FLIP_PAIRS)
    ok = vis[:, 0] > 0
    np.testing.assert_allclose(twice[ok], joints[ok], atol=1e-4)
    np.testing.assert_array_equal(vis2, vis)


def test_random_flip_image_joints_center():
    rng = np.random.default_rng(0)
    joints, vis = _person(rng)
    img = np.arange(60 * 200 * 3, dtype=np.uint8).reshape(60, 200, 3)
    out, j, v, c, flipped = T.random_flip(img, joints, vis, [50.0, 30.0], COCO_FLIP_PAIRS, rng,
                                          prob=1.0)
    assert flipped
    np.testing.assert_array_equal(out, img[:, ::-1])
    np.testing.assert_allclose(c, [149.0, 30.0])
    np.testing.assert_allclose(j[2, 0], 199 - joints[1, 0], atol=1e-4)
    out, j, v, c, flipped = T.random_flip(img, joints, vis, [50.0, 30.0], COCO_FLIP_PAIRS, rng,
                                          prob=0.0)
    assert not flipped and out is img
    np.testing.assert_array_equal(j, joints)
    flips = [T.random_flip(img, joints, vis, [50, 30], COCO_FLIP_PAIRS, rng)[4]
             for _ in range(400)]
    assert 0.4 < np.mean(flips) < 0.6


def test_half_body_selects_only_upper_or_lower():
    rng = np.random.default_rng(1)
    joints, vis = _person(rng)
    upper_c = joints[:11, :2].mean(axis=0)
    lower_c = joints[11:, :2].mean(axis=0)
    picks = []
    for _ in range(500):
        c, s = T.half_body_center_scale(joints, vis, COCO_UPPER, rng)
        if np.allclose(c, upper_c, atol=1e-4):
            picks.append(1)
            sel = joints[:11, :2]
        else:
            np.testing.assert_allclose(c, lower_c, atol=1e-4)
            picks.append(0)
            sel = joints[11:, :2]
        w, h = sel.max(0) - sel.min(0)
        w, h = max(w, 0.75 * h), max(h, w / 0.75)
        np.testing.assert_allclose(s, np.array([w, h]) / 200 * 1.5, rtol=1e-5)
        np.testing.assert_allclose(s[0] / s[1], 0.75, rtol=1e-5)  # crop aspect ratio
    # upper when N(0,1) < 0.5: P = 0.691
    assert 0.62 < np.mean(picks) < 0.76


def test_half_body_fallbacks_and_trigger():
    rng = np.random.default_rng(2)
    joints, vis = _person(rng)
    only_upper = vis.copy()
    only_upper[11:] = 0
    for _ in range(20):  # lower has < 3 joints -> always upper
        c, _ = T.half_body_center_scale(joints, only_upper, COCO_UPPER, rng)
        np.testing.assert_allclose(c, joints[:11, :2].mean(0), atol=1e-4)
    one = np.zeros_like(vis)
    one[0] = 1
    assert T.half_body_center_scale(joints, one, COCO_UPPER, rng) is None
    # trigger needs > 8 visible joints
    few = np.zeros_like(vis)
    few[:8] = 1
    c0, s0 = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    for _ in range(20):
        c, s, applied = T.random_half_body(c0, s0, joints, few, COCO_UPPER, rng, prob=1.0)
        assert not applied
        np.testing.assert_array_equal(c, c0)
    c, s, applied = T.random_half_body(c0, s0, joints, vis, COCO_UPPER, rng, prob=1.0)
    assert applied and not np.allclose(c, c0)
    applied = [T.random_half_body(c0, s0, joints, vis, COCO_UPPER, rng)[2] for _ in range(500)]
    assert 0.22 < np.mean(applied) < 0.38


def test_random_scale_rotation_ranges():
    rng = np.random.default_rng(3)
    base = np.array([1.0, 2.0], np.float32)
    factors, rots = [], []
    for _ in range(2000):
        s, r = T.random_scale_rotation(base, rng)
        np.testing.assert_allclose(s[1] / s[0], 2.0, rtol=1e-6)  # same factor on both axes
        factors.append(s[0])
        rots.append(r)
    factors, rots = np.array(factors), np.array(rots)
    assert factors.min() >= 0.5 and factors.max() <= 1.5
    assert np.isclose(factors.min(), 0.5) and np.isclose(factors.max(), 1.5)  # clipped tails
    assert rots.min() >= -80 and rots.max() <= 80
    assert np.any(np.abs(rots) == 80)
    assert 0.34 < np.mean(rots == 0) < 0.46  # rotation with probability 0.6
    assert 30 < rots[rots != 0].std() < 45


def test_center_jitter_is_drawn_per_call():
    rng = np.random.default_rng(4)
    center, wh = np.array([100.0, 200.0]), np.array([50.0, 80.0])
    outs = np.array([T.random_center_jitter(center, wh, rng) for _ in range(1000)])
    moved = np.any(outs != center.astype(np.float32), axis=1)
    assert 0.25 < moved.mean() < 0.35  # probability 0.3
    assert len({tuple(o) for o in outs[moved]}) == moved.sum()  # fresh draw every call
    assert np.all(np.abs(outs - center) <= 0.2 * wh + 1e-4)  # up to +/-20 % of the box
    np.testing.assert_array_equal(T.random_center_jitter(center, wh, rng, prob=0.0), center)
