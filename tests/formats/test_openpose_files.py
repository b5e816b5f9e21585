"""OpenPose JSON against the published format (exact key set, array lengths) and the drawing."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

import vitpose.formats as formats
from vitpose.errors import InputError, OutputError
from vitpose.formats import draw_openpose, to_openpose
from vitpose.formats.openpose import BODY_COLORS

PERSON_KEYS = {"person_id", "pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d",
               "hand_right_keypoints_2d", "pose_keypoints_3d", "face_keypoints_3d",
               "hand_left_keypoints_3d", "hand_right_keypoints_3d"}


def test_openpose_json_of_a_coco17_model_follows_the_format(tmp_path, coco_results) -> None:
    report = formats.write("openpose", coco_results, tmp_path / "op", render=True)
    files = sorted((tmp_path / "op").glob("*_keypoints.json"))
    assert len(files) == 4 and len(list((tmp_path / "op").glob("*_rendered.png"))) == 4
    assert any("no hand keypoints" in n for n in report.notes)
    pose = json.loads((tmp_path / "op" / "000000000785_keypoints.json").read_text())
    assert set(pose) == {"version", "people", "canvas_width", "canvas_height"}
    assert pose["version"] == 1.3 and (pose["canvas_width"], pose["canvas_height"]) == (640, 425)
    person = pose["people"][0]
    assert set(person) == PERSON_KEYS and person["person_id"] == [-1]
    assert len(person["pose_keypoints_2d"]) == 18 * 3
    assert person["hand_left_keypoints_2d"] == [] and person["face_keypoints_2d"] == []
    body = np.array(person["pose_keypoints_2d"]).reshape(18, 3)
    kp = coco_results[0].instances[0].keypoints
    np.testing.assert_allclose(body[0], kp[0], atol=1e-3)                 # nose
    np.testing.assert_allclose(body[2], kp[6], atol=1e-3)                 # right shoulder
    np.testing.assert_allclose(body[1, :2], (kp[5, :2] + kp[6, :2]) / 2, atol=1e-3)  # neck
    assert body[1, 2] == pytest.approx(min(kp[5, 2], kp[6, 2]), abs=1e-3)
    for j, name in enumerate(["right_eye", "left_eye", "right_ear", "left_ear"], start=14):
        src = kp[["nose", "left_eye", "right_eye", "left_ear", "right_ear"].index(name)]
        assert body[j].tolist() == (pytest.approx(src.tolist(), abs=1e-3) if src[2] >= 0.3
                                    else [0, 0, 0])


def test_openpose_body25_hands_and_face_of_a_wholebody_model(wholebody_results) -> None:
    result = next(r for r in wholebody_results if r.instances)
    pose = to_openpose(result, body="body25", min_score=0.3)
    person = pose["people"][0]
    assert len(person["pose_keypoints_2d"]) == 25 * 3
    assert len(person["hand_left_keypoints_2d"]) == 21 * 3
    assert len(person["hand_right_keypoints_2d"]) == 21 * 3
    assert len(person["face_keypoints_2d"]) == 70 * 3
    kp = result.instances[0].keypoints
    body = np.array(person["pose_keypoints_2d"]).reshape(25, 3)
    for j, src in ((19, 17), (21, 19), (22, 20), (24, 22)):  # feet
        assert body[j].tolist() == (pytest.approx(kp[src].tolist(), abs=1e-3)
                                    if kp[src, 2] >= 0.3 else [0, 0, 0])
    if kp[11, 2] >= 0.3 and kp[12, 2] >= 0.3:
        np.testing.assert_allclose(body[8, :2], (kp[11, :2] + kp[12, :2]) / 2, atol=1e-3)
    face = np.array(person["face_keypoints_2d"]).reshape(70, 3)
    assert face[68:].tolist() == [[0, 0, 0], [0, 0, 0]]           # pupils: not predicted
    hand = np.array(person["hand_left_keypoints_2d"]).reshape(21, 3)
    np.testing.assert_array_equal(hand[:, 2] > 0, kp[91:112, 2] >= 0.3)


def test_openpose_refuses_keypoint_sets_without_the_coco_body(tmp_path, coco_results) -> None:
    for r in coco_results:
        r.dataset = "ap10k"
        for i in r.instances:
            i.keypoints = i.keypoints[:17]
    with pytest.raises(InputError, match="COCO body"):
        formats.write("openpose", coco_results, tmp_path / "op")
    with pytest.raises(InputError, match="body layout"):
        to_openpose(coco_results[0], meta="coco", body="body_135")


def test_openpose_drawing_is_black_with_openpose_colours(tmp_path, coco_results) -> None:
    pose = to_openpose(coco_results[0])
    image = draw_openpose(pose)
    assert image.shape == (425, 640, 3) and image.dtype == np.uint8
    assert (image.reshape(-1, 3).max(1) == 0).mean() > 0.8           # mostly black
    body = np.array(pose["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
    x, y = body[0, :2].astype(int)
    assert tuple(int(v) for v in image[y, x]) == BODY_COLORS[0] == (255, 0, 0)
    assert BODY_COLORS[6] == (0, 255, 0) and BODY_COLORS[12] == (0, 0, 255)
    # on the image itself, and the written drawing equals the in-memory one
    formats.write("openpose", coco_results[:1], tmp_path / "bg", render=True, background="image")
    png = cv2.imread(str(tmp_path / "bg" / "000000000785_rendered.png"))[..., ::-1]
    photo = cv2.imread(coco_results[0].source)[..., ::-1]
    np.testing.assert_array_equal(png, draw_openpose(pose, photo))
    with pytest.raises(OutputError, match="already holds files"):
        formats.write("openpose", coco_results[:1], tmp_path / "bg")


def test_openpose_frames_of_a_video_carry_track_ids(tmp_path, make_track) -> None:
    _, frames = make_track(frames=3)
    formats.write("openpose", frames, tmp_path / "op", fps=30)
    names = sorted(p.name for p in (tmp_path / "op").iterdir())
    assert names == [f"walk_{i:012d}_keypoints.json" for i in range(3)]
    pose = json.loads((tmp_path / "op" / names[1]).read_text())
    assert pose["people"][0]["person_id"] == [7]


def test_openpose_names_frames_of_in_memory_videos_safely(tmp_path, make_track) -> None:
    _, frames = make_track(frames=2)
    for r in frames:
        r.source = "<array>"
    formats.write("openpose", frames, tmp_path / "a", fps=30)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "frame_000000000000_keypoints.json", "frame_000000000001_keypoints.json"]
    formats.write("openpose", frames, tmp_path / "b", fps=30, stem="clip")
    assert (tmp_path / "b" / "clip_000000000001_keypoints.json").is_file()


def test_long_exports_show_progress(tmp_path, make_track, capsys) -> None:
    _, frames = make_track(frames=6)
    formats.write("openpose", frames, tmp_path / "quiet", fps=30)
    assert "OpenPose files" not in capsys.readouterr().err
    formats.write("openpose", frames, tmp_path / "bar", fps=30, show_progress=True)
    assert "OpenPose files" in capsys.readouterr().err
