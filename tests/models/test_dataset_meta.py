"""Dataset metadata: derived flip pairs, skeletons, sigmas and splits against the reference lists.

The expected lists below are written out from vitpose-reference.md §4.1-§4.9 (not computed), so a
mistake in a name table or in the naming rules shows up as a mismatch.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from vitpose.dataset_meta import (
    DATASET_META,
    DATASET_NAMES,
    DatasetMeta,
    dataset_meta_from_dict,
    get_dataset_meta,
    load_dataset_meta,
    mirror_keypoint_name,
)

# ---- reference lists (ref §4.9) ------------------------------------------------------------

REF_FLIP_PAIRS = {
    "coco": [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)],
    "aic": [(0, 3), (1, 4), (2, 5), (6, 9), (7, 10), (8, 11)],
    "mpii": [(0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)],
    "crowdpose": [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)],
    "ap10k": [(0, 1), (5, 8), (6, 9), (7, 10), (11, 14), (12, 15), (13, 16)],
    "interhand2d": [],
}
REF_FLIP_PAIRS["ochuman"] = REF_FLIP_PAIRS["coco"]
REF_FLIP_PAIRS["apt36k"] = REF_FLIP_PAIRS["ap10k"]
REF_FLIP_PAIRS["wholebody"] = (
    REF_FLIP_PAIRS["coco"]
    + [(17, 20), (18, 21), (19, 22)]
    + [(23, 39), (24, 38), (25, 37), (26, 36), (27, 35), (28, 34), (29, 33), (30, 32)]
    + [(40, 49), (41, 48), (42, 47), (43, 46), (44, 45)]
    + [(54, 58), (55, 57)]
    + [(59, 68), (60, 67), (61, 66), (62, 65), (63, 70), (64, 69)]
    + [(71, 77), (72, 76), (73, 75), (78, 82), (79, 81), (83, 87), (84, 86), (88, 90)]
    + [(91 + i, 112 + i) for i in range(21)]
)

REF_UPPER = {
    "coco": list(range(11)),
    "aic": [0, 1, 2, 3, 4, 5, 12, 13],
    "mpii": list(range(7, 16)),
    "crowdpose": [0, 1, 2, 3, 4, 5, 12, 13],
    "ap10k": [0, 1, 2, 3, 5, 6, 7, 8, 9],
    "wholebody": list(range(11)),
    "interhand2d": [],
}
REF_UPPER["ochuman"] = REF_UPPER["coco"]
REF_UPPER["apt36k"] = REF_UPPER["ap10k"]

_COCO_SKELETON = [(15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6),
                  (5, 7), (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5),
                  (4, 6)]
_AP10K_SKELETON = [(0, 1), (0, 2), (1, 2), (2, 3), (3, 4), (3, 5), (5, 6), (6, 7), (3, 8), (8, 9),
                   (9, 10), (4, 11), (11, 12), (12, 13), (4, 14), (14, 15), (15, 16)]


def _hand_chain(r: int) -> list[tuple[int, int]]:
    links = []
    for f in range(5):
        chain = [r] + [r + 1 + 4 * f + j for j in range(4)]
        links += list(zip(chain[:-1], chain[1:]))
    return links


REF_SKELETON = {
    "coco": _COCO_SKELETON,
    "ochuman": _COCO_SKELETON,
    "aic": [(2, 1), (1, 0), (0, 13), (13, 3), (3, 4), (4, 5), (8, 7), (7, 6), (6, 9), (9, 10),
            (10, 11), (12, 13), (0, 6), (3, 9)],
    "mpii": [(0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (8, 12),
             (12, 11), (11, 10), (8, 13), (13, 14), (14, 15)],
    "crowdpose": [(10, 8), (8, 6), (11, 9), (9, 7), (6, 7), (0, 6), (1, 7), (0, 1), (0, 2), (1, 3),
                  (2, 4), (3, 5), (12, 13), (1, 13), (0, 13)],
    "ap10k": _AP10K_SKELETON,
    "apt36k": _AP10K_SKELETON,
    "wholebody": _COCO_SKELETON + [(15, 17), (15, 18), (15, 19), (16, 20), (16, 21), (16, 22)]
    + _hand_chain(91) + _hand_chain(112),
    "interhand2d": [(20, 3), (3, 2), (2, 1), (1, 0), (20, 7), (7, 6), (6, 5), (5, 4), (20, 11),
                    (11, 10), (10, 9), (9, 8), (20, 15), (15, 14), (14, 13), (13, 12), (20, 19),
                    (19, 18), (18, 17), (17, 16)],
}

_COCO_SIGMAS = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
                0.107, 0.107, 0.087, 0.087, 0.089, 0.089]
_AP10K_SIGMAS = [0.025, 0.025, 0.026, 0.035, 0.035, 0.079, 0.072, 0.062, 0.079, 0.072, 0.062,
                 0.107, 0.087, 0.089, 0.107, 0.087, 0.089]
_HAND_SIGMAS = [0.029, 0.022, 0.035, 0.037, 0.047, 0.026, 0.025, 0.024, 0.035, 0.018, 0.024, 0.022,
                0.026, 0.017, 0.021, 0.021, 0.032, 0.020, 0.019, 0.022, 0.031]
_FACE_SIGMAS = [
    0.042, 0.043, 0.044, 0.043, 0.040, 0.035, 0.031, 0.025, 0.020, 0.023, 0.029, 0.032, 0.037,
    0.038, 0.043, 0.041, 0.045, 0.013, 0.012, 0.011, 0.011, 0.012, 0.012, 0.011, 0.011, 0.013,
    0.015, 0.009, 0.007, 0.007, 0.007, 0.012, 0.009, 0.008, 0.016, 0.010, 0.017, 0.011, 0.009,
    0.011, 0.009, 0.007, 0.013, 0.008, 0.011, 0.012, 0.010, 0.034, 0.008, 0.008, 0.009, 0.008,
    0.008, 0.007, 0.010, 0.008, 0.009, 0.009, 0.009, 0.007, 0.007, 0.008, 0.011, 0.008, 0.008,
    0.008, 0.010, 0.008]
REF_SIGMAS = {
    "coco": _COCO_SIGMAS,
    "ochuman": _COCO_SIGMAS,
    "aic": [0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144, 0.03909642,
            0.03686941, 0.01981803, 0.03843971, 0.03412318, 0.02415081, 0.01291456, 0.01236173],
    "mpii": [0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026, 0.062, 0.072,
             0.179, 0.179, 0.072, 0.062],
    "crowdpose": [0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089,
                  0.089, 0.079, 0.079],
    "ap10k": _AP10K_SIGMAS,
    "apt36k": _AP10K_SIGMAS,
    "wholebody": _COCO_SIGMAS + [0.068, 0.066, 0.066, 0.092, 0.094, 0.094] + _FACE_SIGMAS
    + _HAND_SIGMAS + _HAND_SIGMAS,
}

REF_NAMES = {
    "coco": ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
             "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
             "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"],
    "aic": ["right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
            "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee",
            "left_ankle", "head_top", "neck"],
    "mpii": ["right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
             "pelvis", "thorax", "upper_neck", "head_top", "right_wrist", "right_elbow",
             "right_shoulder", "left_shoulder", "left_elbow", "left_wrist"],
    "crowdpose": ["left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist",
                  "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
                  "right_ankle", "top_head", "neck"],
    "ap10k": ["L_Eye", "R_Eye", "Nose", "Neck", "Root of tail", "L_Shoulder", "L_Elbow",
              "L_F_Paw", "R_Shoulder", "R_Elbow", "R_F_Paw", "L_Hip", "L_Knee", "L_B_Paw",
              "R_Hip", "R_Knee", "R_B_Paw"],
    "interhand2d": ["thumb4", "thumb3", "thumb2", "thumb1", "forefinger4", "forefinger3",
                    "forefinger2", "forefinger1", "middle_finger4", "middle_finger3",
                    "middle_finger2", "middle_finger1", "ring_finger4", "ring_finger3",
                    "ring_finger2", "ring_finger1", "pinky_finger4", "pinky_finger3",
                    "pinky_finger2", "pinky_finger1", "wrist"],
}

NUM_KEYPOINTS = {"coco": 17, "aic": 14, "mpii": 16, "crowdpose": 14, "ochuman": 17, "ap10k": 17,
                 "apt36k": 17, "wholebody": 133, "interhand2d": 21}


# ---- built-in layouts ----------------------------------------------------------------------


def test_registry_has_every_dataset_and_aliases():
    assert set(DATASET_NAMES) == set(NUM_KEYPOINTS)
    for name in DATASET_NAMES:
        assert DATASET_META[name].name == name
    assert get_dataset_meta("coco_wholebody") is get_dataset_meta("wholebody")
    assert get_dataset_meta("COCO") is DATASET_META["coco"]


def test_unknown_name_lists_known_names():
    with pytest.raises(ValueError) as info:
        get_dataset_meta("cocoo")
    msg = str(info.value)
    assert "cocoo" in msg
    for name in DATASET_NAMES:
        assert name in msg


@pytest.mark.parametrize("name", sorted(NUM_KEYPOINTS))
def test_layout_matches_reference(name):
    meta = get_dataset_meta(name)
    assert meta.num_keypoints == NUM_KEYPOINTS[name]
    assert list(meta.flip_pairs) == REF_FLIP_PAIRS[name]
    assert list(meta.upper_body_ids) == REF_UPPER[name]
    assert list(meta.lower_body_ids) == [i for i in range(meta.num_keypoints)
                                         if i not in REF_UPPER[name]]
    assert list(meta.skeleton) == REF_SKELETON[name]
    assert len(meta.keypoint_colors) == meta.num_keypoints
    assert len(meta.link_colors) == len(meta.skeleton)
    if name in REF_NAMES:
        assert list(meta.keypoint_names) == REF_NAMES[name]
    if name in REF_SIGMAS:  # every number of ref §4.1-4.8, exactly
        assert meta.oks_sigmas.tolist() == REF_SIGMAS[name]
        np.testing.assert_array_equal(meta.sigmas, np.float32(REF_SIGMAS[name]))
    assert meta.sigmas.dtype == np.float32 and meta.sigmas.shape == (meta.num_keypoints,)


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_flip_indices_is_the_involution_of_the_pairs(name):
    meta = get_dataset_meta(name)
    flip = np.array(meta.flip_indices)
    np.testing.assert_array_equal(flip[flip], np.arange(meta.num_keypoints))
    for a, b in meta.flip_pairs:
        assert flip[a] == b and flip[b] == a
        assert meta.swap_names[a] == meta.keypoint_names[b]
    assert sum(flip != np.arange(meta.num_keypoints)) == 2 * len(meta.flip_pairs)


def test_wholebody_parts_and_names():
    meta = get_dataset_meta("wholebody")
    assert {k: (r.start, r.stop) for k, r in meta.parts.items()} == {
        "body": (0, 17), "foot": (17, 23), "face": (23, 91), "lefthand": (91, 112),
        "righthand": (112, 133)}
    assert meta.keypoint_names[:17] == get_dataset_meta("coco").keypoint_names
    assert meta.keypoint_names[17] == "left_big_toe" and meta.keypoint_names[22] == "right_heel"
    assert meta.keypoint_names[91] == "left_hand_root"
    assert meta.keypoint_names[92] == "left_thumb1"
    assert meta.keypoint_names[111] == "left_pinky_finger4"
    assert meta.keypoint_names[112] == "right_hand_root"


def test_metas_are_immutable():
    meta = get_dataset_meta("coco")
    with pytest.raises(AttributeError):
        meta.name = "x"  # type: ignore[misc]
    with pytest.raises(ValueError):
        meta.sigmas[0] = 1.0
    assert meta.joint_weights.tolist() == pytest.approx(
        [1, 1, 1, 1, 1, 1, 1, 1.2, 1.2, 1.5, 1.5, 1, 1, 1.2, 1.2, 1.5, 1.5])


def test_mirror_rule():
    assert mirror_keypoint_name("left_eye") == "right_eye"
    assert mirror_keypoint_name("R_B_Paw") == "L_B_Paw"
    assert mirror_keypoint_name("Root of tail") == "Root of tail"
    assert mirror_keypoint_name("nose") == "nose"


def test_dataset_meta_is_a_leaf():
    import vitpose.dataset_meta as mod

    tree = ast.parse(Path(mod.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert not (node.module or "").startswith("vitpose") and node.level == 0
        elif isinstance(node, ast.Import):
            assert not any(a.name.startswith("vitpose") for a in node.names)


# ---- custom metadata -----------------------------------------------------------------------


def test_custom_example_file_loads():
    import vitpose

    path = Path(vitpose.__file__).parent / "configs" / "datasets" / "custom_example.yaml"
    meta = load_dataset_meta(path)
    assert meta.name == "upper_body_7"
    assert meta.flip_pairs == ((2, 3), (4, 5))
    assert meta.upper_body_ids == (0, 1, 2, 3, 4, 5) and meta.lower_body_ids == (6,)
    assert meta.skeleton[0] == (0, 1)


def _custom(**overrides):
    data = {"name": "toy", "keypoints": ["nose", "left_eye", "right_eye"],
            "flip_pairs": [["left_eye", "right_eye"]], "sigmas": [0.02, 0.03, 0.03],
            "skeleton": [["nose", "left_eye"], [0, 2]], "upper_body_ids": ["nose"]}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_custom_from_dict_flip_pairs_and_swaps_agree():
    a = dataset_meta_from_dict(_custom())
    b = dataset_meta_from_dict(_custom(
        flip_pairs=None, upper_body_ids=None,
        keypoints=[{"name": "nose", "type": "upper"},
                   {"name": "left_eye", "swap": "right_eye"},
                   {"name": "right_eye", "swap": "left_eye"}]))
    for meta in (a, b):
        assert meta.flip_pairs == ((1, 2),) and meta.flip_indices == (0, 2, 1)
        assert meta.upper_body_ids == (0,)
        assert meta.skeleton == ((0, 1), (0, 2))
        assert isinstance(meta, DatasetMeta)


@pytest.mark.parametrize("overrides, field", [
    ({"sigmas": None}, "sigmas"),
    ({"sigmas": [0.1, 0.2]}, "sigmas"),
    ({"sigmas": [0.1, -0.2, 0.1]}, "sigmas"),
    ({"name": None}, "name"),
    ({"keypoints": []}, "keypoints"),
    ({"keypoints": ["nose", "nose", "left_eye"]}, "keypoints"),
    ({"skeleton": [["nose", "ear"]]}, "skeleton"),
    ({"skeleton": [[0, 7]]}, "skeleton"),
    ({"upper_body_ids": [9]}, "upper_body_ids"),
    ({"flip_pairs": [["nose", "tail"]]}, "flip_pairs"),
    ({"joint_weights": [1.0]}, "joint_weights"),
    ({"colour": 1}, "colour"),
    ({"flip_pairs": None, "keypoints": [{"name": "nose"}, {"name": "left_eye", "swap": "right_eye"},
                                        {"name": "right_eye", "swap": "nose"}]}, "swap"),
    ({"flip_pairs": None, "keypoints": [{"name": "nose", "type": "middle"}, "left_eye",
                                        "right_eye"]}, "type"),
])
def test_custom_validation_names_the_field(overrides, field):
    with pytest.raises(ValueError) as info:
        dataset_meta_from_dict(_custom(**overrides), source="my.yaml")
    assert field in str(info.value)
    assert "my.yaml" in str(info.value)


def test_custom_file_json_and_errors(tmp_path):
    good = tmp_path / "meta.json"
    good.write_text(json.dumps(_custom()))
    assert load_dataset_meta(good).num_keypoints == 3
    bad = tmp_path / "meta.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ValueError, match="meta.yaml"):
        load_dataset_meta(bad)
    with pytest.raises(ValueError, match="cannot read"):
        load_dataset_meta(tmp_path / "missing.yaml")
    missing_sigmas = tmp_path / "nosig.yaml"
    missing_sigmas.write_text("name: x\nkeypoints: [a, b]\n")
    with pytest.raises(ValueError, match=r"nosig\.yaml.*'sigmas'"):
        load_dataset_meta(missing_sigmas)
