"""The video job: a video file, stream or webcam -> per-frame JSON with track ids and the
annotated mp4. `FrameLoop` is the frame loop every front-end shares (the command line, the
demo's video and webcam tabs, `vitpose.Predictor`): boxes every ``det_interval`` frames (from
the previous poses in between), tracking, One-Euro smoothing, non-finite instances dropped and
counted. `run_video` adds the journal (resume replays the done frames), the outputs and the
background threads."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ..errors import InputError, OutputError
from ..inference.builder import BoxSource
from ..inference.io import InputSpec
from ..inference.pipeline import Estimator, PoseInstance, PoseResult
from ..inference.results import ResumableResults
from ..inference.threads import BackgroundWriter, prefetch
from ..inference.tracking import IntervalBoxes, PoseSmoother, assign_tracks, tracker_for
from ..inference.video import VideoReader, VideoWriter, estimate_video
from .options import (
    PredictOptions,
    build_box_source,
    build_estimator,
    expected_crops,
    run_settings,
)
from .outputs import (
    ResultSink,
    check_not_inputs,
    check_outputs,
    check_writable,
    draw_result,
    export_notes,
    nonfinite_message,
    output_sinks,
)
from .report import Interrupted, Notify, Summary, log_notice

__all__ = ["CALIBRATION_FRAMES", "FrameLoop", "calibration_frames", "exact_row", "run_video",
           "stored_result", "video_outputs", "video_rows"]

log = logging.getLogger("vitpose.predict")

#: how many frames of a video file ``--dtype int8`` calibrates on
CALIBRATION_FRAMES = 8


def calibration_frames(reader: VideoReader, count: int = CALIBRATION_FRAMES) -> list[np.ndarray]:
    """Up to `count` frames of a video file for the int8 calibration: one per second from its
    start (at most `count` seconds are decoded), so that they differ more than consecutive
    frames do."""
    stride = max(1, round(reader.fps))
    frames: list[np.ndarray] = []
    for i, frame in enumerate(reader):
        if i % stride == 0:
            frames.append(frame)
            if len(frames) == count:
                break
    return frames


_EXACT = ("raw", "raw_boxes", "detected")
#: The note of `VideoWriter` output that browsers may not play.
MP4V_NOTE = ("this OpenCV build writes MPEG-4 Part 2 (mp4v), which web browsers do not play; "
             "desktop players do (or re-encode it with ffmpeg -i {path} -c:v libx264 out.mp4)")


class FrameLoop:
    """The frames of one video (or webcam stream) through an estimator with the job's options:
    the detector every ``opts.det_interval`` frames, track ids (unless ``no_track``), One-Euro
    smoothing (``smooth``), non-finite instances dropped and counted.

    Args:
        opts: the options (``det_interval``, ``no_track``, ``smooth``, ``max_frames``).
        estimator, boxes: what `build_estimator` / `build_box_source` give.
        fps: the video's frame rate (for the smoother).
    """

    def __init__(self, opts: PredictOptions, estimator: Estimator, boxes: BoxSource,
                 fps: float) -> None:
        self.opts = opts
        self.estimator = estimator
        self.boxes = boxes
        self.tracker = None if opts.no_track else tracker_for(estimator)
        self.smoother = PoseSmoother(fps) if opts.smooth and self.tracker is not None else None
        self.interval = IntervalBoxes(lambda frame: boxes.labeled(None, frame),
                                      opts.det_interval)
        self.n_nonfinite = 0
        self.nonfinite_frames = 0
        self.exact: dict[int, dict[str, Any]] = {}  # new frames' exact poses, for the journal
        self.keep_exact = self.tracker is not None or opts.det_interval > 1
        self.index = 0  # the next frame's index (`step`)
        self.truncated = False  # `run` stopped at ``max_frames`` before the end

    def _prepare(self, index: int, result: PoseResult, detected: bool) -> None:
        dropped = result.drop_nonfinite()
        self.n_nonfinite += dropped
        self.nonfinite_frames += dropped > 0
        if self.keep_exact:  # exact, for replaying on resume
            self.exact[index] = exact_row(result, detected)

    def frames(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """``frames`` up to ``opts.max_frames``."""
        for index, frame in enumerate(frames):
            if self.opts.max_frames is not None and index >= self.opts.max_frames:
                self.truncated = True
                return
            yield frame

    def run(self, frames: Iterable[np.ndarray], stored: Any = None, read_ahead: bool = True
            ) -> Iterator[tuple[int, np.ndarray, PoseResult]]:
        """``(index, frame, result)`` of every frame (`estimate_video`); ``stored`` replays the
        frames of an interrupted run."""
        ahead = prefetch(self.frames(frames)) if read_ahead else self.frames(frames)
        try:
            yield from estimate_video(ahead, self.estimator, self.interval, self.tracker,
                                      self.smoother, stored=stored, prepare=self._prepare)
        finally:
            ahead.close()  # the reading thread stops before the caller closes the video

    def step(self, frame: np.ndarray) -> PoseResult:
        """One frame of a live stream (the demo's webcam tab): the same boxes, tracking and
        smoothing as `run`, a frame at a time."""
        index = self.index
        b, labels, detected = self.interval(frame)
        result = self.estimator(frame, b, image_id=index, labels=labels)
        self._prepare(index, result, detected)
        self.exact.pop(index, None)
        self.interval.update(result)
        assign_tracks(self.tracker, self.smoother, result, index)
        self.index += 1
        return result


def video_rows(values: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-frame JSON rows from the journal's values (without the exact model outputs kept for
    replaying the tracker, smoother and detection interval on resume)."""
    return [{k: v for k, v in row.items() if k not in _EXACT} for row in values]


def exact_row(result: PoseResult, detected: bool) -> dict[str, Any]:
    """The exact model outputs of a new frame (before tracking and smoothing), journalled for
    replaying it on resume: per instance its keypoints and its box ``x, y, w, h, score``
    (float32 values, exact in JSON), and ``detected: false`` when the detector did not run on
    the frame (``--det-interval``)."""
    row: dict[str, Any] = {} if detected else {"detected": False}
    if result.instances:
        row["raw"] = [i.keypoints.reshape(-1).tolist() for i in result.instances]
        row["raw_boxes"] = [[*i.box_xywh[:4].tolist(), float(i.box_score)]
                            for i in result.instances]
    return row


def stored_result(row: dict[str, Any], index: int, image_hw: tuple[int, int], dataset: str,
                  ) -> tuple[PoseResult, PoseResult, bool]:
    """A journalled frame as a `PoseResult` (as stored: for drawing and the outputs), its exact
    model poses (unsmoothed, unrounded keypoints, boxes and box scores: for replaying the
    tracker, the smoother and the detection interval) and whether the detector ran on it."""
    instances, exact = [], []
    raw = row.get("raw")
    raw_boxes = row.get("raw_boxes")
    for n, e in enumerate(row["instances"]):
        kp = np.asarray(e["keypoints"], np.float32).reshape(-1, 3)
        box = np.asarray(e["bbox"], np.float32)
        inst = PoseInstance(box, float(e["score"]), kp, float(e["score"]),
                            box[:2] + box[2:] / 2, box[2:] / 200.0,
                            dataset=e.get("dataset"), category=e.get("category"))
        inst.track_id = e.get("track_id")
        instances.append(inst)
        exact_kp = np.asarray(raw[n], np.float32).reshape(-1, 3) if raw is not None else kp.copy()
        exact_box = np.asarray(raw_boxes[n], np.float32) if raw_boxes is not None else \
            np.append(box, np.float32(e["score"]))
        exact.append(PoseInstance(exact_box[:4].copy(), float(exact_box[4]), exact_kp,
                                  float(e["score"]), inst.center, inst.scale,
                                  dataset=inst.dataset, category=inst.category))
    result = PoseResult(f"frame {index}", index, image_hw, dataset, instances)
    return result, PoseResult(f"frame {index}", index, image_hw, dataset, exact), \
        bool(row.get("detected", True))


def video_outputs(opts: PredictOptions, spec: InputSpec, out_dir: Path) -> tuple[Path, Path]:
    """The annotated video and the per-frame JSON of a video run."""
    stem = Path(str(spec.video_source)).stem if spec.kind == "video" \
        else f"webcam{spec.video_source}"
    return out_dir / f"{stem}_pose.mp4", \
        (Path(opts.out) if opts.out else out_dir / f"{stem}_frames.json")


def run_video(opts: PredictOptions, spec: InputSpec, out_dir: Path, max_pixels: int | None = None,
              *, notify: Notify = log_notice, progress: bool = True,
              sinks: Sequence[ResultSink] = (), estimator: Estimator | None = None,
              boxes: BoxSource | None = None) -> Summary:
    """A video: per-frame JSON and the annotated mp4. The detector runs every
    ``det_interval`` frames (boxes from the previous poses in between); frames are read in a
    background thread and drawn/written in another. A rerun after an interruption keeps the
    journalled frames (they are not estimated again: the tracker, smoother and detection
    interval replay them) and continues with the next frame; the mp4 is written afresh from
    the first frame, the journalled frames drawn from their stored results."""
    video_path, json_path = video_outputs(opts, spec, out_dir)
    source = str(Path(str(spec.video_source)).resolve()) if spec.kind == "video" \
        else str(spec.video_source)
    if spec.kind == "video":
        check_not_inputs([video_path, json_path], [Path(source)])
    results = ResumableResults(json_path, run_settings(opts, input=source,
                                                       no_track=opts.no_track,
                                                       smooth=opts.smooth,
                                                       det_interval=opts.det_interval),
                               overwrite=opts.overwrite, flatten=video_rows)
    if results.resumed and spec.kind != "video":
        raise InputError(f"{results.partial} holds an interrupted run of a webcam or stream, "
                         "which cannot be replayed: pass --overwrite to start afresh")
    if not results.resumed and not opts.no_draw:
        check_outputs([video_path], opts.overwrite)
    reader = VideoReader(spec.video_source, max_pixels=max_pixels)
    for folder in {json_path.parent, out_dir} if not opts.no_draw else {json_path.parent}:
        check_writable(folder)
    boxes = boxes if boxes is not None else build_box_source(opts)
    frames = reader.frame_count if opts.max_frames is None else \
        min(opts.max_frames, reader.frame_count or opts.max_frames)
    # --dtype int8 calibrates on frames of the video itself (not for a live source, whose
    # frames would be consumed: the bundled image then, with a warning, unless --calib)
    calib_frames = calibration_frames(reader) if (
        opts.dtype == "int8" and not opts.calib and spec.kind == "video"
        and estimator is None) else None
    estimator = estimator if estimator is not None else build_estimator(
        opts, crops=expected_crops(opts, frames) if frames else None, images=calib_frames)
    del calib_frames
    loop = FrameLoop(opts, estimator, boxes, reader.fps)
    sinks = [*output_sinks(opts, "video", out_dir, json_path, done=results.done,
                           fps=reader.fps, stem=video_path.name[:-len("_pose.mp4")]), *sinks]
    results.start()
    if results.resumed:
        notify(f"resuming: {len(results.done)} frame(s) already done (journal "
               f"{results.partial}); the video is written afresh")
    video = None if opts.no_draw else VideoWriter(video_path, reader.fps)
    total = reader.frame_count if opts.max_frames is None else \
        min(opts.max_frames, reader.frame_count or opts.max_frames)
    n = n_new = 0
    complete = False

    def stored(index: int, frame: np.ndarray) -> tuple[PoseResult, PoseResult, bool] | None:
        row = results.done.get(index)
        return None if row is None else \
            stored_result(row, index, frame.shape[:2], estimator.dataset)

    drawing = None if video is None else BackgroundWriter()
    import cv2
    # decoding, drawing and encoding run in threads beside the model: OpenCV's own thread pool
    # would compete with the model's threads (5x slower end to end on 2 cores, measured)
    cv2.setNumThreads(1)
    kpt_thr = opts.kpt_thr

    def draw_and_write(frame: np.ndarray, result: PoseResult) -> None:
        video.write(draw_result(estimator, opts, frame, result, kpt_thr))

    try:
        with tqdm(total=total, unit="frame", file=sys.stderr, disable=not progress) as bar, \
                logging_redirect_tqdm():
            for index, frame, result in loop.run(reader, stored if results.resumed else None):
                if index not in results.done:
                    row: dict[str, Any] = {"frame": index, "instances": result.to_coco()}
                    row.update(loop.exact.pop(index, {}))
                    results.add(index, row)
                    for sink in sinks:
                        sink.add(index, result, frame)
                    n_new += 1
                if drawing is not None:
                    drawing.submit(draw_and_write, frame, result)
                n += 1
                bar.update(1)
        complete = True
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted after {n} frame(s); their results are saved in "
                          f"{json_path}; rerun the same command to continue (--overwrite "
                          "starts afresh)") from None
    finally:
        try:
            if drawing is not None:
                drawing.close()
        finally:
            reader.close()
            if video is not None:
                video.close()
            try:
                results.finish(order=sorted(results.done), complete=complete)
            except OutputError as e:
                if complete:
                    raise
                log.error("%s", e)
            finally:
                for sink in sinks:  # after the results file: a sink may read it whole
                    sink.close(complete)
    summary = Summary()
    extra = f" ({loop.interval.detections} detector pass(es))" if opts.det_interval > 1 else ""
    summary.lines.append(
        f"{n} frame(s){extra} -> {json_path}" + ("" if video is None else f", {video_path}")
        + (f" ({n - n_new} from the interrupted run)" if results.resumed else ""))
    summary.counts.update(frames=n, new_frames=n_new, detections=loop.interval.detections)
    export_notes(sinks, summary)
    note = boxes.nobody_note("frame(s)")
    if note:
        summary.note(note)
    if video is not None and video.codec == "mp4v":
        summary.note(MP4V_NOTE.format(path=video_path))
    if loop.n_nonfinite:
        summary.warn(nonfinite_message(loop.n_nonfinite, loop.nonfinite_frames, "frame(s)",
                                       json_path))
    if reader.undecodable:
        summary.warn(f"{reader.undecodable} of the {reader.frame_count} frames of "
                     f"{spec.video_source} could not be decoded (truncated or damaged file); "
                     f"{reader.frames_read} were processed")
    return summary
