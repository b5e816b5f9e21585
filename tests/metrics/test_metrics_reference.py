"""`vitpose evaluate` equals the official evaluator, xtcocotools 1.14.3, on every stored case.

``tests/data/xtcocotools_references.json`` was written by ``tests/tools/xtcocotools_references.py``
(run in a separate numpy<2 environment with xtcocotools installed): the sample data of COCO, AIC,
CrowdPose (with the E/M/H split and people labelled only at head and neck), OCHuman, AP-10K,
APT-36K and COCO-WholeBody, each with several prediction sets (perfect, noisy with drops, false
positives, an annotation id 0, a crowd region, results with boxes), and the numbers xtcocotools
gives for them with the official calls. The tests only read the json.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vitpose.cli.main import main
from vitpose.metrics import evaluate

REFERENCES = Path(__file__).resolve().parents[1] / "data" / "xtcocotools_references.json"
_DATA = json.loads(REFERENCES.read_text())
_CASES = _DATA["cases"]


def _case_id(case: dict) -> str:
    return f"{case['dataset']}-{case['case']}"


@pytest.mark.parametrize("case", _CASES, ids=[_case_id(c) for c in _CASES])
def test_vitpose_evaluate_equals_xtcocotools(case, tmp_path, capsys):
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(_DATA["ground_truths"][case["gt"]]))
    res_path = tmp_path / "results.json"
    res_path.write_text(json.dumps(case["results"]))
    assert main(["evaluate", "--dataset", case["dataset"], "--ann", str(gt_path),
                 "--results", str(res_path), "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    expected = case["expected"]
    assert set(expected) <= set(ours)
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, abs=1e-6, rel=0), (key, ours[key], value)


def test_the_references_cover_the_official_rules():
    """The stored cases exercise what distinguishes xtcocotools (cannot pass vacuously)."""
    by_name = {_case_id(c): c for c in _CASES}
    assert {c["dataset"] for c in _CASES} == {"coco", "aic", "crowdpose", "ochuman", "ap10k",
                                             "apt36k", "wholebody"}
    # an annotation with id 0 is matched (pycocotools would count its detection as a miss)
    zero = by_name["coco-annotation-id-0"]
    assert any(a["id"] == 0 for a in _DATA["ground_truths"][zero["gt"]]["annotations"])
    # the head/neck-only person is in the file with num_keypoints 0 but labelled joints
    hn = _DATA["ground_truths"][by_name["crowdpose-head-neck-only"]["gt"]]["annotations"][-1]
    assert hn["num_keypoints"] == 0 and max(hn["keypoints"][2::3]) > 0
    # every crowd level is populated by some case
    levels = [by_name[n]["expected"] for n in ("crowdpose-head-neck-easy-medium",
                                               "crowdpose-hard")]
    assert levels[0]["AP (E)"] > -1 and levels[0]["AP (M)"] > -1 and levels[1]["AP (H)"] > -1
    # medium-sized people exist, so AP (M) is a real number somewhere
    assert by_name["coco-noisy-0"]["expected"]["AP (M)"] > 0


def test_crowdpose_counts_the_files_num_keypoints(tmp_path):
    """A person labelled only at head_top/neck (file num_keypoints 0) is ignored, not scored:
    recounting the labelled joints, as we did before, changes AP by several points."""
    case = next(c for c in _CASES if c["case"] == "head-neck-only")
    gt = json.loads(json.dumps(_DATA["ground_truths"][case["gt"]]))
    ours = evaluate("crowdpose", _write(tmp_path / "a.json", gt), case["results"])
    assert ours["AP"] == pytest.approx(case["expected"]["AP"], abs=1e-6)
    for ann in gt["annotations"]:  # what recounting over all 14 joints amounts to
        ann["num_keypoints"] = sum(v > 0 for v in ann["keypoints"][2::3])
    recounted = evaluate("crowdpose", _write(tmp_path / "b.json", gt), case["results"])
    assert abs(recounted["AP"] - ours["AP"]) > 0.01


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path
