"""`vitpose.Predictor`: the front door for Python, with exactly the command line's defaults.

    import vitpose
    predictor = vitpose.Predictor()                  # vitpose-b-simple, detector auto, ...
    result, = predictor("people.jpg")                # one PoseResult per image (or frame)
    result.xy, result.scores, result.boxes           # (N, K, 2), (N, K), (N, 5)
    for frame in predictor.stream("clip.mp4"):       # frame by frame, with track ids
        print(frame.image_id, frame.track_ids)
    predictor.save(predictor("clip.mp4"), "tracks", "tracks.parquet", smooth=True)
    result.to_pandas(), result.to_supervision()      # a data frame, sv.KeyPoints
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, VitPoseError
from ..inference.builder import BoxSource
from ..inference.io import iter_inputs
from ..inference.pipeline import Estimator, PoseResult
from ..inference.video import VideoReader
from .images import estimate_image, estimate_images
from .options import PredictOptions, build_box_source, build_estimator, expected_crops
from .outputs import input_keys
from .video import FrameLoop, calibration_frames

__all__ = ["Predictor"]

log = logging.getLogger("vitpose.predict")


class Predictor:
    """Image (or video) -> boxes -> poses, as ``vitpose predict`` does it: the same model
    (``vitpose-b-simple`` unless ``model``/``weights`` say otherwise), the same detector
    (``auto``: D-FINE-N, offline HOG with a notice), the same engine choice (``backend auto``),
    the same test-time settings and video handling (detection interval, tracking, smoothing).

    Args:
        model, weights, dataset, detector, device, ...: any `PredictOptions` field, by name
            (``det_interval=5``, ``fallback="whole-image"``, ``backend="torch"``,
            ``no_flip=True``, ...). Output options (``out_dir``, ``no_draw``) do not apply:
            nothing is written.

    Calling it: ``predictor(source)`` with an image path, an RGB ``uint8 (H, W, 3)`` array,
    a folder, a glob, a video file or a webcam index returns a list of `PoseResult` (one per
    image or frame; ``stream`` yields them one at a time). Each result has per-person objects
    (``result.instances``, each a `PoseInstance`) and per-image arrays: ``xy`` ``(N, K, 2)``,
    ``scores`` ``(N, K)``, ``boxes`` ``(N, 5)`` x, y, w, h, score, ``track_ids`` ``(N,)``,
    ``datasets`` and ``categories`` per instance.

    The model and the detector are loaded on first use (`estimator`, `box_source`).
    """

    def __init__(self, model: str | None = None, **options: Any) -> None:
        names = {f.name for f in dataclasses.fields(PredictOptions)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise TypeError(f"Predictor() got unknown option(s) {', '.join(unknown)}; it takes "
                            f"{', '.join(sorted(names - {'input'}))}")
        self.options = PredictOptions(model=model, **options)
        self.max_pixels = self.options.validate()
        self._estimator: Estimator | None = None
        self._boxes: BoxSource | None = None
        #: the frame rate of the last video read (`save` writes it into tracks and tables)
        self.fps: float | None = None

    def __repr__(self) -> str:
        o = self.options
        return (f"Predictor(model={o.model!r}, weights={o.weights!r}, dataset={o.dataset!r}, "
                f"detector={o.detector!r}, device={o.device!r}, backend={o.backend!r})")

    @property
    def estimator(self) -> Estimator:
        """The pose estimator (`PoseEstimator` or, for ``dataset="auto"``, routed)."""
        return self._estimator_for(None)

    def _estimator_for(self, inputs: int | None, images: Any = None) -> Estimator:
        """The estimator, built on first use for a job of `inputs` images or frames (None:
        unknown), as ``vitpose predict`` builds it: ``backend="auto"`` calibrates during a job
        long enough to repay it and remembers its choice for the next ones; ``dtype="int8"``
        calibrates on `images` (the job's image paths, or frames of its video)."""
        if self._estimator is None:
            crops = expected_crops(self.options, inputs, self.box_source) if inputs else None
            self._estimator = build_estimator(self.options, crops=crops, images=images,
                                              boxes=self.box_source)
        return self._estimator

    @property
    def box_source(self) -> BoxSource:
        """Where the boxes come from (the detector, a detections file, fixed boxes)."""
        if self._boxes is None:
            self._boxes = build_box_source(self.options)
        return self._boxes

    def __call__(self, source: Any) -> list[PoseResult]:
        """Poses of every image or frame of ``source`` (see the class docstring); a webcam or
        stream never ends: iterate `stream` over it."""
        live = isinstance(source, (int, np.integer)) and not isinstance(source, bool) or \
            isinstance(source, str) and ("://" in source or source.strip().isdigit()
                                         and not Path(source).exists())
        if live:
            raise InputError(f"{source!r} is a webcam or stream, which never ends: iterate "
                             f"over predictor.stream({source!r}) instead")
        return list(self.stream(source))

    def stream(self, source: Any) -> Iterator[PoseResult]:
        """Like calling the predictor, one result at a time (for long videos and webcams)."""
        if isinstance(source, np.ndarray):
            yield self.predict_array(source)
            return
        if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
            yield from self._video(int(source))
            return
        if not isinstance(source, (str, os.PathLike)):
            raise InputError(f"a source is an image or video path, a folder, a glob, an RGB "
                             f"array or a webcam index, not {type(source).__name__}")
        spec = iter_inputs(os.fspath(source))
        if spec.is_video:
            yield from self._video(spec.video_source)
            return
        keys = input_keys(spec)
        single = len(spec.image_paths) == 1

        def skip(path: Path, e: VitPoseError) -> None:
            log.error("skipping %s: %s", path, e)

        boxes = self.box_source
        estimator = self._estimator_for(len(spec.image_paths), spec.image_paths)
        for _, _, result in estimate_images(estimator, boxes, spec.image_paths, keys,
                                            self.max_pixels, skip=None if single else skip):
            result.drop_nonfinite()
            yield result

    def predict_array(self, image: np.ndarray, image_id: Any = 0) -> PoseResult:
        """Poses of one RGB ``uint8 (H, W, 3)`` image."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"an image array is RGB uint8 (H, W, 3), got {image.dtype} "
                             f"{image.shape}")
        if image.shape[0] * image.shape[1] > self.max_pixels:
            raise InputError(f"the image has {image.shape[0] * image.shape[1]:,} pixels, more "
                             f"than the budget of {self.max_pixels:,} (max_pixels=...)")
        return estimate_image(self.estimator, self.box_source, image, None, image_id)

    def save(self, results: Any, format: str, path: str | os.PathLike[str], *,
             fps: float | None = None, overwrite: bool = False, **options: Any) -> Any:
        """Writes results in one of the output formats of ``vitpose predict`` (the option names
        without ``--``: ``table``, ``tracks``, ``openpose``, ``coco-keypoints``,
        ``label-studio``), e.g. ``predictor.save(frames, "tracks", "tracks.parquet",
        smooth=True)``. Results with track ids are the frames of a video (``fps``: default
        the frame rate of the last video this predictor read). ``options``: those of
        `vitpose.formats.write`. Returns its report (``paths``, ``notes``)."""
        from ..formats import write
        results = [results] if isinstance(results, PoseResult) else list(results)
        video = any(i.track_id is not None for r in results for i in r.instances)
        return write(format, results, path, fps=(fps or self.fps) if video else None,
                     video=video, overwrite=overwrite, **options)

    def _video(self, source: str | int | None) -> Iterator[PoseResult]:
        reader = VideoReader(source, max_pixels=self.max_pixels)
        try:
            self.fps = reader.fps
            live = source is None or isinstance(source, int) or reader.frame_count is None
            frames = None if live else reader.frame_count
            calib = calibration_frames(reader) if (
                self._estimator is None and self.options.dtype == "int8" and not live
                and not self.options.calib) else None
            loop = FrameLoop(self.options, self._estimator_for(frames, calib), self.box_source,
                             reader.fps)
            del calib
            for _, _, result in loop.run(reader):
                yield result
        finally:
            reader.close()
