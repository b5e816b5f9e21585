"""Video input/output and the frame loop.

* `VideoReader` opens a video file, stream URL or webcam and yields RGB frames (refusing frames
  beyond the pixel budget before any is prefetched).
* `VideoWriter` writes RGB frames to an mp4 (H.264 ``avc1`` when this OpenCV build can encode
  it, otherwise MPEG-4 Part 2 ``mp4v``) and checks the result can be read back.
* `estimate_video` runs a whole video through an estimator with `IntervalBoxes`, tracking and
  smoothing (`vitpose.inference.tracking`); crops are batched across frames when every frame is
  detected.

Tracking names (`PoseTracker`, `IntervalBoxes`, ...) live in `vitpose.inference.tracking` and the
threads (`prefetch`, `BackgroundWriter`) in `vitpose.inference.threads`; they are importable from
here too.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import InputError
from .io import MAX_PIXELS_ENV, max_pixels_from_env, opencv_path
from .threads import BackgroundWriter, prefetch
from .tracking import (
    IntervalBoxes,
    OneEuroFilter,
    PoseSmoother,
    PoseTracker,
    Track,
    assign_tracks,
    check_det_interval,
    iou_matrix,
    keypoint_boxes_xyxy,
    oks_matrix,
    pose_box_xywh,
    tracker_for,
)

__all__ = [
    "BackgroundWriter",
    "IntervalBoxes",
    "OneEuroFilter",
    "PoseSmoother",
    "PoseTracker",
    "Track",
    "VideoReader",
    "VideoWriter",
    "assign_tracks",
    "check_det_interval",
    "estimate_video",
    "iou_matrix",
    "keypoint_boxes_xyxy",
    "oks_matrix",
    "pose_box_xywh",
    "prefetch",
    "tracker_for",
]

logger = logging.getLogger(__name__)

DEFAULT_FPS = 30.0


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_native_logs(redirect_stderr: bool = True) -> Iterator[None]:
    """Silences OpenCV's log lines and, optionally, FFmpeg's (written straight to fd 2).

    Used around short native calls whose failure we turn into our own `InputError` message.
    """
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    old_level = None
    if log is not None and hasattr(log, "getLogLevel"):
        with contextlib.suppress(Exception):
            old_level = log.getLogLevel()
            log.setLogLevel(log.LOG_LEVEL_SILENT)
    saved = None
    if redirect_stderr:
        try:
            saved = os.dup(2)
            with open(os.devnull, "wb") as devnull:
                os.dup2(devnull.fileno(), 2)
        except OSError:
            saved = None
    try:
        yield
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
        if old_level is not None:
            with contextlib.suppress(Exception):
                log.setLogLevel(old_level)


class VideoReader:
    """Frames of a video file, stream URL or webcam, as RGB arrays.

    The file is opened and its first frame decoded in the constructor, so an unreadable file
    fails early. Iterating again over a file restarts it from the beginning; a webcam or stream
    continues where it is.

    Args:
        source: a video file path, a stream URL, or a webcam index (``0`` or ``"0"``).
        max_pixels: frames of more pixels are refused before any is decoded (default: the
            image budget, `vitpose.inference.io.max_pixels_from_env`).

    Attributes:
        fps: frames per second reported by the container (``DEFAULT_FPS`` when unknown).
        fps_known: False when the container did not report a usable frame rate.
        frame_count: number of frames the container reports (an estimate for some formats), or
            None for webcams, streams and containers that do not say.
        size_hw: frame size ``(H, W)``.
        frames_read: frames decoded by the last pass over the video.
        undecodable: after a complete pass over a file: how many of the frames the container
            announces could not be decoded (a truncated or damaged file; a warning is logged),
            else 0.

    Raises:
        InputError: the file is missing, cannot be opened, no frame can be decoded, or its
            frames are larger than ``max_pixels``.
    """

    def __init__(self, source: str | os.PathLike[str] | int, max_pixels: int | None = None
                 ) -> None:
        self.max_pixels = max_pixels_from_env() if max_pixels is None else int(max_pixels)
        if isinstance(source, str) and source.strip().isdigit() and not Path(source).exists():
            source = int(source.strip())
        self.is_camera = isinstance(source, int)
        if self.is_camera:
            self.source: str | int = int(source)
            self.name = f"webcam {source}"
        else:
            text = os.fspath(source)
            self.source = text
            self.name = text
            is_url = "://" in text
            if not is_url and not Path(text).is_file():
                raise InputError(f"video file not found: {text}")
        self._cap: cv2.VideoCapture | None = None
        self._first: np.ndarray | None = None
        self.frames_read = 0
        self.undecodable = 0
        self._open()
        fps = float(self._cap.get(cv2.CAP_PROP_FPS)) if self._cap is not None else 0.0
        self.fps_known = math.isfinite(fps) and 0.0 < fps < 1000.0
        self.fps = fps if self.fps_known else DEFAULT_FPS
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT) if self._cap is not None else 0
        has_count = not self.is_camera and math.isfinite(count) and count > 0
        self.frame_count: int | None = round(count) if has_count else None
        assert self._first is not None
        self.size_hw: tuple[int, int] = (int(self._first.shape[0]), int(self._first.shape[1]))

    def _open(self) -> None:
        with contextlib.ExitStack() as names, _quiet_native_logs(redirect_stderr=False):
            # a file name that is not UTF-8 reaches OpenCV through an ASCII-named link (its
            # own file functions crash on such names); the opened capture outlives the link
            source = self.source if self.is_camera or "://" in str(self.source) \
                else names.enter_context(opencv_path(self.source))
            cap = cv2.VideoCapture(source)
        if not cap.isOpened():
            cap.release()
            what = "webcam" if self.is_camera else "video"
            raise InputError(
                f"cannot open {what} {self.source!r} (missing device, corrupt file or a codec "
                "this OpenCV build cannot decode)"
            )
        # the pixel budget, from the container's frame size before any frame is decoded
        w, h = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
        if math.isfinite(w * h) and w * h > self.max_pixels:
            cap.release()
            raise InputError(self._too_large(int(w), int(h)))
        ok, frame = cap.read()
        if ok and frame is not None and frame.shape[0] * frame.shape[1] > self.max_pixels:
            cap.release()
            raise InputError(self._too_large(frame.shape[1], frame.shape[0]))
        if not ok or frame is None or frame.size == 0:
            cap.release()
            raise InputError(f"cannot decode any frame from {self.name} (corrupt or empty video)")
        self._cap = cap
        self._first = frame
        self._consumed = False

    def _too_large(self, w: int, h: int) -> str:
        return (f"the frames of {self.name} are {w}x{h} = {w * h:,} pixels, more than the "
                f"budget of {self.max_pixels:,} (--max-pixels or ${MAX_PIXELS_ENV} raise it)")

    @staticmethod
    def _to_rgb(frame: np.ndarray) -> np.ndarray:
        if frame.ndim == 2:
            return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        if frame.shape[2] == 4:
            return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yields ``(H, W, 3)`` uint8 RGB frames until the end of the video."""
        if self._cap is None or (self._consumed and not self.is_camera):
            self.close()
            self._open()
        self._consumed = True
        self.frames_read = 0
        self.undecodable = 0
        if self._first is not None:
            first, self._first = self._first, None
            self.frames_read = 1
            yield self._to_rgb(first)
        while self._cap is not None:
            ok, frame = self._cap.read()
            if not ok or frame is None:
                break
            if frame.shape[0] * frame.shape[1] > self.max_pixels:  # a stream that grew
                raise InputError(self._too_large(frame.shape[1], frame.shape[0]))
            self.frames_read += 1
            yield self._to_rgb(frame)
        if self.frame_count is not None and self.frames_read < self.frame_count:
            # the decoder stopped before the end the container announces: damaged or truncated
            self.undecodable = self.frame_count - self.frames_read
            logger.warning("%s: %d of the %d frames the file announces could not be decoded "
                           "(truncated or damaged file); only the first %d were read",
                           self.name, self.undecodable, self.frame_count, self.frames_read)

    def close(self) -> None:
        """Releases the capture device / file."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


class VideoWriter:
    """Writes RGB frames to a video file (mp4 by default).

    Encoders are tried in order (default: H.264 ``avc1``, which most pip builds of OpenCV cannot
    encode, then ``mp4v``); the first that opens is used and `codec` says which. The output
    size is fixed by the first frame (or ``size_hw``) and rounded **up** to even numbers, because
    these encoders need even sizes: odd frames are padded by repeating the last row/column.
    `close` checks that the file opens again and reports the number of frames written.

    Args:
        path: output file (parent folders are created).
        fps: frame rate to store.
        size_hw: frame size ``(H, W)``; None = size of the first frame.
        codecs: FourCC codes to try, in order.

    Raises:
        InputError: no encoder could open the file, a frame has the wrong size, or the written
            file does not read back with the expected frame count.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        size_hw: tuple[int, int] | None = None,
        codecs: Sequence[str] = ("avc1", "mp4v"),
    ) -> None:
        self.path = Path(path)
        if not (math.isfinite(fps) and fps > 0):
            raise InputError(f"invalid frame rate {fps!r} for {self.path}")
        self.fps = float(fps)
        self.codecs = tuple(codecs)
        self.codec: str | None = None
        self.frames_written = 0
        self.input_hw: tuple[int, int] | None = None
        self.size_hw: tuple[int, int] | None = None
        self._writer: cv2.VideoWriter | None = None
        self._names = contextlib.ExitStack()
        if size_hw is not None:
            self._open((int(size_hw[0]), int(size_hw[1])))

    def _open(self, hw: tuple[int, int]) -> None:
        h, w = hw
        if h <= 0 or w <= 0:
            raise InputError(f"invalid video frame size {hw} for {self.path}")
        self.input_hw = (h, w)
        self.size_hw = (h + (h & 1), w + (w & 1))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tried = []
        for code in self.codecs:
            fourcc = cv2.VideoWriter_fourcc(*code)
            names = contextlib.ExitStack()
            with _quiet_native_logs():
                writer = cv2.VideoWriter(
                    names.enter_context(opencv_path(self.path)), fourcc, self.fps,
                    (self.size_hw[1], self.size_hw[0])
                )
            if writer.isOpened():
                self._writer = writer
                self._names = names  # the link stays until the writer is released
                self.codec = code
                logger.debug("writing %s with codec %s", self.path, code)
                return
            writer.release()
            names.close()
            tried.append(code)
            logger.debug("codec %s is not available for %s", code, self.path)
        with contextlib.suppress(OSError):
            if self.path.exists() and self.path.stat().st_size == 0:
                self.path.unlink()
        raise InputError(
            f"cannot write video {self.path}: none of the codecs {tried} could be opened by this "
            "OpenCV build (check the folder is writable and the extension is .mp4 or .avi)"
        )

    def write(self, frame_rgb: np.ndarray) -> None:
        """Appends one frame.

        Args:
            frame_rgb: ``(H, W, 3)`` uint8 RGB frame of the size of the first frame.
        """
        if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
            raise InputError(f"video frames must be (H, W, 3) RGB, got {frame_rgb.shape}")
        hw = (int(frame_rgb.shape[0]), int(frame_rgb.shape[1]))
        if self._writer is None:
            if self.codec is not None:
                raise InputError(f"video writer for {self.path} is already closed")
            self._open(hw)
        if hw != self.input_hw:
            raise InputError(
                f"frame size {hw} differs from the video size {self.input_hw} of {self.path}"
            )
        assert self.size_hw is not None and self._writer is not None
        bgr = cv2.cvtColor(np.ascontiguousarray(frame_rgb, dtype=np.uint8), cv2.COLOR_RGB2BGR)
        pad_h, pad_w = self.size_hw[0] - hw[0], self.size_hw[1] - hw[1]
        if pad_h or pad_w:
            bgr = cv2.copyMakeBorder(bgr, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
        self._writer.write(bgr)
        self.frames_written += 1

    def close(self, verify: bool = True) -> None:
        """Finishes the file.

        Args:
            verify: reopen the file and check it reports ``frames_written`` frames.

        Raises:
            InputError: ``verify`` is set and the file cannot be read back correctly.
        """
        if self._writer is None:
            return
        self._writer.release()
        self._writer = None
        self._names.close()
        if not verify or self.frames_written == 0:
            return
        with opencv_path(self.path) as name:
            cap = cv2.VideoCapture(name)
        try:
            if not cap.isOpened():
                raise InputError(f"the written video {self.path} cannot be opened again")
            count = round(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            cap.release()
        if count > 0 and count != self.frames_written:
            raise InputError(
                f"the written video {self.path} holds {count} frames, expected "
                f"{self.frames_written}"
            )

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(verify=exc_type is None)


# --------------------------------------------------------------------------------------------
# The frame loop
# --------------------------------------------------------------------------------------------


def estimate_video(frames: Iterable[np.ndarray], estimator: Any, boxes: IntervalBoxes,
                   tracker: PoseTracker | None = None, smoother: PoseSmoother | None = None, *,
                   stored: Callable[[int, np.ndarray], tuple[Any, Any, bool] | None] | None = None,
                   prepare: Callable[[int, Any, bool], None] | None = None,
                   ) -> Iterator[tuple[int, np.ndarray, Any]]:
    """Poses of every frame: ``(index, frame, result)`` in order, with track ids.

    With a detector pass on every frame (``boxes.interval == 1``) the crops of consecutive
    frames are batched together (up to the estimator's batch size); otherwise each frame's
    boxes come from the previous frame's poses, so frames go one at a time.

    Resuming: ``stored(index, frame)`` gives, for the leading frames done by an interrupted run,
    ``(result, exact, detected)``: the stored result (yielded as is, not estimated again), the
    exact model poses (unsmoothed keypoints, boxes, box scores, classes) that replay the tracker,
    smoother and `IntervalBoxes`, and whether the detector ran on it; None for the first frame
    to estimate (from there on every frame is estimated). ``prepare(index, result, detected)``
    sees each new result before tracking and smoothing (e.g. to drop non-finite instances or
    record the exact poses).
    """
    frames = iter(frames)
    start = 0
    first: list[np.ndarray] = []
    if stored is not None:
        for index, frame in enumerate(frames):
            done = stored(index, frame)
            if done is None:
                start, first = index, [frame]
                break
            result, exact, detected = done
            boxes.replay(exact, detected)
            assign_tracks(tracker, smoother, exact, index)  # ids and smoothing of `result`
            yield index, frame, result
        else:
            return
    frames = itertools.chain(first, frames)

    def item(index: int, frame: np.ndarray) -> tuple[Any, ...]:
        b, labels, detected = boxes(frame)
        detections.append(detected)
        return frame, b, index, labels  # a routed estimator's box classes pick keypoint sets

    detections: deque[bool] = deque()
    if boxes.interval == 1:
        waiting: deque[tuple[int, np.ndarray]] = deque()

        def items() -> Iterator[tuple[Any, ...]]:
            for index, frame in enumerate(frames, start):
                waiting.append((index, frame))
                yield item(index, frame)

        for result in estimator.predict_many(items()):
            index, frame = waiting.popleft()
            detected = detections.popleft()
            if prepare is not None:
                prepare(index, result, detected)
            assign_tracks(tracker, smoother, result, index)
            yield index, frame, result
        return
    for index, frame in enumerate(frames, start):
        result = next(iter(estimator.predict_many([item(index, frame)])))
        detected = detections.popleft()
        if prepare is not None:
            prepare(index, result, detected)
        boxes.update(result)
        assign_tracks(tracker, smoother, result, index)
        yield index, frame, result
