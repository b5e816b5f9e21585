"""The `vitpose demo` web app: upload an image or a video, get the poses drawn, a table and JSON.

Two layers, so that everything but the page itself is testable without a server:

* `PoseDemo` holds the handlers as plain methods (`predict_image`, `predict_video`). They take a
  file path and the page's settings and return an `ImageOutput` / `VideoOutput`; a bad upload
  (not an image, a corrupt video, a missing head for the chosen keypoint set, no network for
  released weights) becomes a message in the result, never an exception. Models are loaded on
  first use and cached per ``(model, weights, dataset)``. The estimation itself is the one
  test-time path of `vitpose.inference.pipeline` (built by
  `vitpose.inference.builder.build_estimator`, drawn by ``PoseEstimator.draw``), tracking is
  `vitpose.inference.video.PoseTracker`; `predict_frame` serves the webcam stream.
* `build_app` wraps a `PoseDemo` in a Gradio ``Blocks`` page with image, video and webcam tabs
  (Gradio is the optional extra ``vitpose[demo]``, imported only there); `launch_app` serves it,
  on 127.0.0.1 by default, with an upload size limit.
"""

from __future__ import annotations

import atexit
import contextlib
import inspect
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import InputError, VitPoseError
from ..inference.builder import BoxSource
from ..inference.io import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    is_image_file,
    max_pixels_from_env,
    read_image,
)
from ..inference.pipeline import Estimator, PoseResult
from ..inference.tracking import check_det_interval
from ..inference.video import VideoReader, VideoWriter
from ..predict import FrameLoop, PredictOptions, build_estimator, estimate_image
from .choices import ModelChoice, default_model_choices
from .media import fit_image, make_example_video
from .results import ImageOutput, VideoOutput, other_formats

__all__ = [
    "BOX_SOURCES",
    "WEBCAM_FLIP_TEST",
    "ImageOutput",
    "ModelChoice",
    "PoseDemo",
    "VideoOutput",
    "build_app",
    "default_model_choices",
    "gradio_missing_message",
    "launch_app",
    "make_example_video",
]

log = logging.getLogger("vitpose.demo")

#: Box source label shown in the page -> `build_detector` name.
BOX_SOURCES: dict[str, str] = {
    "Detector: D-FINE-N (fast; people and animals; downloaded on first use)": "auto",
    "Detector: RT-DETR (larger, slower; downloaded on first use)": "rtdetr",
    "Detector: HOG (people only; offline, low quality)": "hog",
    "Whole image (one box)": "whole-image",
}
_HOG_LABEL = "Detector: HOG (people only; offline, low quality)"
_WHOLE_LABEL = "Whole image (one box)"
IMAGE_TABLE_HEADERS = ["#", "box x", "box y", "box w", "box h", "box score", "pose score",
                       "keypoints shown"]
VIDEO_TABLE_HEADERS = ["track", "frames", "first frame", "last frame", "mean pose score"]
_ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"  # installed with the package
_EXAMPLES_DIR = Path(__file__).resolve().parents[3] / "examples"  # the source checkout's
_EXAMPLE_IMAGE = "000000000785.jpg"
#: The webcam tab's flip test, off by default (its own checkbox in the tab): the flip test runs
#: the model twice per person (each crop and its mirror) for a small accuracy gain, which
#: nearly halves the frame rate; real-time pose tools such as rtmlib do not
#: flip.
#: docs/PERFORMANCE.md ("Webcam tab") has the frames/s both ways for S, B, L and H.
WEBCAM_FLIP_TEST = False
_PREVIEW_MAX_SIDE = 854  # browser preview of a video (when the mp4 itself is not playable)
_KEEP_REQUESTS = 32  # result folders kept in the work folder


def gradio_missing_message() -> str:
    return ('the web demo needs Gradio, an optional extra: pip install "vitpose[demo]" '
            "(or pip install gradio)")


#: Command-line advice in library messages -> what to do in the page.
_PAGE_WORDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"If this machine is offline, download the detector.*?detections file\.", re.S),
     f"Without internet access choose the box source \u201c{_HOG_LABEL}\u201d or "
     f"\u201c{_WHOLE_LABEL}\u201d."),
    (re.compile(r"If this machine is offline, download the checkpoint.*?HF_HUB_OFFLINE=1\.",
                re.S),
     "If this computer is offline, download the checkpoint on another one and start the demo "
     "with that file as its model."),
    (re.compile(r"To work offline: download the checkpoint on a machine with internet "
                r"(\(or from \S+\) )?and pass its path with --weights PATH.*?README\)\.", re.S),
     r"To work offline: download the checkpoint on a machine with internet \1and start the "
     "demo with that file as its weights, or copy that machine's Hugging Face cache here."),
    (re.compile(r"Without internet access use '--detector hog'.*?detections file\.", re.S),
     f"Without internet access choose the box source \u201c{_HOG_LABEL}\u201d or "
     f"\u201c{_WHOLE_LABEL}\u201d."),
    (re.compile(r"\(--dataset-meta FILE, or meta=load_dataset_meta\(FILE\) in Python\)"),
     "(start the demo with the model's keypoint metadata file)"),
    (re.compile(r"or use '--detector rtdetr', '--detector none' or a detections file"),
     "or choose another box source"),
)


def page_text(text: str) -> str:
    """A library message in the page's words: command-line flags become the page's choices,
    sentences that still name a flag are dropped, and doubled periods are removed."""
    for pattern, words in _PAGE_WORDS:
        text = pattern.sub(words, text)
    sentences = re.split(r"(?<=[.;])\s+", text)
    kept = [x for x in sentences if not re.search(r"(?<![\w-])--[a-z][a-z-]*", x)]
    text = " ".join(kept) if kept else re.sub(r"\s*\(?'?--[a-z][a-z-]*[^)]*\)?", "", text)
    text = re.sub(r"(?<!\.)\.\s*\.(?!\.)", ".", text)
    return text.strip()


def _error_text(exc: BaseException, upload: str | None = None) -> str:
    """``**Error:** message``, naming an upload by its file name, not its server-side path,
    in the page's words (`page_text`)."""
    text = str(exc).strip() or type(exc).__name__
    if upload:
        text = text.replace(upload, Path(upload).name)
    return f"**Error:** {page_text(text)}"


def _safe_stem(path: str | os.PathLike[str]) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(os.fspath(path)).stem).strip("._")
    return stem[:80] or "upload"


def _upload_path(upload: Any) -> str | None:
    """A path from what Gradio or a test passes: str, PathLike, or an object with ``.name``."""
    if upload is None or upload == "":
        return None
    if isinstance(upload, (list, tuple)):
        return _upload_path(upload[0]) if upload else None
    if isinstance(upload, (str, os.PathLike)):
        return os.fspath(upload)
    name = getattr(upload, "name", None) or getattr(upload, "path", None)
    return os.fspath(name) if name else None


# --------------------------------------------------------------------------------------------
# Handlers
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _torch_threads_beside(estimator: Any) -> Iterator[None]:
    """One torch thread while an exported engine (OpenVINO, ONNX Runtime) runs the model.

    torch then only crops, normalises, flips and decodes a few small tensors; its second
    thread would wait for a core that the engine's own threads hold, which on the busy 2-core
    machine halved the webcam's frames/s (docs/PERFORMANCE.md, "Webcam tab"). A model run by
    PyTorch itself (a routed "people and animals" model, ``--backend torch``) keeps every
    thread. torch's thread count is process-wide: a request of another tab running at the
    same moment gets one thread too (slower, not different)."""
    import torch

    backend = getattr(getattr(estimator, "engine", None), "backend", "torch")
    before = torch.get_num_threads()
    if backend == "torch" or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _sets_text(estimator: Estimator, result: PoseResult | None) -> str:
    """``coco (17 keypoints)``, or for a routed estimator the keypoint sets it used."""
    if not estimator.routed:
        meta = estimator.meta
        return f"{meta.name} ({meta.num_keypoints} keypoints)"
    children = estimator.children
    used = {i.dataset for i in result.instances} if result is not None else set(children)
    shown = [f"{c.meta.name} ({c.meta.num_keypoints} keypoints)"
             for name, c in children.items() if name in used] or \
        [f"{c.meta.name} ({c.meta.num_keypoints} keypoints)" for c in children.values()]
    return " + ".join(shown)


class PoseDemo:
    """The demo's state and handlers (no Gradio needed). The estimation is the predict job of
    `vitpose.predict` (`estimate_image`, `FrameLoop`), as for `vitpose predict`: the same
    detection interval, tracking, non-finite handling and pixel budget.

    Args:
        model, weights, dataset: what `default_model_choices` builds the model menu from; or
            pass ``choices`` directly.
        device, dtype, backend: where and how models run (see `vitpose predict`; a "people
            and animals" choice runs on PyTorch whatever the backend).
        threads: threads of the model's engine (default: `default_threads()`).
        detector: default box source, a detector name of `vitpose predict` (``auto``,
            ``dfine-s``, ``rtdetr``, ``hog``, ``whole-image``, a hub id or folder).
        max_frames: a video stops after this many frames (the message says so).
        max_upload_mb: larger uploads are refused (the server enforces the same limit).
        work_dir: where result files go (default: a fresh temporary folder removed at exit).
        cache_size: how many loaded models are kept.
        batch_size: crops per model call.
        det_interval: the video tab's detector runs every this many frames (``--det-interval``).
        webcam_det_interval: the webcam tab's detector runs every this many frames.
        max_pixels: images, video frames and webcam frames of more pixels are refused
            (default: ``$VITPOSE_MAX_PIXELS`` or the default budget of `vitpose predict`).
    """

    def __init__(self, model: str | None = None, weights: str | None = None,
                 dataset: str | None = None, *, choices: Sequence[ModelChoice] | None = None,
                 device: str = "cpu", dtype: str = "auto", detector: str = "auto",
                 max_frames: int = 300, max_upload_mb: float = 100.0,
                 work_dir: str | os.PathLike[str] | None = None, cache_size: int = 2,
                 batch_size: int = 16, det_interval: int = 1, webcam_det_interval: int = 5,
                 backend: str = "auto", max_pixels: int | None = None,
                 threads: int | None = None) -> None:
        self.threads = threads  # None: `default_threads()` when an engine is built
        self.choices = list(choices) if choices else default_model_choices(model, weights,
                                                                          dataset)
        self.device = device
        self.dtype = dtype
        self.backend = backend
        self.box_sources = dict(BOX_SOURCES)
        labels = {v: k for k, v in BOX_SOURCES.items()}
        name = {"none": "whole-image", "whole": "whole-image", "rt-detr": "rtdetr",
                "dfine-n": "auto"}.get(detector, detector)
        if name not in labels:  # another detector `vitpose predict` takes: its own entry
            from ..inference.detectors import DETECTOR_NAMES
            if name.lower() not in DETECTOR_NAMES and not Path(name).is_dir() \
                    and name.count("/") != 1:
                raise InputError(f"unknown detector {detector!r}; choose one of "
                                 f"{', '.join(sorted(DETECTOR_NAMES))}, a Hugging Face hub id "
                                 "or a local detector folder")
            labels[name] = f"Detector: {name}"
            self.box_sources[labels[name]] = name
        self.default_box_source = labels[name]
        self.max_frames = int(max_frames)
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self.cache_size = max(1, int(cache_size))
        self.batch_size = int(batch_size)
        self.max_pixels = max_pixels_from_env() if max_pixels is None else int(max_pixels)
        if work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="vitpose-demo-"))
            atexit.register(shutil.rmtree, self.work_dir, True)
        else:
            self.work_dir = Path(work_dir)
            self.work_dir.mkdir(parents=True, exist_ok=True)
        self._estimators: OrderedDict[tuple[Any, ...], Estimator] = OrderedDict()
        self._box_cache: dict[tuple[str, tuple[str, ...]], BoxSource] = {}
        self._lock = threading.Lock()
        self._example_video: Path | None = None
        self.det_interval = check_det_interval(det_interval)
        self.webcam_det_interval = check_det_interval(webcam_det_interval)
        self.webcam_time_limit = 600  # seconds of streaming per start of the camera
        self._webcam: dict[str, Any] = {}

    # -- settings -----------------------------------------------------------------------------
    @property
    def model_labels(self) -> list[str]:
        return [c.label for c in self.choices]

    def choice(self, label: str | int | None) -> ModelChoice:
        if label is None or label == "":
            return self.choices[0]
        if isinstance(label, int):
            return self.choices[label]
        for c in self.choices:
            if c.label == label:
                return c
        raise InputError(f"unknown model choice {label!r}")

    def options(self, label: str | int | None = None, flip: bool = True, **changes: Any
                ) -> PredictOptions:
        """The predict options of a model choice and the demo's settings (what `vitpose
        predict` would be given for the same run)."""
        c = self.choice(label)
        return PredictOptions(model=c.model, weights=c.weights, dataset=c.dataset,
                              device=self.device, dtype=self.dtype, backend=self.backend,
                              batch_size=self.batch_size, no_flip=not flip,
                              fallback="whole-image", max_pixels=self.max_pixels,
                              threads=self.threads, **changes)

    def estimator(self, label: str | int | None = None, flip: bool = True) -> Estimator:
        """The (cached) estimator of a model choice, with the flip test on or off."""
        c = self.choice(label)
        key = (c.model, c.weights, c.dataset)
        with self._lock:
            est = self._estimators.get(key)
            if est is None:
                log.info("loading %s%s%s", c.model or "the model",
                         f" with {c.weights}" if c.weights else "",
                         f" ({c.dataset})" if c.dataset else "")
                est = build_estimator(self.options(label))
                self._estimators[key] = est
                while len(self._estimators) > self.cache_size:
                    self._estimators.popitem(last=False)
            else:
                self._estimators.move_to_end(key)
        return est.with_settings(flip_test=bool(flip))

    def _box_source(self, box_source: str | None, estimator: Estimator) -> BoxSource:
        """The (cached) box source of a page choice: its detector, keeping the classes the
        estimator takes (people, and animals for a "people and animals" model); the whole
        image where it finds nobody."""
        label = box_source or self.default_box_source
        name = self.box_sources.get(label, label)
        classes = tuple(estimator.classes) if estimator.routed else ("person",)
        with self._lock:
            src = self._box_cache.get((name, classes))
            if src is None:
                src = BoxSource(detector=name, fallback="whole-image", device=self.device,
                                classes=None if name == "hog" else list(classes))
                self._box_cache[(name, classes)] = src
        return src

    def _detector_note(self, box_source: str | None, boxes: BoxSource) -> str | None:
        """What the page says when the default detector could not be used."""
        name = self.box_sources.get(box_source or self.default_box_source, box_source)
        if name == "auto" and boxes.detector_label == "HOG":
            return ("the D-FINE-N detector could not be downloaded (offline?), so the HOG "
                    "detector was used")
        return None

    # -- files --------------------------------------------------------------------------------
    def _check_upload(self, path: str | None, what: str) -> str:
        if path is None:
            raise InputError(f"upload {what} or pick an example first")
        if not os.path.isfile(path):
            raise InputError(f"uploaded file not found: {path}")
        size = os.path.getsize(path)
        if size > self.max_upload_bytes:
            raise InputError(f"{Path(path).name} is {size / 2**20:.1f} MB; the limit is "
                             f"{self.max_upload_bytes / 2**20:.0f} MB")
        if size == 0:
            raise InputError(f"{Path(path).name} is empty")
        return path

    def _request_dir(self) -> Path:
        d = Path(tempfile.mkdtemp(prefix=time.strftime("%Y%m%d-%H%M%S-"), dir=self.work_dir))
        old = sorted((p for p in self.work_dir.iterdir() if p.is_dir() and p.name[0].isdigit()),
                     key=lambda p: p.stat().st_mtime)
        for p in old[:-_KEEP_REQUESTS]:
            shutil.rmtree(p, ignore_errors=True)
        return d

    # -- image tab ----------------------------------------------------------------------------
    def predict_image(self, image: Any, model: str | int | None = None,
                      box_source: str | None = None, flip: bool = True, kpt_thr: float = 0.3
                      ) -> ImageOutput:
        """Poses of one uploaded image file.

        Args:
            image: path of the uploaded file (or anything with a ``.name`` path).
            model: a label of `model_labels` (or its index); None = the first.
            box_source: a key of `BOX_SOURCES` (or a detector name); None = the default.
            flip: flip test.
            kpt_thr: keypoints below this score are not drawn nor counted in the table.

        Returns:
            An `ImageOutput`; on a bad upload or setting, ``error`` is True and ``message``
            says why.
        """
        t0 = time.perf_counter()
        path = _upload_path(image)
        try:
            path = self._check_upload(path, "an image")
            array = read_image(path, max_pixels=self.max_pixels)
            estimator = self.estimator(model, flip)
            boxes = self._box_source(box_source, estimator)
            result = estimate_image(estimator, boxes, array, path, Path(path).name)
            out = self._image_output(path, array, estimator, result, float(kpt_thr),
                                     boxes.last_found_nobody, time.perf_counter() - t0)
            note = self._detector_note(box_source, boxes)
            if note:
                out.message += f" · {note}"
            return out
        except (VitPoseError, ValueError) as e:
            return ImageOutput(message=_error_text(e, path), error=True)
        except Exception as e:  # a bug or the machine (memory): say so in the page
            log.exception("image request failed")
            return ImageOutput(message=_error_text(RuntimeError(
                f"internal error ({type(e).__name__}: {e})"), path), error=True)

    def _image_output(self, path: str, image: np.ndarray, estimator: Estimator,
                      result: PoseResult, kpt_thr: float, fell_back: bool, seconds: float
                      ) -> ImageOutput:
        drawn = estimator.draw(image, result, kpt_thr)
        entries = result.to_coco()
        out_dir = self._request_dir()
        json_path = out_dir / f"{_safe_stem(path)}_results.json"
        json_path.write_text(json.dumps(entries, allow_nan=False))
        table = [[i + 1, *[round(float(v), 1) for v in inst.box_xywh],
                  round(inst.box_score, 3), round(inst.score, 3),
                  f"{int((inst.keypoints[:, 2] >= kpt_thr).sum())}/{len(inst.keypoints)}"]
                 for i, inst in enumerate(result.instances)]
        parts = [f"{len(result.instances)} instance(s) · {_sets_text(estimator, result)} · "
                 f"{seconds:.2f} s"]
        if fell_back:
            parts.append("the detector found no person, so the whole image was used as one box")
        parts += [page_text(w) for w in result.warnings]
        downloads = other_formats([result], out_dir, _safe_stem(path))
        return ImageOutput(drawn, table, str(json_path), " · ".join(parts), False, entries,
                           downloads)

    # -- video tab ----------------------------------------------------------------------------
    def predict_video(self, video: Any, model: str | int | None = None,
                      box_source: str | None = None, flip: bool = True, kpt_thr: float = 0.3,
                      progress: Callable[[int, int | None], None] | None = None,
                      det_interval: int | None = None) -> VideoOutput:
        """Poses, with track ids, in every frame of an uploaded video (up to `max_frames`).

        Args:
            video: path of the uploaded file.
            model, box_source, flip, kpt_thr: as for `predict_image`.
            progress: called as ``progress(frames_done, frames_total_or_None)`` after each
                frame.
            det_interval: the detector every this many frames (default: `det_interval`).

        Returns:
            A `VideoOutput`; on a bad upload or setting, ``error`` is True and ``message``
            says why.
        """
        t0 = time.perf_counter()
        reader = None
        path = _upload_path(video)
        try:
            path = self._check_upload(path, "a video")
            if is_image_file(path):
                raise InputError(f"{Path(path).name} is an image, not a video: use the Image tab")
            interval = check_det_interval(self.det_interval if det_interval is None
                                          else det_interval)
            reader = VideoReader(path, max_pixels=self.max_pixels)
            estimator = self.estimator(model, flip)
            boxes = self._box_source(box_source, estimator)
            opts = self.options(model, flip, det_interval=interval, max_frames=self.max_frames,
                                kpt_thr=float(kpt_thr))
            out = self._run_video(path, reader, FrameLoop(opts, estimator, boxes, reader.fps),
                                  progress, t0)
            note = self._detector_note(box_source, boxes)
            if note:
                out.message += f" · {note}"
            return out
        except (VitPoseError, ValueError) as e:
            return VideoOutput(message=_error_text(e, path), error=True)
        except Exception as e:
            log.exception("video request failed")
            return VideoOutput(message=_error_text(RuntimeError(
                f"internal error ({type(e).__name__}: {e})"), path), error=True)
        finally:
            if reader is not None:
                reader.close()

    def _run_video(self, path: str, reader: VideoReader, loop: FrameLoop, progress, t0: float
                   ) -> VideoOutput:
        out_dir = self._request_dir()
        stem = _safe_stem(path)
        mp4_path = out_dir / f"{stem}_pose.mp4"
        json_path = out_dir / f"{stem}_frames.json"
        total = reader.frame_count
        total = min(total, self.max_frames) if total else None
        estimator, kpt_thr = loop.estimator, loop.opts.kpt_thr
        writer = VideoWriter(mp4_path, reader.fps)
        preview: VideoWriter | None = None
        preview_failed = False
        frames: list[dict[str, Any]] = []
        poses: list[PoseResult] = []
        tracks: dict[int, list[float]] = {}  # id -> [frames, first, last, score sum]
        nobody_before = loop.boxes.found_nobody
        try:
            for index, frame, result in loop.run(reader):
                for inst in result.instances:
                    tid = int(inst.track_id)
                    t = tracks.setdefault(tid, [0, index, index, 0.0])
                    t[0] += 1
                    t[2] = index
                    t[3] += inst.score
                frames.append({"frame": index, "instances": result.to_coco()})
                poses.append(result)
                drawn = estimator.draw(frame, result, kpt_thr)
                writer.write(drawn)
                if writer.codec != "avc1" and not preview_failed:
                    try:
                        if preview is None:
                            preview = VideoWriter(out_dir / f"{stem}_preview.webm", reader.fps,
                                                  codecs=("VP80",))
                        preview.write(fit_image(drawn, _PREVIEW_MAX_SIDE))
                    except InputError as e:  # no VP8 encoder in this OpenCV build
                        log.warning("no browser preview of the video: %s", e)
                        preview_failed = True
                        preview = None
                if progress is not None:
                    progress(index + 1, total)
        finally:
            writer.close()
            if preview is not None:
                preview.close(verify=False)  # WebM does not store a frame count to check
        json_path.write_text(json.dumps(frames, allow_nan=False))
        n = len(frames)
        table = [[tid, int(t[0]), int(t[1]), int(t[2]), round(t[3] / max(t[0], 1), 3)]
                 for tid, t in sorted(tracks.items())]
        parts = [f"{n} frame(s) · {len(tracks)} track(s) · {_sets_text(estimator, None)} · "
                 f"{time.perf_counter() - t0:.1f} s"]
        if loop.truncated:
            parts.append(f"stopped after the first {self.max_frames} frames (this demo's limit)")
        if loop.opts.det_interval > 1:
            parts.append(f"the detector ran on {loop.interval.detections} frame(s) (every "
                         f"{loop.opts.det_interval} frames)")
        fallbacks = loop.boxes.found_nobody - nobody_before
        if fallbacks:
            parts.append(f"the detector found no person in {fallbacks} frame(s); the whole frame "
                         "was used there")
        if loop.n_nonfinite:
            parts.append(f"{loop.n_nonfinite} instance(s) had non-finite (NaN or infinite) "
                         "keypoints or scores and were left out (broken or diverged weights?)")
        shown = mp4_path
        if writer.codec != "avc1":
            if preview is not None and preview.frames_written:
                shown = preview.path
            else:
                parts.append("this OpenCV build writes MPEG-4 Part 2, which browsers may not "
                             "play: download the mp4")
        downloads = other_formats(list(enumerate(poses)), out_dir, stem, reader.fps or 25.0)
        return VideoOutput(str(shown), str(mp4_path), str(json_path), table, " · ".join(parts),
                           False, n, downloads)

    # -- webcam tab ---------------------------------------------------------------------------
    def predict_frame(self, frame: Any, model: str | int | None = None,
                      box_source: str | None = None, flip: bool = WEBCAM_FLIP_TEST,
                      kpt_thr: float = 0.3) -> tuple[np.ndarray | None, str]:
        """Poses of one webcam frame, streamed from the page: the drawn frame and a status with
        the measured frames per second.

        The detector runs every `webcam_det_interval` frames; in between, each tracked person's
        box comes from their previous keypoints (`FrameLoop.step`, as for a video), with track
        ids. A new stream (or one after a pause of 10 s, or other settings) starts a new
        tracking state. Frames beyond the pixel budget are refused.

        Args:
            frame: ``(H, W, 3)`` uint8 RGB frame (None when the camera stopped).
            model, box_source, kpt_thr: as for `predict_image`.
            flip: flip test (default off, `WEBCAM_FLIP_TEST`).

        Returns:
            ``(drawn frame or None, Markdown status)``; a missing camera or a bad frame is a
            message ("Error: ..."), never an exception.
        """
        now = time.perf_counter()
        if frame is None or not isinstance(frame, np.ndarray) or frame.size == 0:
            self._webcam.clear()
            return None, ("**Error:** no picture from the camera: it was stopped, disconnected "
                          "or access to it was refused; start it again with the camera button")
        try:
            if frame.shape[0] * frame.shape[1] > self.max_pixels:
                raise InputError(f"the camera's frames are {frame.shape[1]}x{frame.shape[0]} "
                                 f"= {frame.shape[0] * frame.shape[1]:,} pixels, more than "
                                 f"this demo's budget of {self.max_pixels:,}")
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
            elif frame.shape[2] == 4:
                frame = np.ascontiguousarray(frame[..., :3])
            frame = np.ascontiguousarray(frame, dtype=np.uint8)
            estimator = self.estimator(model, flip)
            boxes = self._box_source(box_source, estimator)
            key = (model, box_source, bool(flip))
            state = self._webcam
            if state.get("key") != key or now - state.get("last", now) > 10.0:
                state.clear()
                opts = self.options(model, flip, det_interval=self.webcam_det_interval)
                state.update(key=key, times=[], frames=0,
                             loop=FrameLoop(opts, estimator, boxes, 30.0))
            with _torch_threads_beside(estimator):  # the detector's threads are its own
                result = state["loop"].step(frame)
            drawn = estimator.draw(frame, result, float(kpt_thr))
        except (VitPoseError, ValueError) as e:
            self._webcam.clear()
            return None, _error_text(e)
        except Exception as e:  # a bug or the machine: say so in the page
            log.exception("webcam frame failed")
            self._webcam.clear()
            return None, _error_text(RuntimeError(f"internal error ({type(e).__name__}: {e})"))
        done = time.perf_counter()
        state["frames"] += 1
        state["last"] = done
        times = state["times"]
        times.append(done)
        del times[:-30]
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        state["fps"] = fps
        shown = f"{fps:.1f} frames/s" if len(times) > 1 else "measuring frames/s"
        text = (f"{len(result.instances)} instance(s) · {_sets_text(estimator, result)} · "
                f"{shown} · {1000 * (done - now):.0f} ms for this frame")
        note = self._detector_note(box_source, boxes)
        if note:
            text += f" · {note}"
        return drawn, text

    # -- examples -----------------------------------------------------------------------------
    def example_image(self) -> Path | None:
        """The bundled example image (package assets, else the source checkout's examples/)."""
        for folder in (_ASSETS_DIR, _EXAMPLES_DIR):
            if (folder / _EXAMPLE_IMAGE).is_file():
                return folder / _EXAMPLE_IMAGE
        return None

    def example_video(self) -> Path | None:
        """A short clip made from the example image (slow zoom and pan), made once."""
        if self._example_video is None or not self._example_video.is_file():
            image = self.example_image()
            if image is None:
                return None
            try:
                self._example_video = make_example_video(
                    image, self.work_dir / "examples" / "example_clip.mp4")
            except VitPoseError as e:
                log.warning("no example video: %s", e)
                return None
        return self._example_video


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------

_CSS = """
#image-status, #video-status, #webcam-status {min-height: 2em}
"""


def _gradio_major(gr) -> int:
    try:
        return int(str(gr.__version__).split(".")[0])
    except ValueError:
        return 0


def _theme(gr):
    sans = ["ui-sans-serif", "system-ui", "sans-serif"]  # system fonts: no font download
    mono = ["ui-monospace", "monospace"]
    return gr.themes.Default(font=sans, font_mono=mono)


def build_app(demo: PoseDemo | None = None, **kwargs: Any):
    """The Gradio page (not launched) around a `PoseDemo`.

    Args:
        demo: the handlers; default ``PoseDemo(**kwargs)``.

    Returns:
        A ``gradio.Blocks``; serve it with `launch_app`.

    Raises:
        ImportError: Gradio is not installed (see `gradio_missing_message`).
    """
    import gradio as gr
    import pandas as pd  # a Gradio dependency

    demo = demo if demo is not None else PoseDemo(**kwargs)
    blocks_kw: dict[str, Any] = {"title": "ViTPose demo", "analytics_enabled": False,
                                 "delete_cache": (3600, 3600)}
    if _gradio_major(gr) < 6:  # theme and CSS moved to launch() in Gradio 6
        blocks_kw.update(theme=_theme(gr), css=_CSS)

    def image_handler(upload, model, box, flip, thr):
        out = demo.predict_image(upload, model, box, flip, thr)
        return (out.image, pd.DataFrame(out.table, columns=IMAGE_TABLE_HEADERS), out.json_path,
                out.downloads or None, out.message)

    def video_handler(upload, model, box, flip, thr, interval, progress=gr.Progress()):  # noqa: B008
        def report(done: int, total: int | None) -> None:
            progress((done, total), desc="estimating poses", unit="frames")

        progress(0, desc="opening the video")
        try:
            interval = int(interval) if interval is not None else None
        except (TypeError, ValueError):
            pass  # predict_video says what a detection interval is
        out = demo.predict_video(upload, model, box, flip, thr, progress=report,
                                 det_interval=interval)
        return (out.video_path, pd.DataFrame(out.table, columns=VIDEO_TABLE_HEADERS),
                out.mp4_path, out.json_path, out.downloads or None, out.message)

    def webcam_handler(frame, model, box, flip, thr):
        return demo.predict_frame(frame, model, box, flip, thr)

    no_share: dict[str, Any] = {}  # the share button posts to the Hugging Face hub
    if "buttons" in inspect.signature(gr.Image).parameters:
        no_share = {"buttons": ["download", "fullscreen"]}
    image_types = sorted(IMAGE_EXTENSIONS)
    video_types = sorted(VIDEO_EXTENSIONS)
    with gr.Blocks(**blocks_kw) as app:
        gr.Markdown(
            "# ViTPose pose estimation\n"
            "Upload an image or a video (or pick an example), or turn on your camera; choose the "
            f"model and settings, and run. Everything runs on this computer ({demo.device}); a "
            "model is loaded the first time it is used. Results: the drawn poses, a table of "
            "instances and the JSON (COCO keypoint results, as `vitpose predict` writes them).")
        with gr.Row():  # full width: the model names are long
            model = gr.Dropdown(demo.model_labels, value=demo.model_labels[0], label="Model",
                                elem_id="model-choice")
        with gr.Row():
            box = gr.Radio(list(demo.box_sources), value=demo.default_box_source, label="Boxes",
                           info="when the detector finds nobody, the whole image is used",
                           elem_id="box-source")
        with gr.Row():
            flip = gr.Checkbox(value=True, label="Flip test (image and video)",
                               elem_id="flip-test")
            thr = gr.Slider(0.0, 1.0, value=0.3, step=0.05, label="Keypoint threshold",
                            info="keypoints below this score are not drawn",
                            elem_id="kpt-thr")
        with gr.Tabs():
            with gr.Tab("Image", id="image-tab"):
                with gr.Row():
                    with gr.Column(scale=1):
                        image_in = gr.File(label="Image", file_types=image_types,
                                           elem_id="image-input")
                        example = demo.example_image()
                        if example is not None:
                            gr.Examples([[str(example)]], inputs=[image_in],
                                        label="Example image")
                        image_run = gr.Button("Estimate poses", variant="primary",
                                              elem_id="image-run")
                    with gr.Column(scale=2):
                        image_status = gr.Markdown(elem_id="image-status")
                        image_out = gr.Image(label="Poses", type="numpy", format="jpeg",
                                             interactive=False, elem_id="image-output", **no_share)
                        image_table = gr.Dataframe(headers=IMAGE_TABLE_HEADERS,
                                                   label="Instances", interactive=False,
                                                   elem_id="image-table")
                        image_json = gr.File(label="Results (JSON)", interactive=False,
                                             elem_id="image-json")
                        image_more = gr.File(label="For other tools (CSV table, OpenPose JSON)",
                                             file_count="multiple", interactive=False,
                                             elem_id="image-downloads")
            with gr.Tab("Video", id="video-tab"):
                with gr.Row():
                    with gr.Column(scale=1):
                        video_in = gr.File(label="Video", file_types=video_types,
                                           elem_id="video-input")
                        clip = demo.example_video()
                        if clip is not None:
                            gr.Examples([[str(clip)]], inputs=[video_in],
                                        label="Example clip (made from the example image)")
                        video_interval = gr.Number(
                            value=demo.det_interval, precision=0, minimum=1,
                            label="Detector every N frames",
                            info="in between, people are followed from their poses "
                                 "(as vitpose predict --det-interval)",
                            elem_id="video-det-interval")
                        gr.Markdown(f"At most {demo.max_frames} frames are processed.")
                        video_run = gr.Button("Estimate poses", variant="primary",
                                              elem_id="video-run")
                    with gr.Column(scale=2):
                        video_status = gr.Markdown(elem_id="video-status")
                        video_out = gr.Video(label="Poses", interactive=False,
                                             elem_id="video-output", **no_share)
                        video_table = gr.Dataframe(headers=VIDEO_TABLE_HEADERS, label="Tracks",
                                                   interactive=False, elem_id="video-table")
                        with gr.Row():
                            video_mp4 = gr.File(label="Annotated video (mp4)", interactive=False,
                                                elem_id="video-mp4")
                            video_json = gr.File(label="Results (JSON)", interactive=False,
                                                 elem_id="video-json")
                        video_more = gr.File(label="For other tools (CSV table, OpenPose JSON "
                                                   "zip)", file_count="multiple",
                                             interactive=False, elem_id="video-downloads")
            with gr.Tab("Webcam", id="webcam-tab"):
                with gr.Row():
                    with gr.Column(scale=1):
                        cam = gr.Image(sources=["webcam"], streaming=True, type="numpy",
                                       label="Camera", elem_id="webcam-input")
                        cam_flip = gr.Checkbox(
                            value=WEBCAM_FLIP_TEST, label="Flip test (live)",
                            info="off by default here: it runs the model twice per person, "
                                 "halving the frame rate, for a small accuracy gain",
                            elem_id="webcam-flip-test")
                        gr.Markdown("Start the camera: each frame goes through the model as it "
                                    "comes, and the poses show on the right. The detector runs "
                                    f"every {demo.webcam_det_interval} frames; in between, "
                                    "people are followed from their last poses.")
                    with gr.Column(scale=2):
                        cam_status = gr.Markdown(elem_id="webcam-status")
                        cam_out = gr.Image(label="Poses", type="numpy", format="jpeg",
                                           interactive=False, elem_id="webcam-output",
                                           **no_share)
        settings = [model, box, flip, thr]
        cam.stream(webcam_handler, [cam, model, box, cam_flip, thr], [cam_out, cam_status],
                   api_name="predict_frame", stream_every=0.04,  # at most 25 frames/s
                   time_limit=demo.webcam_time_limit, concurrency_limit=1,
                   show_progress="hidden")
        image_run.click(image_handler, [image_in, *settings],
                        [image_out, image_table, image_json, image_more, image_status],
                        api_name="predict_image", concurrency_limit=1)
        video_run.click(video_handler, [video_in, *settings, video_interval],
                        [video_out, video_table, video_mp4, video_json, video_more,
                         video_status],
                        api_name="predict_video", concurrency_limit=1)
    app.vitpose_demo = demo  # for launch_app (allowed paths) and tests
    return app


def launch_app(app, host: str = "127.0.0.1", port: int | None = None,
               max_upload_mb: float = 100.0, block: bool = True, quiet: bool = False) -> Any:
    """Serves a page from `build_app` (blocking unless ``block=False``).

    Args:
        app: the Blocks.
        host: interface to bind (127.0.0.1: this computer only).
        port: TCP port; None = the first free one from 7860.
        max_upload_mb: the server refuses larger uploads.
        block: wait until interrupted.
        quiet: fewer prints.
    """
    import gradio as gr

    demo: PoseDemo | None = getattr(app, "vitpose_demo", None)
    allowed = [str(_ASSETS_DIR), str(_EXAMPLES_DIR)]
    if demo is not None:
        allowed.append(str(demo.work_dir))
    kw: dict[str, Any] = dict(server_name=host, server_port=port, inbrowser=False,
                              share=False, max_file_size=int(max_upload_mb * 1024 * 1024),
                              allowed_paths=allowed, show_error=False, quiet=True,
                              prevent_thread_lock=True)
    if _gradio_major(gr) >= 6:
        kw.update(theme=_theme(gr), css=_CSS)
    app.queue(max_size=32, default_concurrency_limit=1)
    result = app.launch(**kw)
    if not quiet:
        print(f"vitpose demo: open {app.local_url} in a browser (Ctrl-C stops it)", flush=True)
    if block:
        app.block_thread()
    return result
