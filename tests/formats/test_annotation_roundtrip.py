"""Pre-annotations for CVAT (COCO Keypoints) and Label Studio, read by pycocotools, Label
Studio's converter and our training reader; corrected labels back into training."""

from __future__ import annotations

import json

import numpy as np
import pytest
from label_studio_converter import Converter
from pycocotools.coco import COCO

import vitpose.formats as formats
from vitpose.datasets.coco import read_coco_keypoints
from vitpose.errors import InputError, OutputError
from vitpose.formats import label_studio_to_coco, select_uncertain, to_label_studio


def test_coco_keypoints_export_loads_in_pycocotools_and_the_training_reader(
        tmp_path, data_dir, coco_results) -> None:
    path = formats.write("coco-keypoints", coco_results, tmp_path / "pre.json",
                         image_root=data_dir / "coco").paths[0]
    coco = COCO(str(path))
    assert sorted(coco.getImgIds()) == sorted(r.image_id for r in coco_results)
    assert coco.loadCats(1)[0]["keypoints"][0] == "nose"
    ann = coco.loadAnns(coco.getAnnIds(imgIds=[785]))[0]
    kp = np.array(ann["keypoints"]).reshape(17, 3)
    src = coco_results[0].instances[0].keypoints
    sure = src[:, 2] >= 0.3
    np.testing.assert_allclose(kp[sure, :2], src[sure, :2], atol=0.01)
    assert (kp[sure, 2] == 2).all() and (kp[~sure] == 0).all()
    records = read_coco_keypoints(path, "coco", image_root=data_dir / "coco")
    assert len(records) == sum(len(r.instances) for r in coco_results)
    with pytest.raises(OutputError, match="exists"):
        formats.write("coco-keypoints", coco_results, path)


def test_select_uncertain_keeps_the_least_sure_images(coco_results) -> None:
    coco_results[2].instances[0].keypoints[:, 2] = 0.1
    picked = select_uncertain(coco_results, 2)
    assert picked[0] is coco_results[2] and len(picked) == 2
    with pytest.raises(InputError):
        select_uncertain(coco_results, 0)


def test_label_studio_tasks_are_read_by_label_studios_converter(tmp_path, coco_results) -> None:
    paths = formats.write("label-studio", coco_results, tmp_path / "tasks.json", select=3).paths
    tasks = json.loads(paths[0].read_text())
    config = paths[1].read_text()
    assert len(tasks) == 3 and paths[1].name == "tasks.label_config.xml"
    region = next(r for r in tasks[0]["predictions"][0]["result"] if r["type"] == "keypointlabels")
    assert 0 <= region["value"]["x"] <= 100 and 0 < region["score"] <= 1
    # Label Studio numbers the imported tasks and turns accepted predictions into annotations;
    # its converter parses our labelling interface and reads every region through it
    accepted = [{**t, "id": i + 1,
                 "annotations": [{"id": 1, "result": t["predictions"][0]["result"]}]}
                for i, t in enumerate(tasks)]
    (tmp_path / "accepted.json").write_text(json.dumps(accepted))
    converter = Converter(config=config, project_dir=str(tmp_path), download_resources=False)
    items = list(converter.iter_from_json_file(str(tmp_path / "accepted.json")))
    assert len(items) == 3
    n_points = sum(r["type"] == "keypointlabels" for r in tasks[0]["predictions"][0]["result"])
    assert len(items[0]["output"]["keypoints"]) == n_points
    assert items[0]["output"]["keypoints"][0]["type"] == "KeyPointLabels"  # the tag it found
    assert items[0]["output"]["box"][0]["rectanglelabels"] == ["person"]
    converter.convert_to_json_min(str(tmp_path / "accepted.json"), str(tmp_path / "min"),
                                  is_dir=False)
    minimal = json.loads((tmp_path / "min" / "result.json").read_text())
    assert len(minimal[0]["keypoints"]) == n_points


def test_corrected_label_studio_export_becomes_a_training_file(tmp_path, data_dir,
                                                              coco_results) -> None:
    tasks = to_label_studio(coco_results, min_score=0.3)
    # a person moves one point, deletes another and adds one without a parent
    result = [dict(r) for r in tasks[0]["predictions"][0]["result"]]
    moved = next(r for r in result if r["id"] == "p0_k0")
    moved["value"] = {**moved["value"], "x": moved["value"]["x"] + 1.0}
    result = [r for r in result if r["id"] != "p0_k5"]
    exported = [{**t, "annotations": [{"result": result if i == 0 else
                                       t["predictions"][0]["result"]}]}
                for i, t in enumerate(tasks)]
    coco = label_studio_to_coco(exported, meta="coco")
    (tmp_path / "train.json").write_text(json.dumps(coco))
    first = np.array(coco["annotations"][0]["keypoints"]).reshape(17, 3)
    src = coco_results[0].instances[0].keypoints
    assert first[0, 0] == pytest.approx(src[0, 0] + 6.4, abs=0.02)   # 1% of 640 px
    assert first[5].tolist() == [0, 0, 0]
    records = read_coco_keypoints(tmp_path / "train.json", "coco", image_root=data_dir / "coco")
    assert len(records) == sum(len(r.instances) for r in coco_results)
    bad = [{**exported[0], "annotations": [{"result": [
        {**moved, "parentID": None, "value": {**moved["value"], "x": 99.9, "y": 0.1}},
        next(r for r in result if r["type"] == "rectanglelabels")]}]}]
    with pytest.raises(InputError, match="outside every person box"):
        label_studio_to_coco(bad, meta="coco")
