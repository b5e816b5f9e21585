"""`vitpose demo`: the handlers (no server, no Gradio) on the sample images with a tiny model, the
page built without launching, and the command without Gradio."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import vitpose
from vitpose.cli.main import build_parser, main
from vitpose.demo import BOX_SOURCES, PoseDemo, default_model_choices, make_example_video
from vitpose.demo.app import IMAGE_TABLE_HEADERS, VIDEO_TABLE_HEADERS
from vitpose.inference.io import read_image
from vitpose.inference.pipeline import PoseEstimator
from vitpose.inference.video import VideoReader

WHOLE = "Whole image (one box)"


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny.pt"
    vitpose.save_checkpoint(vitpose.build_model("vitpose-b-simple", embed_dim=32, depth=2,
                                                num_heads=2), path)
    return str(path)


@pytest.fixture(scope="module")
def demo(tiny_path, tmp_path_factory):
    # float32 (the default is auto: bf16 where the CPU has it) and the torch engine (auto may
    # pick another one, equal within its accuracy gate) so that the numbers can be compared
    # exactly with a float32 `PoseEstimator`
    return PoseDemo(tiny_path, work_dir=tmp_path_factory.mktemp("demo"), max_frames=3,
                    dtype="float32", backend="torch")


@pytest.fixture(scope="module")
def coco_images(data_dir):
    images = sorted((data_dir / "coco").glob("*.jpg"))
    assert images, "no sample images"
    return images


def _read_json(path):
    with open(path) as f:
        return json.load(f)


# -- image handler ------------------------------------------------------------------------------

@pytest.mark.parametrize("box_source", [  # offline ones
    next(k for k, v in BOX_SOURCES.items() if v == "hog"), WHOLE])
def test_image_handler_on_sample_images(demo, coco_images, box_source):
    for path in coco_images:
        out = demo.predict_image(str(path), demo.model_labels[0], box_source, True, 0.3)
        assert not out.error, out.message
        image = read_image(path)
        assert out.image.shape == image.shape and out.image.dtype == np.uint8
        assert not np.array_equal(out.image, image)  # at least the box is drawn
        entries = _read_json(out.json_path)
        assert entries == out.results and len(entries) >= 1  # whole image when HOG finds none
        for e in entries:
            assert len(e["keypoints"]) == 17 * 3 and e["image_id"] == path.name
        assert len(out.table) == len(entries)
        assert all(len(row) == len(IMAGE_TABLE_HEADERS) for row in out.table)
        assert "instance(s)" in out.message and "17 keypoints" in out.message


def test_image_handler_is_the_pipeline_path(demo, coco_images):
    """Same numbers as `PoseEstimator` called directly (the one test-time path)."""
    path = coco_images[0]
    out = demo.predict_image(path, None, WHOLE, True, 0.3)
    model = vitpose.load_model(demo.choices[0].model)
    expected = PoseEstimator(model)(str(path), None, image_id=path.name).to_coco()
    assert out.results == expected
    no_flip = demo.predict_image(path, None, WHOLE, False, 0.3).results
    expected = PoseEstimator(model).with_settings(flip_test=False)(
        str(path), None, image_id=path.name).to_coco()
    assert no_flip == expected
    assert no_flip[0]["keypoints"] != out.results[0]["keypoints"]


def test_keypoint_threshold_sets_what_is_drawn(demo, coco_images):
    scores = demo.predict_image(coco_images[0], None, WHOLE).results[0]["keypoints"][2::3]
    low = demo.predict_image(coco_images[0], None, WHOLE, True, min(scores) - 1)  # random:
    high = demo.predict_image(coco_images[0], None, WHOLE, True, max(scores) + 1)  # any scores
    assert low.table[0][-1] == "17/17" and high.table[0][-1] == "0/17"
    assert not np.array_equal(low.image, high.image)  # keypoints drawn only with the low one
    assert low.results == high.results  # the JSON keeps every keypoint with its score


def test_models_are_loaded_once_per_choice(demo, coco_images, monkeypatch):
    demo.predict_image(coco_images[0], None, WHOLE)
    import vitpose.demo.app as app

    def fail(*args, **kwargs):
        raise AssertionError("model loaded again")

    monkeypatch.setattr(app, "build_estimator", fail)
    assert not demo.predict_image(coco_images[0], None, WHOLE, False).error


@pytest.mark.parametrize("content, name, words", [
    (b"\xff\xd8\xff\xe0 this is not really a jpeg" * 20, "corrupt.jpg", "cannot decode image"),
    (b"just text\n", "notes.png", "cannot decode image"),
    (b"", "empty.jpg", "is empty"),
])
def test_bad_image_upload_is_a_message(demo, tmp_path, content, name, words):
    path = tmp_path / name
    path.write_bytes(content)
    out = demo.predict_image(str(path))
    assert out.error and out.image is None and out.json_path is None
    assert out.message.startswith("**Error:**") and words in out.message
    assert str(tmp_path) not in out.message  # named by the file name, not the server path


def test_missing_and_oversized_uploads(tiny_path, tmp_path, coco_images):
    small = PoseDemo(tiny_path, work_dir=tmp_path, max_upload_mb=0.01)
    out = small.predict_image(coco_images[0])
    assert out.error and "limit" in out.message
    assert "upload an image" in small.predict_image(None).message
    assert "not found" in small.predict_image(tmp_path / "gone.jpg").message
    assert "upload a video" in small.predict_video(None).message


def test_only_what_the_model_can_do_is_offered(demo, tiny_path, coco_images, tmp_path):
    # a checkpoint with a COCO head only: no whole-body, animal or people-and-animals entry
    assert [c.dataset for c in demo.choices] == [None]
    assert len(default_model_choices(tiny_path)) == 1
    # a choice forced on it anyway still gives one message, not a crash
    from vitpose.demo.app import ModelChoice
    forced = PoseDemo(choices=[ModelChoice("whole body", tiny_path, None, "wholebody")],
                      work_dir=tmp_path)
    out = forced.predict_image(coco_images[0], None, WHOLE)
    assert out.error and "wholebody" in out.message


@pytest.mark.slow
def test_vitpose_plus_dataset_choices(tmp_path, data_dir):
    """Whole body and animal are ViTPose+ dataset (head and expert) choices."""
    path = tmp_path / "tiny_plus.pt"
    vitpose.save_checkpoint(vitpose.build_model("vitpose-plus-s", embed_dim=32, depth=2,
                                                num_heads=2), path)
    demo = PoseDemo(str(path), work_dir=tmp_path / "work")
    by_dataset = {c.dataset: c.label for c in demo.choices}
    for dataset, image, k in [("wholebody", data_dir / "coco" / "000000000785.jpg", 133),
                              ("ap10k", next((data_dir / "ap10k").glob("*.jpg")), 17)]:
        out = demo.predict_image(image, by_dataset[dataset], WHOLE, True, 0.3)
        assert not out.error, out.message
        assert f"{dataset} ({k} keypoints)" in out.message
        assert [len(e["keypoints"]) for e in out.results] == [3 * k]


# -- video handler ------------------------------------------------------------------------------

def test_video_handler(demo, data_dir):
    calls = []
    out = demo.predict_video(data_dir / "video" / "demo.mp4", None, None, True, 0.3,
                             progress=lambda done, total: calls.append((done, total)))
    assert not out.error, out.message
    assert calls == [(1, 3), (2, 3), (3, 3)]
    assert out.frames == 3 and "stopped after the first 3 frames" in out.message
    frames = _read_json(out.json_path)
    assert [f["frame"] for f in frames] == [0, 1, 2]
    for f in frames:
        assert f["instances"], "HOG finds people in every frame of demo.mp4"
        assert all(len(i["keypoints"]) == 51 and "track_id" in i for i in f["instances"])
    with VideoReader(out.mp4_path) as r:
        assert r.size_hw == (540, 960) and len(list(r)) == 3
    with VideoReader(out.video_path) as r:  # what the page plays (mp4 or a WebM preview)
        assert len(list(r)) == 3
    assert out.table and all(len(row) == len(VIDEO_TABLE_HEADERS) for row in out.table)
    tracks = {i["track_id"] for f in frames for i in f["instances"]}
    assert {row[0] for row in out.table} == tracks


def test_bad_video_upload_is_a_message(demo, tmp_path, coco_images):
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    for path in (corrupt, coco_images[0]):
        out = demo.predict_video(path)
        assert out.error and out.video_path is None and out.mp4_path is None
        assert out.message.startswith("**Error:**") and "video" in out.message


def test_example_clip(tmp_path, demo):
    clip = make_example_video(demo.example_image(), tmp_path / "clip.mp4", frames=6)
    with VideoReader(clip) as r:
        frames = list(r)
    assert len(frames) == 6 and frames[0].shape[:2] == (426, 640)  # 425 padded to even
    assert not np.array_equal(frames[0], frames[-1])


# -- menus, page and command -------------------------------------------------------------------

def test_model_menu():
    labels = [c.dataset for c in default_model_choices()]
    assert labels == [None, "auto", "coco", "wholebody", "ap10k", "apt36k"]
    assert [c.dataset for c in default_model_choices("vitpose-b-simple")] == [None]
    plus = default_model_choices("vitpose-plus-b", dataset="ap10k")
    assert plus[0].dataset == "ap10k" and plus[0].label.startswith("Animal")
    assert {c.dataset for c in plus[1:]} == {"auto", "coco", "wholebody", "apt36k"}


def test_build_app_without_launching(demo):
    gr = pytest.importorskip("gradio", reason="gradio (the vitpose[demo] extra) not installed")
    app = build_app_quietly(demo)
    assert isinstance(app, gr.Blocks) and app.vitpose_demo is demo
    config = json.dumps(app.get_config_file())
    for elem in ("image-input", "image-run", "image-output", "image-json", "image-status",
                 "video-input", "video-run", "video-output", "video-mp4", "model-choice",
                 "box-source", "flip-test", "kpt-thr", "webcam-input", "webcam-output",
                 "webcam-status", "webcam-flip-test"):
        assert f'"{elem}"' in config
    # the webcam tab has its own flip checkbox, off by default; the image/video one is on
    boxes = {c["props"].get("elem_id"): c["props"] for c in app.get_config_file()["components"]}
    assert boxes["webcam-flip-test"]["value"] is False and boxes["flip-test"]["value"] is True
    ids = {c["id"]: c["props"].get("elem_id") for c in app.get_config_file()["components"]}
    stream = next(d for d in app.get_config_file()["dependencies"]
                  if d.get("api_name") == "predict_frame")
    assert [ids.get(i) for i in stream["inputs"]] == [
        "webcam-input", "model-choice", "box-source", "webcam-flip-test", "kpt-thr"]
    video = next(d for d in app.get_config_file()["dependencies"]
                 if d.get("api_name") == "predict_video")
    assert [ids.get(i) for i in video["inputs"]] == [
        "video-input", "model-choice", "box-source", "flip-test", "kpt-thr",
        "video-det-interval"]  # the video tab's detection interval reaches the job
    assert boxes["video-det-interval"]["value"] == demo.det_interval
    assert "predict_image" in config and "predict_video" in config
    assert "predict_frame" in config  # the webcam stream
    assert not getattr(app, "is_running", False)


def build_app_quietly(demo):
    from vitpose.demo import build_app
    return build_app(demo)


def test_command_defaults():
    args = build_parser().parse_args(["demo"])
    assert args.host == "127.0.0.1" and args.model is None and args.max_upload_mb > 0


def test_command_without_gradio(monkeypatch, capsys, tiny_path):
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main(["demo", "--model", tiny_path]) == 2
    err = capsys.readouterr().err
    assert 'pip install "vitpose[demo]"' in err and "Traceback" not in err


# -- people and animals, page language, webcam ----------------------------------------------------

def test_people_and_animals_choice(tmp_path, data_dir):
    path = tmp_path / "tiny_plus.pt"
    vitpose.save_checkpoint(vitpose.build_model("vitpose-plus-s", embed_dim=32, depth=2,
                                                num_heads=2), path)
    demo = PoseDemo(str(path), work_dir=tmp_path / "work", dtype="float32")
    auto = next(c.label for c in demo.choices if c.dataset == "auto")
    assert auto.startswith("People and animals")
    out = demo.predict_image(data_dir / "coco" / "000000000785.jpg", auto, WHOLE)
    assert not out.error, out.message
    assert [(e["dataset"], len(e["keypoints"])) for e in out.results] == [("coco", 51)]


@pytest.mark.parametrize("message", [
    "could not download the detector 'x/y' from the Hugging Face hub (offline). If this "
    "machine is offline, download the detector on another machine and pass its folder "
    "(--detector PATH; files already in the Hugging Face cache are used with "
    "HF_HUB_OFFLINE=1), or use '--detector hog' (weaker, offline), '--detector none' (whole "
    "image) or a detections file.",
    "could not download 'a/b' from the Hugging Face hub (no network.). If this machine is "
    "offline, download the checkpoint on another machine and pass its path with --weights PATH "
    "(Python: weights=PATH); files already in the Hugging Face cache are used with "
    "HF_HUB_OFFLINE=1.",
    "the detector 'x/y': not in the Hugging Face cache (/root/.cache/huggingface/hub), and "
    "HF_HUB_OFFLINE=1 forbids downloading. If this machine is offline, download the detector "
    "on another machine and pass its folder (--detector PATH; files already in the Hugging Face "
    "cache are used with HF_HUB_OFFLINE=1), or use '--detector hog' (weaker, offline), "
    "'--detector none' (whole image) or a detections file.",
    "no built-in keypoint metadata for dataset 'x' (a custom dataset?): pass its metadata file "
    "(--dataset-meta FILE, or meta=load_dataset_meta(FILE) in Python)",
])
def test_messages_speak_the_page_language(message):
    from vitpose.demo.app import page_text
    text = page_text(message)
    assert "--" not in text and ".." not in text.replace("...", ""), text
    assert text.split()[0] in ("could", "no", "the")  # the reason itself is kept


def test_webcam_frames_stream_with_fps_and_tracking(demo, data_dir):
    clip = data_dir / "video" / "demo.mp4"
    frames = list(VideoReader(clip))
    demo.webcam_det_interval = 2
    texts = []
    for f in frames:
        drawn, text = demo.predict_frame(f, None, WHOLE, False, 0.0)
        assert drawn is not None and drawn.shape == f.shape, text
        texts.append(text)
    assert "measuring" in texts[0] and all("frames/s" in t for t in texts[1:])
    assert demo._webcam["fps"] > 0 and demo._webcam["frames"] == len(frames)
    # the camera disappears: one message, and the next frame starts again
    drawn, text = demo.predict_frame(None, None, WHOLE)
    assert drawn is None and text.startswith("**Error:**") and "camera" in text
    drawn, text = demo.predict_frame(frames[0], None, WHOLE)
    assert drawn is not None and "instance(s)" in text
    # live frames skip the flip test unless asked (the page's webcam checkbox, off)
    assert demo._webcam["key"] == (None, WHOLE, False)


def test_weights_alone_take_the_files_architecture(tmp_path, coco_images):
    """``--weights FILE`` without ``--model`` (demo) and ``from_pretrained(weights=FILE)``: the
    file's own architecture (a ViT-S-like checkpoint), not the default variant's, which would
    contradict the file."""
    path = tmp_path / "small.pt"
    vitpose.save_checkpoint(vitpose.build_model("vitpose-b-simple", embed_dim=48, depth=2,
                                                num_heads=3), path)
    choices = default_model_choices(weights=str(path))
    assert choices[0].model is None and choices[0].weights == str(path)
    assert "small.pt" in choices[0].label
    demo = PoseDemo(weights=str(path), work_dir=tmp_path / "work", dtype="float32",
                    backend="torch")
    out = demo.predict_image(coco_images[0], None, WHOLE)
    assert not out.error, out.message
    assert [len(e["keypoints"]) for e in out.results] == [51]
    est = PoseEstimator.from_pretrained(weights=str(path))
    assert est.model.cfg.embed_dim == 48 and est.dataset == "coco"


def test_webcam_runs_torch_on_one_thread_beside_an_exported_engine(monkeypatch):
    """torch only prepares and decodes small tensors beside OpenVINO / ONNX Runtime: one
    thread there, restored after; a model run by PyTorch keeps its threads."""
    import types

    import torch

    from vitpose.demo.app import _torch_threads_beside

    before = torch.get_num_threads()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    seen = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    exported = types.SimpleNamespace(engine=types.SimpleNamespace(backend="openvino"))
    with _torch_threads_beside(exported):
        assert seen == [1]
    assert seen == [1, 2]
    seen.clear()
    for est in (types.SimpleNamespace(engine=types.SimpleNamespace(backend="torch")),
                types.SimpleNamespace()):  # a routed estimator: PyTorch
        with _torch_threads_beside(est):
            pass
    assert seen == []
    monkeypatch.undo()
    assert torch.get_num_threads() == before


def test_missing_released_weights_message_says_the_way_out(tmp_path, monkeypatch, coco_images):
    """Offline without the released weights: the page says how to get going (download the
    checkpoint elsewhere and start the demo with it), not only what failed."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("VITPOSE_CACHE", str(tmp_path / "cache"))
    demo = PoseDemo(work_dir=tmp_path / "work", backend="torch")
    out = demo.predict_image(coco_images[0], None, WHOLE)
    assert out.error and "released weights" in out.message
    assert "download the checkpoint" in out.message and "start the demo with that file" in \
        out.message, out.message
