"""Heatmap codecs: parity with the official decoding / target fixtures, plus properties."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from vitpose.codecs import (
    CODECS,
    MSRAHeatmap,
    UDPHeatmap,
    build_codec,
    decode_heatmaps,
    get_max_preds,
)
from vitpose.codecs._ops import gaussian_blur, heatmap_to_image
from vitpose.transforms import transform_preds

# fixture variant -> our decode mode
VARIANTS = {"none": None, "default": "default", "unbiased_k11": "unbiased", "udp_k11": "udp"}


@pytest.fixture(scope="module")
def pp(fixtures_dir):
    z = np.load(fixtures_dir / "postprocess.npz")
    return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def tg(fixtures_dir):
    z = np.load(fixtures_dir / "targets.npz")
    return {k: z[k] for k in z.files}


def _codec_for(mode):
    return UDPHeatmap() if mode == "udp" else MSRAHeatmap(post_process=mode)


# ------------------------------------------------------------------------------ decoding


def test_get_max_preds_matches_fixture(pp):
    coords, maxvals = get_max_preds(pp["heatmaps"])
    np.testing.assert_array_equal(coords, pp["get_max_preds_preds"])
    np.testing.assert_array_equal(maxvals, pp["get_max_preds_maxvals"][..., 0])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_decode_heatmaps_matches_fixture(pp, variant):
    heatmaps = pp["heatmaps"]
    before = heatmaps.copy()
    coords, scores = decode_heatmaps(heatmaps, pp["center"], pp["scale"], VARIANTS[variant])
    np.testing.assert_array_equal(heatmaps, before)  # input untouched
    assert coords.shape == (4, 17, 2) and coords.dtype == np.float32
    assert scores.shape == (4, 17) and scores.dtype == np.float32
    np.testing.assert_allclose(coords, pp[f"decode_{variant}_preds"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(scores, pp[f"decode_{variant}_maxvals"][..., 0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_codec_decode_heatmap_coords_match_fixture(pp, variant):
    coords, scores = _codec_for(VARIANTS[variant]).decode(pp["heatmaps"])
    np.testing.assert_allclose(coords, pp[f"decode_{variant}_heatmap_coords"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(scores, pp[f"decode_{variant}_maxvals"][..., 0], atol=1e-6, rtol=0)


def test_decode_edge_cases_of_sample_3(pp):
    """The documented edge cases, asserted explicitly (they are also in the full comparisons)."""
    hm = pp["heatmaps"]
    argmax, maxvals = get_max_preds(hm)
    # 3,4 all-zero and 3,2 all-negative maps: (-1, -1).
    np.testing.assert_array_equal(argmax[3, 4], [-1, -1])
    np.testing.assert_array_equal(argmax[3, 2], [-1, -1])
    assert maxvals[3, 4] == 0 and maxvals[3, 2] < 0
    # 3,5 exact tie: the first peak in row-major order.
    flat = hm[3, 5].ravel()
    first = int(np.flatnonzero(flat == flat.max())[0])
    np.testing.assert_array_equal(argmax[3, 5], [first % 48, first // 48])
    default, _ = MSRAHeatmap(post_process="default").decode(hm)
    dark, _ = MSRAHeatmap(post_process="dark").decode(hm)
    # 3,0 peak on the left border and 3,9 peak at x=1: no quarter shift in x or y.
    np.testing.assert_array_equal(default[3, 0], argmax[3, 0])
    np.testing.assert_array_equal(default[3, 9], argmax[3, 9])
    # 3,3 peak at y=H-2: quarter shift applies, DARK Taylor step does not.
    assert argmax[3, 3, 1] == 62
    assert not np.array_equal(default[3, 3], argmax[3, 3])
    np.testing.assert_array_equal(dark[3, 3], argmax[3, 3])
    # 3,6 symmetric noise-free peak: sign(0) = 0, no shift at all.
    np.testing.assert_array_equal(default[3, 6], argmax[3, 6])
    # 3,2 with UDP: the refinement reads the previous map through the flat index (official
    # quirk); the fixture holds the official value.
    udp, _ = UDPHeatmap().decode(hm)
    np.testing.assert_allclose(udp[3, 2], pp["decode_udp_k11_heatmap_coords"][3, 2], atol=1e-4)
    assert not np.array_equal(udp[3, 2], [-1, -1])


def _peak(h, w, x, y, sigma=1.5, amp=1.0):
    xs, ys = np.arange(w)[None, :], np.arange(h)[:, None]
    return (amp * np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma ** 2))).astype(np.float32)


def test_refinement_border_conditions():
    """Synthetic asymmetric peaks pin the official border rules (the fixture's x=1 peak is
    symmetric, so it cannot tell them apart)."""
    h, w = 64, 48
    cases = [  # (x, y) sub-pixel peak -> integer arg-max at the given position
        (1.3, 30.0), (2.3, 30.0), (w - 2.3, 30.0), (w - 3.3, 30.0),
        (20.0, 1.3), (20.0, 2.3), (20.0, h - 2.3), (20.0, h - 3.3),
    ]
    maps = np.stack([_peak(h, w, x, y) for x, y in cases])[None]
    argmax, _ = get_max_preds(maps)
    quarter, _ = MSRAHeatmap(post_process="default").decode(maps)
    dark, _ = MSRAHeatmap(post_process="dark").decode(maps)
    moved_q = np.any(quarter[0] != argmax[0], axis=-1)
    moved_d = np.any(dark[0] != argmax[0], axis=-1)
    # quarter shift needs 1 < p < size - 1; DARK needs 1 < p < size - 2
    np.testing.assert_array_equal(moved_q, [False, True, True, True, False, True, True, True])
    np.testing.assert_array_equal(moved_d, [False, True, False, True, False, True, False, True])


def test_dark_udp_clips_blurred_map_at_50():
    """A huge peak is flat after clipping to 50, so DARK-UDP leaves the arg-max unchanged."""
    maps = np.stack([_peak(64, 48, 20.3, 30.4, sigma=2, amp=1000.0),
                     _peak(64, 48, 20.3, 30.4, sigma=2, amp=1.0)])[None]
    coords, _ = UDPHeatmap().decode(maps)
    np.testing.assert_allclose(coords[0, 0], [20, 30], atol=1e-5)
    np.testing.assert_allclose(coords[0, 1], [20.3, 30.4], atol=0.05)


def test_decode_accepts_torch_and_is_batch_consistent(pp):
    hm = pp["heatmaps"][:3]  # samples without the empty-map quirk
    for mode in VARIANTS.values():
        codec = _codec_for(mode)
        full, full_s = codec.decode(torch.from_numpy(hm))
        for i in range(hm.shape[0]):
            one, one_s = codec.decode(hm[i:i + 1])
            np.testing.assert_allclose(one[0], full[i], atol=1e-6)
            np.testing.assert_array_equal(one_s[0], full_s[i])


def test_decode_unbatched_loop_reference_agrees(pp):
    """A straightforward per-keypoint implementation of the quarter shift agrees with ours."""
    hm = pp["heatmaps"]
    argmax, _ = get_max_preds(hm)
    ours, _ = MSRAHeatmap(post_process="default").decode(hm)
    n, k, h, w = hm.shape
    for i in range(n):
        for j in range(k):
            x, y = int(argmax[i, j, 0]), int(argmax[i, j, 1])
            exp = argmax[i, j].copy()
            if 1 < x < w - 1 and 1 < y < h - 1:
                m = hm[i, j]
                exp += 0.25 * np.sign([m[y, x + 1] - m[y, x - 1], m[y + 1, x] - m[y - 1, x]])
            np.testing.assert_array_equal(ours[i, j], exp)


@pytest.mark.parametrize("zero_pad", [False, True])
@pytest.mark.parametrize("shape", [(64, 48), (13, 11), (16, 12), (4, 7)])
def test_stacked_blur_is_bit_exact_to_per_map_blur(zero_pad, shape):
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(3, 5) + shape).astype(np.float32)
    ours = gaussian_blur(maps, 11, zero_pad=zero_pad)
    ref = np.empty_like(maps)
    r = 5
    for idx in np.ndindex(maps.shape[:2]):
        if zero_pad:
            padded = np.zeros((shape[0] + 2 * r, shape[1] + 2 * r), np.float32)
            padded[r:-r, r:-r] = maps[idx]
            ref[idx] = cv2.GaussianBlur(padded, (11, 11), 0)[r:-r, r:-r]
        else:
            ref[idx] = cv2.GaussianBlur(maps[idx], (11, 11), 0)
    np.testing.assert_array_equal(ours, ref)


def test_heatmap_to_image_matches_transforms_transform_preds(pp):
    coords = pp["tp_coords"]
    for udp in (False, True):
        a = heatmap_to_image(coords, pp["tp_center"], pp["tp_scale"], (48, 64), udp)
        b = transform_preds(coords, pp["tp_center"], pp["tp_scale"], (48, 64), udp)
        np.testing.assert_array_equal(a, b)


def test_decode_errors():
    with pytest.raises(ValueError):
        decode_heatmaps(np.zeros((1, 2, 8, 8), np.float32), np.zeros((1, 2)), np.ones((1, 2)),
                        "megvii")
    with pytest.raises(ValueError):
        decode_heatmaps(np.zeros((2, 2, 8, 8), np.float32), np.zeros((1, 2)), np.ones((1, 2)))
    with pytest.raises(ValueError):
        UDPHeatmap().decode(np.zeros((2, 8, 8), np.float32))
    with pytest.raises(ValueError):
        build_codec("simcc")
    with pytest.raises(ValueError):
        MSRAHeatmap(post_process="megvii")
    assert isinstance(build_codec("UDP", sigma=3), UDPHeatmap)
    assert set(CODECS) == {"msra", "udp"}


# ------------------------------------------------------------------------------ targets


def _encodings(tg):
    return json.loads(str(tg["manifest_json"]))["encodings"]


@pytest.mark.parametrize("set_id", [0, 1, 2])
def test_targets_match_fixture(tg, set_id):
    joints = tg[f"set{set_id}_joints_3d"]
    visible = tg[f"set{set_id}_joints_3d_visible"]
    encodings = _encodings(tg)
    assert len(encodings) == 6
    for name, cfg in encodings.items():
        args, extra = cfg["transform_args"], cfg["ann_info_extra"]
        if args["encoding"] == "UDP":
            codec = build_codec("udp", sigma=args["sigma"])
        else:
            codec = build_codec("msra", sigma=args["sigma"],
                                unbiased=args.get("unbiased_encoding", False))
        target, weight = codec.encode(
            joints, visible,
            joint_weights=tg["joint_weights"] if extra.get("use_djw") else None,
            max_num_joints=extra.get("max_num_joints"))
        ref_t = tg[f"set{set_id}_{name}_target"]
        ref_w = tg[f"set{set_id}_{name}_target_weight"][:, 0]
        assert target.shape == ref_t.shape and target.dtype == np.float32, name
        np.testing.assert_allclose(target, ref_t, atol=1e-6, rtol=0, err_msg=name)
        np.testing.assert_array_equal(weight, ref_w, err_msg=name)


def test_target_special_cases(tg):
    joints, visible = tg["set1_joints_3d"], tg["set1_joints_3d_visible"]
    target, weight = MSRAHeatmap().encode(joints, visible)
    # joint 1: window ends exactly at x=0 -> weight 1 but an all-zero target (official quirk).
    assert weight[1] == 1 and target[1].max() == 0
    # joint 0: invisible -> weight 0, zero target.
    assert weight[0] == 0 and target[0].max() == 0
    # joint 8: inside -> integer peak of exactly 1.
    assert target[8].max() == 1
    udp_t, _ = UDPHeatmap().encode(joints, visible)
    assert 0.5 < udp_t[8].max() <= 1


def test_udp_encode_decode_round_trip():
    rng = np.random.default_rng(3)
    kpts = np.stack([rng.uniform(20, 170, 17), rng.uniform(20, 235, 17)], axis=-1)
    codec = UDPHeatmap()
    target, weight = codec.encode(kpts, np.ones(17))
    assert np.all(weight == 1)
    coords, scores = codec.decode(target[None])
    stride = np.array([191 / 47, 255 / 63])
    err = np.abs(coords[0] - kpts / stride).max()
    assert err < 0.05, err  # DARK recovers the sub-pixel centre of a clean Gaussian
    assert np.all(scores > 0.5)


def test_msra_encode_decode_round_trip_quarter_shift():
    kpts = np.array([[100.0, 100.0], [61.0, 150.0]])  # heatmap (25, 25) and (15.25, 37.5)
    codec = MSRAHeatmap()
    target, _ = codec.encode(kpts, np.ones(2))
    coords, _ = codec.decode(target[None])
    np.testing.assert_array_equal(coords[0, 0], [25, 25])
    # integer-centred target: symmetric neighbours -> no shift
    np.testing.assert_array_equal(coords[0, 1], [15, 38])


def test_encode_validation():
    codec = UDPHeatmap()
    with pytest.raises(ValueError):
        codec.encode(np.zeros((17, 2)), np.ones(16))
    with pytest.raises(ValueError):
        codec.encode(np.zeros((17, 2)), np.ones(17), max_num_joints=10)
    with pytest.raises(ValueError):
        codec.encode(np.zeros((17, 2)), np.ones(17), joint_weights=np.ones(3))
    t, w = codec.encode(np.full((17, 3), 50.0), np.ones((17, 3)), max_num_joints=20)
    assert t.shape == (20, 64, 48) and w.shape == (20,)
    assert np.all(w[17:] == 0) and np.all(t[17:] == 0)


def test_decode_accepts_half_precision_tensors():
    """Heatmaps of a model run in bf16/fp16 (numpy has no bfloat16) decode like float32 ones."""
    rng = np.random.default_rng(0)
    hm = torch.from_numpy(rng.random((2, 17, 64, 48), dtype=np.float32))
    center = np.array([[100.0, 120.0], [300.0, 200.0]], np.float32)
    scale = np.array([[1.0, 1.3], [2.0, 2.6]], np.float32)
    for dtype in (torch.bfloat16, torch.float16):
        low = hm.to(dtype)
        a = decode_heatmaps(low, center, scale, "udp")
        b = decode_heatmaps(low.float(), center, scale, "udp")
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
