"""`PoseEstimator`: the one test-time path against the official ViTPose numbers.

* flip test + DARK-UDP decoding of the official seeded models (``parity_vit_{classic,simple}.pt``)
  reproduce the official ``TopDown.forward_test`` keypoints and boxes;
* every decoding mode of the pipeline equals the codec functions and the official
  ``keypoints_from_heatmaps`` outputs (``postprocess.npz``) on the same heatmaps;
* the pipeline's flip-back (UDP: no shift; classic: one-column shift) equals the official
  ``flip_back`` (+ ``shift_heatmap``) outputs, and ``forward_heatmaps`` averages with it;
* the batching of crops across images routes every result back to its image and box;
* boxes are cleaned (clipped / dropped with warnings), no boxes give no instances, rescoring and
  OKS-NMS follow the official rules.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from tiny_models import tiny_simple_model

import vitpose
from vitpose.codecs import decode_heatmaps
from vitpose.errors import InputError
from vitpose.inference.pipeline import PoseEstimator, PoseInstance, TestSettings
from vitpose.transforms import box_xywh_to_center_scale, flip_back_heatmaps

COCO_FLIP_PAIRS = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]


@pytest.fixture(scope="module")
def tiny_model() -> vitpose.ViTPose:
    return tiny_simple_model()


def _parity(fixtures_dir, name: str) -> dict:
    return torch.load(fixtures_dir / f"parity_vit_{name}.pt", weights_only=True)


def _official_model(fx: dict) -> vitpose.ViTPose:
    model = vitpose.build_model(fx["config"]["official_model_cfg"])
    model.load_state_dict(fx["state_dict"], strict=True)  # every official key must be used
    return model.eval()


def _postprocess(fixtures_dir):
    return np.load(fixtures_dir / "postprocess.npz")


# ---------------------------------------------------------------------------------------------
# Official parity
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["classic", "simple"])
def test_flip_test_udp_matches_official_forward_test(fixtures_dir, name):
    fx = _parity(fixtures_dir, name)
    assert fx["config"]["test_cfg"]["use_udp"] and not fx["config"]["test_cfg"]["shift_heatmap"]
    est = PoseEstimator(_official_model(fx), dataset="coco",
                        settings=TestSettings(decode="udp", flip_test=True))
    assert np.array_equal(np.asarray(est.meta.flip_pairs), COCO_FLIP_PAIRS)
    metas = fx["flip_test"]["img_metas"]
    centers = np.stack([m["center"].numpy() for m in metas])
    scales = np.stack([m["scale"].numpy() for m in metas])

    coords, scores = est.predict_crops(fx["input"], centers, scales)

    ref = fx["flip_test"]["preds"].numpy()
    # README tolerance for the end-to-end flip test: 0.05 image px (a clean port gets ~1e-3).
    np.testing.assert_allclose(coords, ref[..., :2], atol=0.05, rtol=0)
    np.testing.assert_allclose(scores, ref[..., 2], atol=1e-4, rtol=0)

    # The official box record [cx, cy, sx, sy, area = (sx*200)*(sy*200), box score].
    boxes = fx["flip_test"]["boxes"].numpy()
    for i, meta in enumerate(metas):
        inst = PoseInstance(box_xywh=np.zeros(4, np.float32), box_score=float(meta["bbox_score"]),
                            keypoints=np.concatenate([coords[i], scores[i, :, None]], -1),
                            score=0.0, center=centers[i], scale=scales[i])
        np.testing.assert_allclose(np.r_[inst.center, inst.scale], boxes[i, :4], rtol=1e-6)
        np.testing.assert_allclose(inst.area, boxes[i, 4], rtol=1e-5)
        np.testing.assert_allclose(inst.box_score, boxes[i, 5], rtol=1e-6)


def test_flip_test_changes_the_result(fixtures_dir):
    """Without the flip test (or with the classic shift) the official numbers are NOT reached:
    the parity above is sensitive to the flip-back details."""
    fx = _parity(fixtures_dir, "classic")
    est = PoseEstimator(_official_model(fx), dataset="coco", settings=TestSettings(decode="udp"))
    metas = fx["flip_test"]["img_metas"]
    centers = np.stack([m["center"].numpy() for m in metas])
    scales = np.stack([m["scale"].numpy() for m in metas])
    ref = fx["flip_test"]["preds"].numpy()[..., :2]
    no_flip, _ = est.with_settings(flip_test=False).predict_crops(fx["input"], centers, scales)
    hm_shift = est.with_settings(decode="default").forward_heatmaps(fx["input"])
    shifted, _ = est.decode(hm_shift, centers, scales)  # UDP decode of shifted heatmaps
    assert np.abs(no_flip - ref).max() > 0.5
    assert np.abs(shifted - ref).max() > 0.5


@pytest.mark.parametrize("mode,key", [("udp", "udp_k11"), ("default", "default"),
                                      ("dark", "unbiased_k11")])
def test_decode_modes_equal_codecs_and_official(fixtures_dir, tiny_model, mode, key):
    z = _postprocess(fixtures_dir)
    hm, center, scale = z["heatmaps"], z["center"], z["scale"]
    est = PoseEstimator(tiny_model, dataset="coco", settings=TestSettings(decode=mode))
    assert est.settings.use_udp == (mode == "udp")

    coords, scores = est.decode(hm.copy(), center, scale)
    codec_coords, codec_scores = decode_heatmaps(hm.copy(), center, scale, mode=mode, kernel=11)
    np.testing.assert_array_equal(coords, codec_coords)
    np.testing.assert_array_equal(scores, codec_scores)
    # Official keypoints_from_heatmaps (README: 1e-3 image px), incl. the edge-case sample 3.
    np.testing.assert_allclose(coords, z[f"decode_{key}_preds"], atol=1e-3, rtol=0)
    np.testing.assert_allclose(scores, z[f"decode_{key}_maxvals"][..., 0], atol=1e-6, rtol=0)
    # torch heatmaps are accepted too
    t_coords, _ = est.decode(torch.from_numpy(hm), center, scale)
    np.testing.assert_array_equal(t_coords, coords)


def test_decode_modes_differ(fixtures_dir, tiny_model):
    """The three modes really are different decoders (so the test above can fail)."""
    z = _postprocess(fixtures_dir)
    est = PoseEstimator(tiny_model, dataset="coco")
    outs = {m: est.with_settings(decode=m).decode(z["heatmaps"], z["center"], z["scale"])[0]
            for m in ("udp", "default", "dark")}
    assert np.abs(outs["udp"] - outs["default"]).max() > 0.5
    assert np.abs(outs["dark"] - outs["default"]).max() > 0.1


@pytest.mark.parametrize("mode", ["udp", "default", "dark"])
def test_predict_crops_is_model_plus_codec(fixtures_dir, mode):
    """predict_crops = forward_heatmaps (model + flip test) followed by the codec, for each mode."""
    fx = _parity(fixtures_dir, "simple")
    est = PoseEstimator(_official_model(fx), dataset="coco", settings=TestSettings(decode=mode))
    metas = fx["flip_test"]["img_metas"]
    centers = np.stack([m["center"].numpy() for m in metas])
    scales = np.stack([m["scale"].numpy() for m in metas])
    coords, scores = est.predict_crops(fx["input"], centers, scales)
    hm = est.forward_heatmaps(fx["input"]).numpy()
    ref_coords, ref_scores = decode_heatmaps(hm, centers, scales, mode=mode, kernel=11)
    np.testing.assert_array_equal(coords, ref_coords)
    np.testing.assert_array_equal(scores, ref_scores)


def test_flip_back_matches_official(fixtures_dir, tiny_model):
    z = _postprocess(fixtures_dir)
    assert np.array_equal(z["flip_pairs"], COCO_FLIP_PAIRS)
    flipped = torch.from_numpy(z["flip_input"])
    udp = PoseEstimator(tiny_model, dataset="coco", settings=TestSettings(decode="udp"))
    classic = udp.with_settings(decode="default")
    assert not udp.settings.shift_heatmap and classic.settings.shift_heatmap
    np.testing.assert_array_equal(udp.flip_back(flipped).numpy(), z["flip_back_output"])
    np.testing.assert_array_equal(classic.flip_back(flipped).numpy(),
                                  z["flip_back_shifted_output"])
    assert not np.array_equal(z["flip_back_output"], z["flip_back_shifted_output"])


@pytest.mark.parametrize("mode,shift", [("udp", False), ("default", True)])
def test_forward_heatmaps_averages_with_flipped_back(fixtures_dir, mode, shift):
    fx = _parity(fixtures_dir, "classic")
    model = _official_model(fx)
    est = PoseEstimator(model, dataset="coco", settings=TestSettings(decode=mode))
    with torch.no_grad():
        plain = model(fx["input"]).numpy()
        flipped = model(fx["input"].flip(3)).numpy()
    expected = 0.5 * (plain + flip_back_heatmaps(flipped, COCO_FLIP_PAIRS, shift=shift))
    got = est.forward_heatmaps(fx["input"]).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got, 0.5 * (fx["output"].numpy() + flip_back_heatmaps(
        flipped, COCO_FLIP_PAIRS, shift=shift)), atol=1e-4, rtol=0)
    # no flip test: the plain heatmaps, in chunks of batch_size
    one = est.with_settings(flip_test=False)
    one.batch_size = 1
    np.testing.assert_allclose(one.forward_heatmaps(fx["input"]).numpy(), plain, atol=1e-5)


def test_settings_for_dataset():
    coco = TestSettings.for_dataset("coco")
    assert (coco.decode, coco.use_udp, coco.shift_heatmap) == ("udp", True, False)
    assert coco.padding == 1.25 and coco.flip_test
    aic = TestSettings.for_dataset("aic")
    assert (aic.decode, aic.shift_heatmap) == ("default", True)
    assert TestSettings.for_dataset("interhand2d").padding == 1.5
    assert TestSettings.for_dataset("coco", decode="dark", flip_test=False).decode == "dark"
    with pytest.raises(ValueError, match="decode must be one of"):
        TestSettings(decode="argmax")


# ---------------------------------------------------------------------------------------------
# Images and boxes
# ---------------------------------------------------------------------------------------------

def _image(h: int = 120, w: int = 100, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("mode", ["udp", "default"])
def test_crops_use_the_official_affine(fixtures_dir, tiny_model, mode):
    """The pipeline crop is ``cv2.warpAffine`` with the official matrix of its regime: UDP
    ``get_warp_matrix(0, 2c, size - 1, 200 s)`` or classic ``get_affine_transform(c, s, 0,
    size)`` (matrices recorded in postprocess.npz), bilinear, constant-0 border."""
    import cv2
    z = _postprocess(fixtures_dir)
    if mode == "udp":
        cases = [i for i in range(len(z["warp_theta"]))
                 if z["warp_theta"][i] == 0 and tuple(z["warp_size_dst"][i]) == (191, 255)]
        centers = z["warp_size_input"][cases] / 2
        scales = z["warp_size_target"][cases] / 200
        matrices = z["warp_matrix"][cases]
    else:
        cases = [i for i in range(len(z["affine_rot"]))
                 if z["affine_rot"][i] == 0 and not z["affine_inv"][i]
                 and not z["affine_shift"][i].any()
                 and tuple(z["affine_output_size"][i]) == (192, 256)
                 and np.isclose(z["affine_scale"][i][0] / z["affine_scale"][i][1], 0.75)]
        centers, scales = z["affine_center"][cases], z["affine_scale"][cases]
        matrices = z["affine_matrix"][cases]
    assert len(cases) >= 1
    est = PoseEstimator(tiny_model, dataset="coco", settings=TestSettings(decode=mode))
    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.integers(0, 256, (1300, 1250, 3), dtype=np.uint8), (7, 7), 0)
    for c, s, m in zip(centers, scales, matrices):
        wh = s * 200 / 1.25  # a box whose padded, aspect-fixed crop is (c, s)
        box = np.r_[c - wh / 2, wh][None]
        x, c2, s2 = est.crops(image, box)
        np.testing.assert_allclose(c2[0], c, rtol=1e-5)
        np.testing.assert_allclose(s2[0], s, rtol=1e-5)
        expected = est.to_tensor(cv2.warpAffine(image, m.astype(np.float64), (192, 256),
                                                flags=cv2.INTER_LINEAR)[None])
        # Grey levels. Centre/scale pass through float32 (as officially), which moves the matrix by
        # ulps; cv2's 1/32-px fixed-point grid then flips the rounding of some pixels by one
        # level (up to 3% of them for the exact rational geometry of the classic case). The
        # other regime's half-pixel shift gives errors of ~50 levels.
        diff = (x - expected).abs() * (0.225 * 255)
        assert diff.max() <= 1.01 and (diff > 0.01).float().mean() < 0.05


def test_predict_many_routes_results_to_their_images(tiny_model, monkeypatch):
    """Crops of several images share model calls; every instance must come back to its own
    image and box, in input order, whatever the batch size (checked with a fake decoder that
    returns each crop's centre)."""
    est = PoseEstimator(tiny_model, dataset="coco")

    def fake_predict_crops(inputs, centers, scales):
        assert len(inputs) == len(centers) == len(scales)
        k = est.head.out_channels
        return (np.repeat(np.asarray(centers, np.float32)[:, None], k, 1),
                np.ones((len(centers), k), np.float32))

    monkeypatch.setattr(est, "predict_crops", fake_predict_crops)
    rng = np.random.default_rng(1)
    items = []
    for i, n in enumerate([3, 0, 1, 5, 2]):
        xy = rng.uniform(0, 40, (n, 2))
        wh = rng.uniform(10, 50, (n, 2))
        items.append((_image(seed=i), np.c_[xy, wh, rng.uniform(0.5, 1, n)], f"img{i}"))
    items.append((_image(seed=9), None, "whole"))  # None: one box = the whole image
    for batch_size in (1, 2, 4, 100):
        est.batch_size = batch_size
        results = list(est.predict_many(items))
        assert [r.image_id for r in results] == [it[2] for it in items]
        for r, (_, boxes, _) in zip(results, items):
            expected = np.array([[0, 0, 100, 120]]) if boxes is None else boxes[:, :4]
            assert len(r.instances) == len(expected)
            for inst, box in zip(r.instances, expected):
                np.testing.assert_allclose(inst.box_xywh, box, rtol=1e-6)
                centre = box[:2] + box[2:] / 2
                np.testing.assert_allclose(inst.keypoints[:, :2], np.tile(centre, (17, 1)),
                                           rtol=1e-5)


def test_call_gives_image_pixels_and_coco_entries(tiny_model):
    est = PoseEstimator(tiny_model, dataset="coco")
    image = _image(200, 160)
    boxes = np.array([[20, 30, 60, 120, 0.9], [80, 10, 50, 90, 0.6]], np.float32)
    result = est(image, boxes, image_id=7)
    assert result.image_hw == (200, 160) and result.dataset == "coco" and not result.warnings
    assert result.keypoints.shape == (2, 17, 3)
    c, s = box_xywh_to_center_scale(boxes[:, :4], (192, 256), 1.25)
    for inst, ci, si in zip(result.instances, c, s):
        np.testing.assert_allclose(inst.center, ci)
        np.testing.assert_allclose(inst.scale, si)
    entries = result.to_coco()
    assert [e["image_id"] for e in entries] == [7, 7]
    assert all(len(e["keypoints"]) == 51 and e["category_id"] == 1 for e in entries)
    # the same through predict_crops directly
    x, c2, s2 = est.crops(image, boxes)
    coords, scores = est.predict_crops(x, c2, s2)
    np.testing.assert_allclose(result.keypoints[..., :2], coords, atol=1e-4)
    np.testing.assert_allclose(result.keypoints[..., 2], scores, atol=1e-6)


def test_rescoring_and_oks_nms(tiny_model):
    est = PoseEstimator(tiny_model, dataset="coco")
    image = _image(200, 160)
    boxes = np.array([[20, 30, 60, 120, 0.9], [20, 30, 60, 120, 0.5], [90, 20, 60, 150, 0.7]],
                     np.float32)
    result = est(image, boxes)
    for inst in result.instances:
        kp = inst.keypoints[:, 2]
        valid = kp > est.settings.vis_thr
        expected = (kp[valid].mean() if valid.any() else 0.0) * inst.box_score
        assert inst.score == pytest.approx(expected, rel=1e-5)
    # identical boxes give identical poses (OKS 1): OKS-NMS keeps the better-scored one
    kept = est.with_settings(nms_thr=0.9)(image, boxes)
    assert len(kept.instances) == 2
    assert sorted(i.box_score for i in kept.instances) == pytest.approx([0.7, 0.9])


def test_bad_boxes_are_clipped_or_dropped_with_warnings(tiny_model, caplog):
    est = PoseEstimator(tiny_model, dataset="coco")
    image = _image(120, 100)
    boxes = np.array([
        [10, 10, 50, 80, 0.9],          # fine
        [10, 10, 0, 50, 1.0],           # zero width
        [10, 10, -5, 30, 1.0],          # negative width
        [5000, 5000, 10, 10, 1.0],      # outside the image
        [-20, -10, 60, 90, 0.8],        # partly outside: clipped
        [np.nan, 0, 10, 10, 1.0],       # NaN
    ], np.float32)
    with caplog.at_level(logging.WARNING):
        result = est(image, boxes)
    assert [i.box_score for i in result.instances] == pytest.approx([0.9, 0.8])
    np.testing.assert_allclose(result.instances[1].box_xywh, [0, 0, 40, 80])
    text = " ".join(result.warnings)
    assert "zero or negative width/height" in text and "(index 1, 2)" in text
    assert "outside the 100x120 image" in text and "NaN" in text
    assert "clipped 1 box(es)" in text
    assert all(w in caplog.text for w in result.warnings)


def test_no_boxes_give_no_instances(tiny_model):
    est = PoseEstimator(tiny_model, dataset="coco")
    for boxes in (np.zeros((0, 4)), np.zeros((0, 5)), []):
        result = est(_image(), boxes)
        assert result.instances == [] and result.to_coco() == [] and result.warnings == []
    only_bad = est(_image(), [[0, 0, 0, 0]])
    assert only_bad.instances == [] and only_bad.warnings


def test_array_inputs_must_be_rgb_uint8(tiny_model):
    est = PoseEstimator(tiny_model, dataset="coco")
    with pytest.raises(InputError, match="RGB uint8"):
        est(np.zeros((50, 40), np.uint8))
    with pytest.raises(InputError, match="RGB uint8"):
        est(np.zeros((50, 40, 3), np.float32))


def test_wrong_keypoint_count_is_refused(tiny_model):
    from vitpose.dataset_meta import get_dataset_meta
    with pytest.raises(ValueError, match="keypoints"):
        PoseEstimator(tiny_model, meta=get_dataset_meta("mpii"))


# ------------------------------------------------------------------ many boxes in one image


def _many_boxes(n: int, hw=(240, 320), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 150, (n, 2))  # inside the image: no box is clipped
    wh = rng.uniform(20, 80, (n, 2))
    return np.c_[xy, wh, rng.uniform(0.3, 1, n)].astype(np.float32)


@pytest.mark.parametrize("batch_size", [1, 7, 32, 500])
def test_many_boxes_are_chunked_with_results_identical_to_one_batch(tiny_model, batch_size):
    """The crops of one image are made, run and decoded batch by batch: every keypoint equals
    the unchunked path (all crops at once through `crops` + `predict_crops`), whatever the
    batch size, and several images sharing chunks come back to their own image."""
    est = PoseEstimator(tiny_model, dataset="coco", batch_size=batch_size)
    images = [_image(240, 320, seed=s) for s in range(3)]
    boxes = [_many_boxes(n, seed=n) for n in (45, 3, 20)]
    results = list(est.predict_many([(im, b, i) for i, (im, b) in enumerate(zip(images, boxes))]))
    for image, b, result in zip(images, boxes, results):
        x, c, s = est.crops(image, b)
        coords, scores = est.predict_crops(x, c, s)  # the unchunked path
        got = np.stack([inst.keypoints for inst in result.instances])
        np.testing.assert_array_equal(got[..., :2], coords)
        np.testing.assert_array_equal(got[..., 2], scores)
        np.testing.assert_array_equal(np.stack([i.center for i in result.instances]), c)


@pytest.mark.slow  # about a minute: tracemalloc slows 2000 crops down
def test_memory_of_one_image_does_not_grow_with_its_boxes(tiny_model):
    """2000 boxes in one image held 2000 crops at once (~2 MB a box with the float tensor;
    1000 boxes took 2.9 GB). The traced peak now stays far below one crop per box (no time
    is measured)."""
    import tracemalloc

    est = PoseEstimator(tiny_model, dataset="coco", batch_size=32).with_settings(flip_test=False)
    image = _image(240, 320)
    n = 2000
    boxes = _many_boxes(n)
    h, w = tiny_model.input_size
    all_crops = n * h * w * 3  # the uint8 crops alone, had they all been made at once
    est(image, boxes[:40])  # warm-up: lazily built state is not counted
    tracemalloc.start()
    try:
        result = est(image, boxes)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(result.instances) == n
    assert peak < all_crops / 8, f"peak {peak / 1e6:.0f} MB for {n} boxes"
