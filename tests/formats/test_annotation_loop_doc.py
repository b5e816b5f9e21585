"""docs/FINETUNE.md's annotation loop, run as written: fine-tuned model -> prelabel.py (COCO
Keypoints for CVAT, Label Studio tasks) -> the corrected file -> training -> `vitpose test`."""

from __future__ import annotations

import json
import re
import runpy
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from vitpose.dataset_meta import load_dataset_meta
from vitpose.datasets.coco import read_coco_keypoints

ROOT = Path(__file__).resolve().parents[2]


def _doc() -> tuple[dict[str, str], list[str]]:
    text = (ROOT / "docs" / "FINETUNE.md").read_text()
    files, snippets = {}, []
    for body in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        first = body.splitlines()[0]
        if first.startswith("# file: "):
            files[first[len("# file: "):].strip()] = body
        snippets.append(body)
    return files, snippets


@pytest.fixture()
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_annotation_loop_of_the_finetune_walkthrough(data_dir, tmp_path, monkeypatch,
                                                     one_thread) -> None:
    from vitpose.cli.main import main

    files, snippets = _doc()
    assert "prelabel.py" in files
    monkeypatch.chdir(tmp_path)
    for name, body in files.items():
        Path(name).write_text(body)
    monkeypatch.setattr(sys, "argv", ["make_upper_body.py", str(data_dir / "coco")])
    runpy.run_path("make_upper_body.py", run_name="__main__")
    assert main(["train", "debug/tiny_coco", "--data-root", str(data_dir), "--no-progress",
                 "--work-dir", "work_dirs/tiny_coco", "--set", "schedule.epochs=1",
                 "data.val=[]"]) == 0
    assert main(["train", "finetune_upper_body.yaml", "--no-progress", "--set",
                 "model.weights=work_dirs/tiny_coco/latest.pth", "schedule.epochs=1",
                 "data.val=[]"]) == 0
    shutil.copy("work_dirs/finetune_upper_body/latest.pth",
                "work_dirs/finetune_upper_body/best.pth")
    # predict -> export
    runpy.run_path("prelabel.py", run_name="__main__")
    meta = load_dataset_meta("upper_body_7.yaml")
    prelabels = json.loads(Path("prelabels.json").read_text())
    assert len(prelabels["images"]) == 2 and prelabels["categories"][0]["keypoints"] == \
        list(meta.keypoint_names)
    assert Path("tasks.label_config.xml").read_text().count("<Label value=") == 1 + 7
    # the documented Label Studio import, on the tasks with their predictions accepted
    tasks = json.loads(Path("tasks.json").read_text())
    Path("export.json").write_text(json.dumps(
        [{**t, "id": i, "annotations": [{"result": t["predictions"][0]["result"]}]}
         for i, t in enumerate(tasks)]))
    Path("my_data/annotations").mkdir(exist_ok=True)
    snippet = next(s for s in snippets if "label_studio_to_coco(" in s)
    exec(compile(textwrap.dedent(snippet), "FINETUNE.md", "exec"), {})
    assert len(read_coco_keypoints("my_data/annotations/corrected.json", meta,
                                   image_root="my_data/images")) == 4
    # (edit) -> train -> evaluate, as the page's commands
    shutil.copy("prelabels.json", "my_data/annotations/corrected.json")
    assert main(["train", "finetune_upper_body.yaml", "--work-dir", "work_dirs/corrected",
                 "--no-progress", "--set",
                 "model.weights=work_dirs/finetune_upper_body/best.pth",
                 "data.train.0.ann_file=annotations/corrected.json", "schedule.epochs=2"]) == 0
    assert main(["test", "finetune_upper_body.yaml", "--weights",
                 "work_dirs/corrected/best.pth"]) == 0
    page = (ROOT / "docs" / "FINETUNE.md").read_text()
    for text in ("cp prelabels.json my_data/annotations/corrected.json",
                 "data.train.0.ann_file=annotations/corrected.json schedule.epochs=2",
                 "vitpose test finetune_upper_body.yaml --weights work_dirs/corrected/best.pth"):
        assert text in page
