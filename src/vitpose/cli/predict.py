"""`vitpose predict INPUT`: poses for an image, a folder, a glob, a video file or a webcam.

Images give a COCO results JSON (``results.json``) and drawn images (mirroring the inputs'
folders under ``--out-dir``); videos give an annotated mp4 and per-frame JSON with track ids.
Results are journalled as they come (``*.partial.jsonl``, `ResumableResults`): an interrupted
run keeps what it had, and rerunning the same command continues where it stopped;
``--overwrite`` starts afresh. See docs/RELIABILITY.md.

The job itself is `vitpose.predict` (shared with the demo and `vitpose.Predictor`); this module
parses the options, prints the job's notices and summary, and turns them into exit codes.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

from ..inference.builder import BoxSource
from ..inference.engines.auto import BACKENDS
from ..inference.engines.int8 import DEFAULT_VARIANT as DEFAULT_INT8_VARIANT
from ..inference.engines.int8 import INT8_VARIANTS
from ..inference.engines.precision import DTYPE_CHOICES, INT8
from ..inference.io import DEFAULT_MAX_PIXELS, HARD_MAX_PIXELS, MAX_PIXELS_ENV
from ..inference.pipeline import DECODE_CHOICES, Estimator
from ..predict import Interrupted, PredictOptions
from ..predict import build_estimator as _build_estimator
from ..predict import run as run_job
from ..predict.options import box_source_options, default_device


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by the commands that run a model (predict, demo, bench)."""
    p.add_argument("--model", default=None,
                   help="variant name (see `vitpose models`), checkpoint path or hub id "
                        "(default: vitpose-b-simple; with --weights, the file's own "
                        "architecture, and a name that contradicts the file is an error)")
    p.add_argument("--weights", default=None,
                   help="checkpoint path or hub id (default: the variant's released weights)")
    p.add_argument("--dataset", default=None,
                   help="keypoint set / ViTPose+ expert: coco, aic, mpii, ap10k, apt36k, "
                        "wholebody, ..., or auto (ViTPose+: each box's detector class picks "
                        "the head, persons -> COCO, animals -> AP-10K) (default: the model's "
                        "first)")
    p.add_argument("--dataset-meta", default=None, metavar="FILE",
                   help="keypoint metadata (.yaml/.json) of a custom dataset, for models "
                        "fine-tuned on your own keypoints (see docs/FINETUNE.md)")
    p.add_argument("--device", default=default_device(),
                   help="where the model runs: cpu, cuda, cuda:1, ... (default: cuda when "
                        "available, else cpu)")
    p.add_argument("--dtype", choices=[*DTYPE_CHOICES, INT8], default="auto",
                   help="compute dtype of the model: auto = bfloat16 on CPUs with "
                        "AVX512-BF16/AMX and on recent GPUs, float16 on older GPUs, else "
                        "float32 (about 3x faster on such CPUs, keypoints within 0.1 px of "
                        "float32 for 99%% of them; see docs/PERFORMANCE.md); float32 = exact, "
                        "the official numbers; int8 = opt-in OpenVINO int8 engine (needs "
                        "vitpose[int8]), calibrated on crops of your own inputs, with a "
                        "certificate of its agreement with float32 printed once; never chosen "
                        "by auto (default: %(default)s)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the backbone (each new batch size compiles for seconds)")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="inference engine: auto = a remembered choice, else for short jobs "
                        "what --backend torch runs (the PyTorch path in the --dtype policy), "
                        "and for jobs long enough to repay it the fastest "
                        "installed engine of this machine whose output passes the accuracy "
                        "gate, found by a calibration and remembered in the cache folder (see "
                        "docs/PERFORMANCE.md); onnxruntime needs vitpose[onnx], openvino "
                        "vitpose[openvino] (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads of the model's engine (torch.set_num_threads, ONNX Runtime, "
                        "OpenVINO) (default: what this machine has free now: the CPUs this "
                        "process may use, capped by a container's CPU quota, less the cores "
                        "other processes keep busy, at least 1; with OMP_NUM_THREADS set, as "
                        "under torchrun, torch's own thread count)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="image, folder, glob ('imgs/*.jpg'), video file or webcam index")
    p.add_argument("--max-pixels", type=int, default=None, metavar="N",
                   help=f"refuse images of more than N pixels (width x height), from the file "
                        f"header before decoding (default: ${MAX_PIXELS_ENV} or "
                        f"{DEFAULT_MAX_PIXELS:,}; at most {HARD_MAX_PIXELS:,})")
    add_model_arguments(p)
    q = p.add_argument_group("int8 (--dtype int8)")
    q.add_argument("--calib", default=None, metavar="DIR",
                   help="calibrate the int8 engine on the images of this folder (default: "
                        "crops of the inputs themselves)")
    q.add_argument("--int8-variant", choices=list(INT8_VARIANTS), default=None,
                   help="which matrix products run in int8 (default: "
                        f"{DEFAULT_INT8_VARIANT}; see docs/PERFORMANCE.md)")
    boxes = p.add_argument_group("person boxes (default: --detector)")
    boxes.add_argument("--detector", default="auto",
                       help="auto (D-FINE-N, fast, downloaded on first use; offline it says "
                            "so and uses hog), dfine-s, rtdetr (RT-DETR-R50, larger and "
                            "slower), a Hugging Face id or folder of a transformers detector, "
                            "hog (offline, OpenCV, low quality) or whole-image (alias: none; "
                            "one box covering the image) (default: %(default)s; see "
                            "docs/DETECTORS.md)")
    boxes.add_argument("--det-classes", default=None, metavar="NAMES",
                       help="comma-separated detector classes to keep (default: person; with "
                            "--dataset auto: person and the animals)")
    boxes.add_argument("--det-engine", choices=("auto", "onnxruntime", "openvino", "torch"),
                       default="auto",
                       help="how a learned detector runs: auto = on the CPU the faster of "
                            "OpenVINO and ONNX Runtime on this machine (timed once, remembered "
                            "beside the cached export), else PyTorch (default: %(default)s; "
                            "docs/DETECTORS.md)")
    boxes.add_argument("--wholebody", action="store_true",
                       help="with --dataset auto: persons get COCO-WholeBody keypoints")
    boxes.add_argument("--det-file", help="detections in COCO results format")
    boxes.add_argument("--images-file",
                       help="COCO annotation/images file mapping image_id -> file name "
                            "(for --det-file, and for image_id in the results)")
    boxes.add_argument("--boxes-json", help='JSON {"file name": [[x, y, w, h, score], ...]}')
    boxes.add_argument("--box", action="append", default=[], metavar="X,Y,W,H",
                       help="a box for every image (repeatable)")
    boxes.add_argument("--det-thr", type=float, default=None,
                       help="minimum box score (default: 0.0 for files, the detector's own)")
    boxes.add_argument("--fallback", choices=("none", "whole-image"), default="none",
                       help="what to do when the detector finds nobody in an image: none (no "
                            "poses) or whole-image (one crop of the whole image, fine for "
                            "single-person photos) (default: %(default)s)")
    test = p.add_argument_group("test-time settings")
    test.add_argument("--no-flip", action="store_true", help="disable the flip test")
    test.add_argument("--decode", choices=DECODE_CHOICES, default=None,
                      help="udp (COCO/MPII/ViTPose+ protocol), default (arg-max + quarter "
                           "offset) or dark (default: the dataset's official protocol)")
    test.add_argument("--oks-nms", type=float, default=None, metavar="THR",
                      help="OKS-NMS threshold per image (the paper uses 0.9; default off)")
    test.add_argument("--batch-size", type=int, default=16,
                      help="person crops per model call (default: %(default)s)")
    out = p.add_argument_group("outputs")
    out.add_argument("--out-dir", default="vitpose_out",
                     help="folder for drawn images/videos and results (default: %(default)s)")
    out.add_argument("--out", default=None,
                     help="results JSON path (default: OUT_DIR/results.json)")
    out.add_argument("--no-draw", action="store_true", help="do not write drawn images")
    out.add_argument("--kpt-thr", type=float, default=0.3,
                     help="keypoints scoring below this are not drawn (default: %(default)s)")
    out.add_argument("--draw-style", choices=("skeleton", "openpose"), default="skeleton",
                     help="drawn images and video: the model's skeleton, or OpenPose-style "
                          "(ControlNet) limbs; with openpose, --background black|image picks "
                          "the canvas (default: %(default)s)")
    out.add_argument("--overwrite", action="store_true",
                     help="start afresh, replacing existing outputs (without it, a rerun of an "
                          "interrupted run continues it, and a complete run is an error)")
    vid = p.add_argument_group("video")
    vid.add_argument("--no-track", action="store_true", help="no track ids across frames")
    vid.add_argument("--smooth", action="store_true", help="One-Euro temporal smoothing")
    vid.add_argument("--max-frames", type=int, default=None, metavar="N",
                     help="stop after N frames")
    vid.add_argument("--det-interval", type=int, default=1, metavar="N",
                     help="run the detector every N frames; in between, each tracked person's "
                          "box comes from their previous keypoints (a lost track triggers a "
                          "new detection) (default: %(default)s)")
    from ..formats.options import add_arguments as add_output_arguments
    add_output_arguments(p)
    p.set_defaults(exports=[])  # filled from those options by `options` (PredictOptions.exports)
    g = p.add_argument_group("scale-out (torchrun; see docs/SCALE_OUT.md)")
    g.add_argument("--read-workers", type=int, default=2, metavar="N",
                   help="threads reading and decoding images ahead of the model in a sharded "
                        "run (torchrun or --out *.jsonl); 0 reads in the main thread "
                        "(default: %(default)s)")


def options(args: argparse.Namespace) -> PredictOptions:
    """The job's options from the parsed command line."""
    from ..formats.options import requested
    return PredictOptions.from_namespace(args).replace(exports=requested(args))


def build_estimator(args: argparse.Namespace) -> Estimator:
    """The estimator of the model options (`add_model_arguments`, test-time settings)."""
    return _build_estimator(options(args))


def box_source(args: argparse.Namespace) -> BoxSource:
    """The box source of the box options."""
    return BoxSource(**box_source_options(options(args)))


def _notice(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Runs the job; exit code 0, 1 (some inputs failed or some predictions were not finite),
    2 (the user's mistake, raised as a `VitPoseError` for `vitpose.cli.main`), 130 (Ctrl-C)
    or 143 (SIGTERM)."""
    stopped_by: list[int] = []

    def terminate(signum: int, frame: Any) -> None:  # stops the job as Ctrl-C does
        stopped_by.append(signum)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread
        previous = None
    try:
        summary = run_job(options(args), notify=_notice)
    except Interrupted as e:
        print(str(e), file=sys.stderr)
        return 143 if stopped_by else 130
    except KeyboardInterrupt:
        if not stopped_by:
            raise
        print("stopped (SIGTERM); what was journalled is kept: rerun the same command to "
              "continue (--overwrite starts afresh)", file=sys.stderr)
        return 143
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    for line in summary.lines:
        print(line)
    for text in summary.notes:
        print(f"note: {text}", file=sys.stderr)
    for text in summary.warnings:
        print(f"warning: {text}", file=sys.stderr)
    return summary.exit_code
