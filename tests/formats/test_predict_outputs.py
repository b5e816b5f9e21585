"""The output formats as options of `vitpose predict` (and of `vitpose.Predictor`): the COCO
sample images and the sample video through a tiny random model with one whole-image box; each
file is read back by the library its users read it with (pandas, pyarrow, json, numpy)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import vitpose
from vitpose.cli.main import main
from vitpose.inference.pipeline import PoseEstimator

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

from tiny_models import tiny_simple_model  # noqa: E402


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return vitpose.save_checkpoint(tiny_simple_model(),
                                   tmp_path_factory.mktemp("ckpt") / "tiny.pth")


@pytest.fixture()
def images(data_dir: Path, tmp_path: Path) -> Path:
    """The COCO sample images (copied: the folder also holds annotation files)."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in sorted((data_dir / "coco").glob("*.jpg")):
        (folder / p.name).write_bytes(p.read_bytes())
    return folder


@pytest.fixture()
def demo(data_dir: Path) -> Path:
    path = data_dir / "video" / "demo.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


def predict(*args: object) -> int:
    return main(["predict", *map(str, args), "--device", "cpu", "--detector", "whole-image"])


def _exports(out: Path) -> list[str]:
    return ["--table", out / "poses.parquet", "--openpose", out / "openpose",
            "--openpose-render", "--coco-keypoints", out / "prelabels.json",
            "--label-studio", out / "tasks.json", "--export-min-score", "0"]


def _read_all(out: Path) -> dict[str, object]:
    """Every exported file's content, for comparing runs."""
    return {str(p.relative_to(out)): p.read_bytes()
            for p in sorted(out.rglob("*")) if p.is_file() and p.suffix in (".json", ".csv",
                                                                            ".parquet", ".npz")
            and "results" not in p.name}


def test_predict_writes_each_format_for_images(ckpt, images, tmp_path, capsys):
    out = tmp_path / "out"
    assert predict(images, "--model", ckpt, "--out-dir", out, "--no-draw",
                   *_exports(out)) == 0
    printed = capsys.readouterr().out
    assert "exported" in printed
    names = sorted(p.name for p in images.glob("*.jpg"))

    table = pd.read_parquet(out / "poses.parquet")
    assert len(table) == len(names) * 17  # one whole-image person per image x 17 keypoints
    assert {"x", "y", "score"} <= set(table.columns)

    files = sorted(p.name for p in (out / "openpose").glob("*.json"))
    assert files == sorted(n.replace(".jpg", "_keypoints.json") for n in names)
    pose = json.loads((out / "openpose" / files[0]).read_text())
    assert len(pose["people"]) == 1 and len(pose["people"][0]["pose_keypoints_2d"]) == 18 * 3
    assert list((out / "openpose").glob("*.png"))  # --openpose-render

    coco = json.loads((out / "prelabels.json").read_text())
    assert sorted(i["file_name"] for i in coco["images"]) == names  # relative to the input
    assert len(coco["annotations"]) == len(names)
    tasks = json.loads((out / "tasks.json").read_text())
    assert len(tasks) == len(names) and tasks[0]["predictions"]
    assert (out / "tasks.label_config.xml").is_file()


def test_csv_table_and_openpose_drawing_style(ckpt, images, tmp_path):
    out = tmp_path / "out"
    assert predict(images, "--model", ckpt, "--out-dir", out, "--table", out / "poses.csv",
                   "--draw-style", "openpose") == 0
    assert len(pd.read_csv(out / "poses.csv")) == 4 * 17
    import cv2
    drawn = cv2.imread(str(next(out.glob("*_pose.jpg"))))
    original = cv2.imread(str(images / next(out.glob("*_pose.jpg")).name.replace("_pose", "")))
    assert drawn.shape == original.shape
    # black canvas with coloured limbs: most pixels are black, some are not
    dark = (drawn.max(axis=2) < 30).mean()
    assert 0.5 < dark < 1.0


def test_existing_target_is_refused_before_any_work(ckpt, images, tmp_path, capsys,
                                                    monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "poses.csv").write_text("precious")

    def no_model(*a, **k):
        raise AssertionError("the model was built")

    monkeypatch.setattr("vitpose.predict.images.build_estimator", no_model)
    assert predict(images, "--model", ckpt, "--out-dir", out, "--table", out / "poses.csv") == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "poses.csv" in err and "--overwrite" in err
    assert (out / "poses.csv").read_text() == "precious"
    assert not (out / "results.json").exists()


def test_tracks_need_a_video_and_sharded_runs_refuse_formats(ckpt, images, tmp_path, capsys):
    out = tmp_path / "out"
    assert predict(images, "--model", ckpt, "--out-dir", out, "--out", out / "r.jsonl",
                   "--table", out / "t.csv") == 2
    err = capsys.readouterr().err
    assert "sharded run" in err and err.count("error:") == 1
    assert not (out / "t.csv").exists()
    assert predict(images, "--model", ckpt, "--out-dir", out, "--tracks", out / "t.csv") == 2
    err = capsys.readouterr().err
    assert "--tracks is for videos" in err and err.count("error:") == 1
    assert not (out / "results.json").exists()  # refused before any work


def test_video_tracks_with_smoothing(ckpt, demo, tmp_path, capsys):
    out = tmp_path / "out"
    assert predict(demo, "--model", ckpt, "--out-dir", out, "--no-draw",
                   "--tracks", out / "tracks.parquet", "--smooth-tracks",
                   "--table", out / "frames.csv", "--openpose", out / "op") == 0
    captured = capsys.readouterr()
    tracks = pd.read_parquet(out / "tracks.parquet")
    assert sorted(tracks["frame"].unique()) == [0, 1, 2, 3, 4]
    assert len(tracks) == 5 * 17 and "time_s" in tracks.columns  # one person per frame
    assert tracks["track_id"].notna().all()
    assert "note:" in captured.err  # what the smoother did
    assert len(pd.read_csv(out / "frames.csv")) == 5 * 17
    assert sorted(p.name for p in (out / "op").glob("*.json"))[0].startswith("demo_")

    arrays = tmp_path / "out2"
    assert predict(demo, "--model", ckpt, "--out-dir", arrays, "--draw-style", "openpose",
                   "--background", "image", "--tracks", arrays / "tracks.npz") == 0
    assert (arrays / "demo_pose.mp4").is_file()  # drawn OpenPose-style on the frames
    with np.load(arrays / "tracks.npz") as npz:
        assert any(npz[k].shape[-2:] == (17, 3) for k in npz.files)


def _interrupt_on(monkeypatch, n: int) -> dict[str, int]:
    calls = {"n": 0}
    real = PoseEstimator.crops

    def crops(self, image, boxes):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(self, image, boxes)

    monkeypatch.setattr(PoseEstimator, "crops", crops)
    return calls


def test_resumed_image_run_writes_the_same_files(ckpt, images, tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    args = ("--model", ckpt, "--batch-size", "1", "--no-draw")
    assert predict(images, *args, "--out-dir", whole, *_exports(whole)) == 0

    resumed = tmp_path / "resumed"
    calls = _interrupt_on(monkeypatch, 3)
    assert predict(images, *args, "--out-dir", resumed, *_exports(resumed)) == 130
    assert not (resumed / "poses.parquet").exists()  # written once the run is complete
    calls["n"] = -100
    assert predict(images, *args, "--out-dir", resumed, *_exports(resumed)) == 0
    assert calls["n"] == -100 + 2  # only the two missing images went through the model
    assert _read_all(resumed) == _read_all(whole)


def test_resumed_video_run_writes_the_same_tracks(ckpt, demo, tmp_path, monkeypatch):
    args = ("--model", ckpt, "--no-draw")
    whole = tmp_path / "whole"
    assert predict(demo, *args, "--out-dir", whole, "--tracks", whole / "t.csv",
                   "--smooth-tracks", "--openpose", whole / "op") == 0
    resumed = tmp_path / "resumed"
    calls = _interrupt_on(monkeypatch, 4)
    assert predict(demo, *args, "--out-dir", resumed, "--tracks", resumed / "t.csv",
                   "--smooth-tracks", "--openpose", resumed / "op") == 130
    calls["n"] = -100
    assert predict(demo, *args, "--out-dir", resumed, "--tracks", resumed / "t.csv",
                   "--smooth-tracks", "--openpose", resumed / "op") == 0
    assert _read_all(resumed) == _read_all(whole)


def test_help_lists_every_output_option(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = capsys.readouterr().out
    for option in ("--table", "--tracks", "--openpose", "--coco-keypoints", "--label-studio",
                   "--smooth-tracks", "--max-gap", "--smooth-window", "--openpose-body",
                   "--openpose-render", "--background", "--select-uncertain",
                   "--export-min-score", "--draw-style"):
        assert option in text


def test_predictor_save_and_result_methods(ckpt, images, demo, tmp_path):
    pytest.importorskip("supervision")
    predictor = vitpose.Predictor(str(ckpt), detector="whole-image", device="cpu")
    results = predictor(str(images))
    report = predictor.save(results, "table", tmp_path / "poses.csv")
    assert report.paths == [tmp_path / "poses.csv"]
    assert len(pd.read_csv(tmp_path / "poses.csv")) == 4 * 17
    assert len(results[0].to_pandas()) == 17
    assert vitpose.formats.to_pandas(results).shape[0] == 4 * 17
    key_points = results[0].to_supervision()
    assert key_points.xy.shape == (1, 17, 2)

    frames = predictor(str(demo))
    report = predictor.save(frames, "tracks", tmp_path / "tracks.parquet", smooth=True)
    tracks = pd.read_parquet(tmp_path / "tracks.parquet")
    assert sorted(tracks["frame"].unique()) == [0, 1, 2, 3, 4]
    assert tracks["time_s"].max() > 0  # the video's frame rate was kept
    assert report.notes


def test_demo_offers_the_csv_table_and_openpose_json(ckpt, images, demo, tmp_path):
    from vitpose.demo import PoseDemo

    app = PoseDemo(str(ckpt), work_dir=tmp_path / "demo", max_frames=3, backend="torch")
    out = app.predict_image(str(next(images.glob("*.jpg"))),
                            box_source="Whole image (one box)")
    assert not out.error, out.message
    csv, pose = out.downloads
    assert csv.endswith("_poses.csv") and len(pd.read_csv(csv)) == 17
    assert len(json.loads(Path(pose).read_text())["people"]) == 1

    out = app.predict_video(str(demo), box_source="Whole image (one box)")
    assert not out.error, out.message
    csv, archive = out.downloads
    assert len(pd.read_csv(csv)) == 3 * 17  # the demo's limit of 3 frames
    import zipfile
    with zipfile.ZipFile(archive) as z:
        assert len([n for n in z.namelist() if n.endswith(".json")]) == 3


def test_finetune_step7_commands_with_a_custom_keypoint_set(images, tmp_path, monkeypatch):
    """docs/FINETUNE.md step 7: `vitpose predict ... --dataset-meta upper_body_7.yaml
    --coco-keypoints prelabels.json --select-uncertain 2` and `--label-studio tasks.json`."""
    import re

    from vitpose.dataset_meta import load_dataset_meta

    text = (Path(__file__).resolve().parents[2] / "docs" / "FINETUNE.md").read_text()
    layout = next(b for b in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
                  if b.startswith("# file: upper_body_7.yaml"))
    monkeypatch.chdir(tmp_path)
    Path("upper_body_7.yaml").write_text(layout)
    meta = load_dataset_meta("upper_body_7.yaml")
    model = vitpose.build_model("vitpose-b-simple", embed_dim=32, depth=2, num_heads=2,
                                num_keypoints=meta.num_keypoints)
    weights = vitpose.save_checkpoint(model, tmp_path / "best.pth")
    common = (images, "--weights", weights, "--dataset-meta", "upper_body_7.yaml", "--no-draw")
    assert predict(*common, "--coco-keypoints", "prelabels.json", "--select-uncertain", "2") == 0
    coco = json.loads(Path("prelabels.json").read_text())
    assert len(coco["images"]) == 2
    assert coco["categories"][0]["keypoints"] == list(meta.keypoint_names)
    assert predict(*common, "--label-studio", "tasks.json", "--out-dir", "second") == 0
    assert len(json.loads(Path("tasks.json").read_text())) == 4
