"""Speed of the detectors, of offline video with --det-interval, and of the webcam tab, on this
machine, with random weights (speed does not depend on them; no hub access needed).

    python scripts/bench_detect.py [--quick] [--json OUT.json]

A. Detector latency per 640x640 frame: D-FINE-N (the ``auto`` default), D-FINE-S, RT-DETR-R50,
   through ONNX Runtime and PyTorch (fp32; bf16 autocast for reference).
B. Offline video, the `vitpose predict VIDEO` path (`estimate_video` with frames read in a
   thread, drawn and written in another): D-FINE-N every 5 frames, ViTPose-B, no flip test.
   The detector's real network runs on every detection frame; the boxes it returns are fixed
   (random weights find nothing), 6 people a frame. Compared with the pose model's crop
   throughput at the same batch size (6 crops per call).
C. Webcam tab: `PoseDemo.predict_frame` on 640x480 frames, one person, detector every 5
   frames (on the engine ``--det-engine auto`` picks), flip test on and off, for ViTPose-S/B/L/H
   on the two pose engines ``--backend auto`` ends on (OpenVINO bf16 / fp32), interleaved.
D. The detector engines (ONNX Runtime, OpenVINO) end to end beside the pose model: offline
   video with the detector every 5 frames, and the single-image predict, interleaved.
P. (only when asked: --parts P) where a webcam frame's time goes: cProfile of predict_frame.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from vitpose.inference.detectors import random_detector


def timed(fn, repeat: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def summary(ts: list[float]) -> dict[str, float]:
    return {"median_ms": 1000 * statistics.median(ts), "min_ms": 1000 * min(ts)}


def bench_detectors(repeat: int, names: list[str]) -> dict:
    frame = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    rows = {}
    for name in names:
        for engine in ("onnxruntime", "torch"):
            det = random_detector(name, engine=engine, threshold=0.5)
            rows[f"{name}/{engine}/fp32"] = summary(timed(lambda det=det: det(frame), repeat))
            print(name, engine, rows[f"{name}/{engine}/fp32"], flush=True)
        if torch.backends.mkldnn.is_available():
            x = torch.from_numpy(det.preprocess(frame)[None])
            graph = det.runner.graph

            def bf16(graph=graph, x=x):
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                    graph(x)

            rows[f"{name}/torch/bf16-autocast"] = summary(timed(bf16, repeat))
            print(name, "torch bf16", rows[f"{name}/torch/bf16-autocast"], flush=True)
    return rows


def _pose_estimator(variant: str, batch_size: int, flip: bool):
    import vitpose
    from vitpose.inference.engines.precision import optimize_for_inference, resolve_dtype
    from vitpose.inference.pipeline import PoseEstimator

    torch.manual_seed(0)
    net = vitpose.build_model(variant).eval()
    dtype = resolve_dtype("auto", "cpu")
    optimize_for_inference(net, dtype)
    est = PoseEstimator(net, batch_size=batch_size, dtype=dtype)
    return est.with_settings(flip_test=flip), dtype


class FixedBoxes:
    """The real detector network on every call, fixed boxes out (random weights find nobody)."""

    def __init__(self, detector, boxes: np.ndarray) -> None:
        self.detector, self.boxes, self.calls = detector, boxes, 0

    def detect_labeled(self, image):
        self.calls += 1
        self.detector(image)
        return self.boxes.copy(), ["person"] * len(self.boxes)

    def __call__(self, image):
        return self.detect_labeled(image)[0]


def _sample_clip(frames: int) -> tuple[Path, Path]:
    """The sample video looped to `frames` frames (960x540) in a new temporary folder."""
    from vitpose.inference.video import VideoReader, VideoWriter

    src = ROOT.parent / "shared" / "data" / "video" / "demo.mp4"
    tmp = Path(tempfile.mkdtemp(prefix="vitpose-bench-"))
    clip = tmp / "clip.mp4"
    base = list(VideoReader(src))
    with VideoWriter(clip, 30.0) as w:
        for i in range(frames):
            w.write(base[i % len(base)])
    return clip, tmp


def _video_run(clip: Path, tmp: Path, est, det: FixedBoxes, interval: int
               ) -> tuple[float, int, int]:
    """`vitpose predict VIDEO`'s loop on `clip`: (seconds, instances, detector passes)."""
    from vitpose.inference.results import ResumableResults
    from vitpose.inference.video import (
        BackgroundWriter,
        IntervalBoxes,
        PoseTracker,
        VideoReader,
        VideoWriter,
        estimate_video,
        prefetch,
    )

    reader = VideoReader(clip)
    tracker = PoseTracker(metric="oks", sigmas=est.meta.sigmas)
    # random weights: every keypoint counts as found, so tracks are kept between detections
    interval_boxes = IntervalBoxes(lambda f: det.detect_labeled(f), interval, kpt_thr=-1.0,
                                   min_keypoints=0)
    results = ResumableResults(tmp / "frames.json", {}, overwrite=True)
    results.start()
    video = VideoWriter(tmp / "out.mp4", reader.fps)
    drawing = BackgroundWriter()
    n_inst = 0
    t0 = time.perf_counter()
    for index, frame, result in estimate_video(prefetch(iter(reader)), est, interval_boxes,
                                               tracker):
        results.add(index, {"frame": index, "instances": result.to_coco()})
        drawing.submit(lambda f, r: video.write(est.draw(f, r, 0.3)), frame, result)
        n_inst += len(result.instances)
    drawing.close()
    video.close()
    results.finish()
    reader.close()
    return time.perf_counter() - t0, n_inst, interval_boxes.detections


def bench_video(frames: int, interval: int, persons: int) -> dict:
    import cv2

    cv2.setNumThreads(1)  # as `vitpose predict VIDEO` does
    from vitpose.inference.video import VideoReader

    clip, tmp = _sample_clip(frames)
    first = next(iter(VideoReader(clip)))
    h, wd = first.shape[:2]
    xs = np.linspace(0.05, 0.8, persons) * wd
    boxes = np.array([[x, 0.3 * h, 0.12 * wd, 0.6 * h, 0.9] for x in xs], np.float32)
    est, dtype = _pose_estimator("vitpose-b-simple", batch_size=persons, flip=False)
    det = FixedBoxes(random_detector("dfine-n", engine="onnxruntime"), boxes)

    # the pose engine alone: crops/s at this batch size
    x = torch.randn(persons, 3, 256, 192)
    crop_ts = timed(lambda: est.forward_heatmaps(x), 10)
    crops_per_s = persons / statistics.median(crop_ts)
    det.detect_labeled(first)  # warm-up (first-call allocations)
    est(first, boxes)
    wall, n_inst, detections = _video_run(clip, tmp, est, det, interval)
    e2e = n_inst / wall
    # the crop throughput again after the run; the better of the two counts (a busy machine
    # slows one of them, and the better one makes the ratio conservative)
    crop_ts = timed(lambda: est.forward_heatmaps(x), 10)
    crops_per_s = max(crops_per_s, persons / statistics.median(crop_ts))
    row = {"frames": frames, "persons_per_frame": persons, "det_interval": interval,
           "detector_passes": detections, "pose_dtype": str(dtype).replace("torch.", ""),
           "pose_crops_per_s_batch": crops_per_s, "end_to_end_person_frames_per_s": e2e,
           "ratio": e2e / crops_per_s, "wall_s": wall}
    print("video", json.dumps(row), flush=True)
    return row


#: The pose engines the webcam tab's ``--backend auto`` ends on: OpenVINO bf16 where bf16 passes
#: the accuracy gate (trained weights), else the exact float32 path (OpenVINO fp32 here).
WEBCAM_ENGINES = (("openvino", "bfloat16"), ("openvino", "float32"))


def _engine_estimator(variant: str, backend: str, dtype: str, batch_size: int):
    """A `PoseEstimator` on one named engine (random weights; threads: torch's)."""
    import vitpose
    from vitpose.inference.engines import build_engine
    from vitpose.inference.pipeline import PoseEstimator

    torch.manual_seed(0)
    net = vitpose.build_model(variant).eval()
    engine = build_engine(backend, net, None, dtype, "cpu")
    return PoseEstimator(net, batch_size=batch_size, engine=engine)


def _webcam_demo(variant: str, estimator, detector, interval: int):
    from vitpose.demo.app import ModelChoice, PoseDemo

    demo = PoseDemo(choices=[ModelChoice(variant, variant)], work_dir=tempfile.mkdtemp(),
                    webcam_det_interval=interval)
    demo._estimators[(variant, None, None)] = estimator
    demo._detectors[("auto", ("person",))] = detector
    return demo


def bench_webcam(sizes: list[str], frames: int, rounds: int, det_engine: str,
                 interval: int, engines: tuple[tuple[str, str], ...] = WEBCAM_ENGINES) -> dict:
    """`PoseDemo.predict_frame` as the webcam stream calls it: 640x480 frames, one person,
    the D-FINE-N network every `interval` frames, for each pose engine of `WEBCAM_ENGINES`
    with the flip test on and off, in interleaved rounds (frames/s: the median over rounds)."""
    import functools

    import cv2

    cv2.setNumThreads(1)  # as `vitpose demo` does
    from vitpose.demo import app
    from vitpose.inference.video import IntervalBoxes

    # random weights: every keypoint counts as found, so the person is followed between
    # detector passes (as with real weights and a visible person)
    app.IntervalBoxes = functools.partial(IntervalBoxes, kpt_thr=-1.0, min_keypoints=0)
    frame = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    box = np.array([[220, 60, 200, 400, 0.9]], np.float32)
    det = FixedBoxes(random_detector("dfine-n", engine=det_engine), box)
    rows: dict[str, dict] = {}
    for size in sizes:
        variant = f"vitpose-{size}-simple"
        demos = {f"{b}/{d}": _webcam_demo(variant, _engine_estimator(variant, b, d, 16), det,
                                          interval) for b, d in engines}
        fps: dict[str, list[float]] = {}
        for _ in range(rounds):
            for name, demo in demos.items():
                for flip in (True, False):
                    for _ in range(3):  # warm-up, and a new stream state
                        demo.predict_frame(frame, None, None, flip, 0.3)
                    det.calls = 0
                    t0 = time.perf_counter()
                    for _ in range(frames):
                        _, text = demo.predict_frame(frame, None, None, flip, 0.3)
                    key = f"vitpose-{size}/{name}/flip={'on' if flip else 'off'}"
                    fps.setdefault(key, []).append(frames / (time.perf_counter() - t0))
                    print(key, f"{fps[key][-1]:.1f} frames/s", det.calls, "detector passes",
                          "|", text, flush=True)
        for key, values in fps.items():
            rows[key] = {"fps_median": statistics.median(values), "fps_rounds": values}
        demos.clear()
    return rows


def profile_webcam(size: str, frames: int, det_engine: str) -> dict:
    """Where a webcam frame's time goes: cProfile of `predict_frame` (ViTPose-`size` on
    OpenVINO bf16, one person), cumulative ms per frame of the functions above 0.5 ms."""
    import cProfile
    import functools
    import pstats

    import cv2

    cv2.setNumThreads(1)  # as `vitpose demo` does
    from vitpose.demo import app
    from vitpose.inference.video import IntervalBoxes

    app.IntervalBoxes = functools.partial(IntervalBoxes, kpt_thr=-1.0, min_keypoints=0)
    frame = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    box = np.array([[220, 60, 200, 400, 0.9]], np.float32)
    det = FixedBoxes(random_detector("dfine-n", engine=det_engine), box)
    variant = f"vitpose-{size}-simple"
    demo = _webcam_demo(variant, _engine_estimator(variant, "openvino", "bfloat16", 16), det, 5)
    out: dict[str, dict] = {}
    for flip in (True, False):
        for _ in range(5):
            demo.predict_frame(frame, None, None, flip, 0.3)
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        for _ in range(frames):
            demo.predict_frame(frame, None, None, flip, 0.3)
        prof.disable()
        wall = time.perf_counter() - t0
        stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
        rows = {f"{Path(f).name}:{line}:{name}": 1e3 * cum / frames
                for (f, line, name), (_, _, _, cum, _) in stats.items()
                if 1e3 * cum / frames > 0.5}
        key = f"vitpose-{size}/flip={'on' if flip else 'off'}"
        out[key] = {"ms_per_frame": 1e3 * wall / frames, "functions_ms": dict(
            sorted(rows.items(), key=lambda kv: -kv[1])[:25])}
        print(key, f"{1e3 * wall / frames:.1f} ms/frame")
        for name, ms in list(out[key]["functions_ms"].items()):
            print(f"  {ms:7.1f} ms  {name}")
    return out


def bench_detector_engines(rounds: int, frames: int, persons: int, interval: int) -> dict:
    """The detector engines end to end beside the pose model (OpenVINO bf16, the default
    engine where bf16 passes the gate), in interleaved rounds:

    * video: `estimate_video` with the detector every `interval` frames (frames read in a
      thread, drawn and written in another), person-frames/s;
    * predict: one image (the COCO sample 000000000785.jpg, 640x425) = one detector pass and
      the pose model on `persons` boxes with the flip test, images/s.
    """
    import cv2

    cv2.setNumThreads(1)  # as `vitpose predict` does
    from vitpose.inference.io import read_image

    image = read_image(ROOT.parent / "shared" / "data" / "coco" / "000000000785.jpg")
    h, w = image.shape[:2]
    xs = np.linspace(0.05, 0.8, persons) * w
    boxes = np.array([[x, 0.2 * h, 0.12 * w, 0.6 * h, 0.9] for x in xs], np.float32)
    est = _engine_estimator("vitpose-b-simple", "openvino", "bfloat16", persons)
    dets = {e: FixedBoxes(random_detector("dfine-n", engine=e), boxes)
            for e in ("onnxruntime", "openvino")}
    flip_est = est.with_settings(flip_test=True)
    video_est = est.with_settings(flip_test=False)
    clip, tmp = _sample_clip(frames)
    out: dict[str, list[float]] = {}
    for _ in range(rounds):
        for engine, det in dets.items():
            t0 = time.perf_counter()
            for _ in range(3):
                flip_est(image, det.detect_labeled(image)[0])
            out.setdefault(f"predict/{engine}/images_per_s", []).append(
                3 / (time.perf_counter() - t0))
            wall, n_inst, _ = _video_run(clip, tmp, video_est, det, interval)
            out.setdefault(f"video/{engine}/person_frames_per_s", []).append(n_inst / wall)
            print(engine, {k: round(v[-1], 2) for k, v in out.items() if f"/{engine}/" in k},
                  flush=True)
    return {k: {"median": statistics.median(v), "rounds": v} for k, v in out.items()}


def _auto_detector_engine() -> str:
    return random_detector("dfine-n", engine="auto").engine


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats, D-FINE-N and ViTPose-S")
    p.add_argument("--json", default=None)
    p.add_argument("--parts", default="ABCD", help="which measurements (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (C, D)")
    p.add_argument("--pose-engines", default="openvino/bfloat16,openvino/float32",
                   help="pose engines (backend/dtype) for the webcam (C) (default: "
                        "%(default)s)")
    p.add_argument("--det-engine", default=None,
                   help="the webcam's detector engine (C; default: what --det-engine auto "
                        "picks for D-FINE-N here)")
    p.add_argument("--frames", type=int, default=None, help="video frames (B)")
    p.add_argument("--sizes", default=None, help="ViTPose sizes for the webcam (C), e.g. s,b")
    p.add_argument("--detectors", default=None, help="detectors (A), e.g. dfine-n,rtdetr")
    p.add_argument("--threads", type=int, default=None,
                   help="torch (and detector ONNX Runtime) threads; 1 is steadier on a busy "
                        "machine (default: torch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if os.environ.get("BENCH_CV2_THREADS"):
        import cv2
        cv2.setNumThreads(int(os.environ["BENCH_CV2_THREADS"]))
    out = {"cpu": subprocess.run(["sh", "-c", "lscpu | grep 'Model name' | cut -d: -f2"],
                                 check=False, capture_output=True, text=True).stdout.strip(),
           "threads": torch.get_num_threads(), "load_before": os.getloadavg()}
    if "A" in args.parts:
        names = args.detectors.split(",") if args.detectors else (
            ["dfine-n"] if args.quick else ["dfine-n", "dfine-s", "rtdetr"])
        out["detectors"] = bench_detectors(5 if args.quick else 15, names)
    if "B" in args.parts:
        out["video"] = bench_video(args.frames or (20 if args.quick else 60), 5, 6)
    if "C" in args.parts:
        sizes = args.sizes.split(",") if args.sizes else (["s"] if args.quick else
                                                           ["s", "b", "l", "h"])
        out["webcam_detector_engine"] = args.det_engine or _auto_detector_engine()
        out["webcam"] = bench_webcam(sizes, args.frames or (10 if args.quick else 30),
                                     args.rounds or (1 if args.quick else 3),
                                     out["webcam_detector_engine"], 5,
                                     tuple(tuple(e.split("/")) for e in
                                           args.pose_engines.split(",")))
    if "P" in args.parts:
        out["webcam_profile"] = profile_webcam((args.sizes or "s").split(",")[0],
                                               args.frames or 40,
                                               args.det_engine or _auto_detector_engine())
    if "D" in args.parts:
        out["detector_engines"] = bench_detector_engines(
            args.rounds or (1 if args.quick else 3), args.frames or (20 if args.quick else 30),
            6, 5)
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
