"""supervision's KeyPoints and annotators draw our results; data frames of images and videos."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import supervision as sv

import vitpose.formats as formats
from vitpose.dataset_meta import get_dataset_meta
from vitpose.errors import InputError
from vitpose.formats import supervision_edges, to_pandas, to_supervision


def test_supervision_keypoints_and_annotators_draw_our_result(coco_results) -> None:
    result = coco_results[0]
    result.instances[0].track_id = 4
    kp = to_supervision(result)
    assert isinstance(kp, sv.KeyPoints) and len(kp) == len(result.instances)
    assert kp.xy.shape == (len(result.instances), 17, 2)
    np.testing.assert_allclose(kp.keypoint_confidence[0], result.instances[0].keypoints[:, 2])
    assert kp.class_id.tolist() == [0] * len(result.instances)
    assert kp.data["tracker_id"][0] == 4 and kp.data["class_name"][0] == "person"
    image = cv2.imread(result.source)
    edges = supervision_edges("coco")
    assert len(edges) == len(get_dataset_meta("coco").skeleton) and min(min(e) for e in edges) == 1
    color = sv.Color(r=255, g=0, b=255)
    drawn = sv.EdgeAnnotator(color=color, thickness=3, edges=edges).annotate(image.copy(), kp)
    drawn = sv.VertexAnnotator(radius=5).annotate(drawn, kp)
    changed = np.any(drawn != image, axis=-1)
    assert changed.sum() > 500
    # a skeleton edge of the first person is drawn where we expect it
    a, b = 5, 7   # left shoulder - left elbow
    mid = ((kp.xy[0, a] + kp.xy[0, b]) / 2).astype(int)
    if (edges.count((a + 1, b + 1)) or edges.count((b + 1, a + 1))) and kp.xy[0, a].any() \
            and kp.xy[0, b].any():
        assert changed[mid[1] - 2:mid[1] + 3, mid[0] - 2:mid[0] + 3].any()
    # the wholebody skeleton fits supervision's 1-based check for 133 points
    assert max(max(e) for e in supervision_edges("wholebody")) <= 133


def test_to_supervision_refuses_categories_it_cannot_number(coco_results) -> None:
    with pytest.raises(InputError, match="class_names"):
        to_supervision(coco_results[0], class_names=["dog"])


def test_pandas_rows_for_images_and_videos(tmp_path, coco_results, make_track) -> None:
    table = to_pandas(coco_results)
    n = sum(len(r.instances) for r in coco_results)
    assert len(table) == n * 17 and table["frame"].isna().all()
    first = table.iloc[:17]
    assert first["name"].tolist() == list(get_dataset_meta("coco").keypoint_names)
    np.testing.assert_allclose(first[["x", "y", "score"]].to_numpy(),
                               coco_results[0].instances[0].keypoints, atol=1e-4)
    _, frames = make_track(frames=4)
    video = to_pandas(frames, fps=2.0)
    assert video["frame"].tolist()[::17] == [0, 1, 2, 3]
    assert video["time_s"].tolist()[::17] == [0.0, 0.5, 1.0, 1.5]
    assert video["track_id"].unique().tolist() == [7]
    path = formats.write("table", coco_results, tmp_path / "poses.parquet").paths[0]
    pd.testing.assert_frame_equal(pd.read_parquet(path), table, check_dtype=False)
    csv = formats.write("table", coco_results, tmp_path / "poses.csv").paths[0]
    assert len(pd.read_csv(csv)) == len(table)


def test_mixed_keypoint_sets_are_refused(coco_results, wholebody_results) -> None:
    with pytest.raises(InputError, match="several keypoint sets"):
        to_pandas(coco_results + wholebody_results)
    # a ViTPose+ model routing boxes: the result says "auto", each instance its own set
    for r in coco_results:
        r.dataset = "auto"
        for i in r.instances:
            i.dataset = "coco"
    assert len(to_pandas(coco_results)) == 17 * sum(len(r.instances) for r in coco_results)
    coco_results[1].instances[0].dataset = "ap10k"
    with pytest.raises(InputError, match="ap10k, coco"):
        to_pandas(coco_results)
    with pytest.raises(InputError, match="unknown output format"):
        formats.write("bvh", coco_results, "x.bvh")


def test_a_full_disk_gives_one_output_error(tmp_path, coco_results, monkeypatch) -> None:
    import errno

    import vitpose.fileio
    from vitpose.errors import OutputError

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(vitpose.fileio, "atomic_open", full)
    with pytest.raises(OutputError, match="cannot write .*poses.csv: No space left on device"):
        formats.write("table", coco_results, tmp_path / "poses.csv")
    assert not (tmp_path / "poses.csv").exists()


def test_indexed_video_items_fill_the_frame_column(make_track) -> None:
    _, frames = make_track(frames=3)
    table = to_pandas([(10 + i, r) for i, r in enumerate(frames)])
    assert table["frame"].tolist()[::17] == [10, 11, 12]
