"""Tests for vitpose.inference.draw."""

from __future__ import annotations

import numpy as np
import pytest

from vitpose.inference.draw import default_colors, draw_poses

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _mostly(pixel: np.ndarray, channel: int) -> bool:
    """True when ``channel`` dominates an anti-aliased pixel."""
    others = [c for c in range(3) if c != channel]
    return bool(pixel[channel] > 150 and all(pixel[c] < 60 for c in others))


def _pose() -> tuple[np.ndarray, np.ndarray]:
    kpts = np.array([[[50.0, 40.0], [150.0, 40.0], [250.0, 150.0]]])
    scores = np.array([[0.9, 0.8, 0.1]])  # third keypoint below the threshold
    return kpts, scores


def test_draws_at_keypoints_and_links_only() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    kpts, scores = _pose()
    out = draw_poses(
        image, kpts, scores, skeleton=[(0, 1), (1, 2)],
        keypoint_colors=[RED, GREEN, BLUE], link_colors=[BLUE, RED], kpt_thr=0.3,
    )  # fmt: skip
    assert out.shape == image.shape and out.dtype == np.uint8
    assert image.sum() == 0  # input untouched
    assert tuple(out[40, 50]) == RED
    assert tuple(out[40, 150]) == GREEN
    assert _mostly(out[40, 100], 2)  # middle of the drawn link
    assert out[150, 250].sum() == 0  # low-score keypoint not drawn
    assert out[95, 200].sum() == 0  # link to the low-score keypoint not drawn
    assert out[150:, :].sum() == 0 and out[:, 200:].sum() == 0  # far away untouched
    changed = np.argwhere(out.any(axis=2))
    assert changed[:, 0].min() >= 30 and changed[:, 0].max() <= 50


def test_sizes_scale_with_image_size() -> None:
    kpts, scores = _pose()

    def painted(scale: int) -> int:
        img = np.zeros((200 * scale, 300 * scale, 3), np.uint8)
        out = draw_poses(img, kpts * scale, scores, skeleton=[])
        return int(out.any(axis=2).sum())

    small, large = painted(1), painted(4)
    assert large > 4 * small  # area grows roughly with the square of the scale
    img = np.zeros((200, 300, 3), np.uint8)
    thin = draw_poses(img, kpts, scores, skeleton=[], radius=2).any(axis=2).sum()
    thick = draw_poses(img, kpts, scores, skeleton=[], radius=8).any(axis=2).sum()
    assert thick > 4 * thin


def test_boxes_and_labels() -> None:
    img = np.zeros((100, 100, 3), np.uint8)
    empty = np.zeros((1, 0, 2))
    out = draw_poses(
        img, empty, np.zeros((1, 0)), skeleton=[], boxes_xyxy=np.array([[20, 30, 80, 90]]),
        box_color=GREEN, thickness=1, box_labels=["7"],
    )  # fmt: skip
    assert _mostly(out[60, 20], 1) and _mostly(out[30, 50], 1)
    assert out[60, 50].sum() == 0  # inside the box untouched
    assert out[5:28, 20:40].any()  # label text above the box


def test_nan_points_and_empty_input() -> None:
    img = np.full((50, 50, 3), 7, np.uint8)
    kpts = np.array([[[np.nan, 10.0], [20.0, 20.0]]])
    out = draw_poses(img, kpts, np.array([[0.9, 0.9]]), skeleton=[(0, 1)])
    assert out[20, 20].tolist() != [7, 7, 7]
    none = draw_poses(img, np.zeros((0, 17, 2)), np.zeros((0, 17)), skeleton=[(0, 1)])
    np.testing.assert_array_equal(none, img)
    assert none is not img


def test_invalid_arguments() -> None:
    img = np.zeros((50, 50, 3), np.uint8)
    kpts, scores = _pose()
    with pytest.raises(ValueError, match="out of range"):
        draw_poses(img, kpts, scores, skeleton=[(0, 5)])
    with pytest.raises(ValueError, match="keypoint_colors"):
        draw_poses(img, kpts, scores, skeleton=[], keypoint_colors=[RED])
    with pytest.raises(ValueError, match="image"):
        draw_poses(np.zeros((50, 50)), kpts, scores, skeleton=[])


def test_default_colors() -> None:
    c = default_colors(17)
    assert c.shape == (17, 3) and c.dtype == np.uint8
    assert len({tuple(x) for x in c}) == 17
