"""`vitpose bench`: model and end-to-end throughput of every engine, accuracy of the fast paths,
what ``--backend auto`` chooses and why, time to first result and peak memory of ``predict``, the
comparison with the peers on the same weights (``transformers``; OpenVINO and ONNX Runtime on our
ONNX export with their default settings), and the throughput-vs-AP chart.

Variant names get random weights (speed does not depend on them; pass ``--weights`` for real
ones); a checkpoint path is loaded as usual. Writes ``OUT_DIR/bench.json`` and
``OUT_DIR/throughput_vs_ap.png`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from ..benchmark import BenchConfig, draw_chart, format_report, run_benchmark
from ..errors import InputError
from ..inference.engines import BACKENDS, DTYPE_CHOICES, INT8
from ..inference.engines.int8 import INT8_VARIANTS

log = logging.getLogger("vitpose.bench")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", nargs="+", default=None, metavar="NAME|PATH",
                   help="variant name(s) (random weights) or checkpoint path(s) (default: "
                        "vitpose-b-simple, none when only --detector is given)")
    p.add_argument("--detector", nargs="+", default=[], metavar="NAME",
                   choices=["dfine-n", "dfine-s", "rtdetr"],
                   help="also time these learned detectors (random weights from their "
                        "transformers config, no download): ms per 640x640 frame on each "
                        "detector engine (torch, onnxruntime, openvino) available")
    p.add_argument("--weights", default=None,
                   help="weights for a single --model (path or hub id) instead of random ones")
    p.add_argument("--dataset", default=None, help="keypoint set / ViTPose+ expert")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", nargs="+", default=["float32", "auto"],
                   choices=[*DTYPE_CHOICES, INT8],
                   help="compute dtypes (auto: bf16 on CPUs with AVX512-BF16/AMX and on recent "
                        "GPUs, else fp16 on GPUs, fp32 on CPUs; int8: the opt-in quantized "
                        "OpenVINO engine, calibrated on --images' crops or --calib, with its "
                        "certificate; never chosen by auto) (default: %(default)s)")
    p.add_argument("--int8-variant", nargs="+", default=["mixed"], choices=list(INT8_VARIANTS),
                   help="with --dtype int8: which products run in int8 (all; mixed: the first "
                        "and last blocks kept in higher precision; qkv-fc1; accuracy: NNCF's "
                        "accuracy-controlled quantization) (default: %(default)s)")
    p.add_argument("--calib", default=None, metavar="DIR",
                   help="with --dtype int8 and no --images: images to calibrate on")
    p.add_argument("--batch-size", nargs="+", type=int, default=[1],
                   help="batch sizes of the model-throughput runs (default: %(default)s)")
    p.add_argument("--backend", nargs="+", default=["auto", "torch"],
                   choices=list(BACKENDS),
                   help="engines of our model; auto = what `predict --backend auto` chooses for "
                        "each --dtype policy (calibrated afresh) (default: %(default)s)")
    p.add_argument("--auto-crops", type=int, default=None, metavar="N",
                   help="tell auto the job runs N crops: it then calibrates only where that "
                        "repays the calibration (default: calibrate, the choice of a long job)")
    p.add_argument("--peers", nargs="*", default=["transformers", "openvino", "onnxruntime"],
                   choices=["transformers", "openvino", "onnxruntime"],
                   help="peer engines on the same weights: transformers (fp32 and autocast), "
                        "OpenVINO and ONNX Runtime on our ONNX export with their default "
                        "settings (default: %(default)s)")
    p.add_argument("--compile", action="store_true",
                   help="also measure torch.compile variants (slow to start)")
    p.add_argument("--no-transformers", action="store_true",
                   help="skip the transformers reference runs")
    e2e = p.add_argument_group("end to end (skipped without --images)")
    e2e.add_argument("--images", default=None,
                     help="image, folder or glob for the end-to-end runs, e.g. "
                          "../shared/data/coco")
    e2e.add_argument("--det-file", default=None, help="person detections (COCO results format)")
    e2e.add_argument("--images-file", default=None,
                     help="COCO file mapping image ids to file names (for --det-file)")
    e2e.add_argument("--det-thr", type=float, default=0.0,
                     help="minimum detection score (default %(default)s, the paper's protocol)")
    e2e.add_argument("--max-images", type=int, default=None)
    e2e.add_argument("--no-flip", action="store_true", help="end to end without the flip test")
    e2e.add_argument("--e2e-batch-size", type=int, default=16,
                     help="crops per model call end to end (default: %(default)s)")
    e2e.add_argument("--e2e-repeats", type=int, default=1,
                     help="end-to-end passes per variant; the median is reported")
    e2e.add_argument("--no-memory", action="store_true",
                     help="skip the peak-memory runs of `vitpose predict`")
    e2e.add_argument("--no-first-result", action="store_true",
                     help="skip the time-to-first-result runs of `vitpose predict` (one image: "
                          "torch path, auto with a cold and a warm cache)")
    tm = p.add_argument_group("timing")
    tm.add_argument("--rounds", type=int, default=5,
                    help="interleaved timing rounds per batch size (default: %(default)s)")
    tm.add_argument("--warmup", type=int, default=1)
    tm.add_argument("--min-seconds", type=float, default=0.0,
                    help="keep timing rounds going for at least this long")
    tm.add_argument("--threads", type=int, default=None,
                    help="torch / onnxruntime / openvino threads")
    tm.add_argument("--no-peak", action="store_true", help="skip the matmul peak measurement")
    tm.add_argument("--accuracy-crops", type=int, default=16,
                    help="crops of the accuracy comparison (default: %(default)s)")
    out = p.add_argument_group("outputs")
    out.add_argument("--out-dir", default="vitpose_bench",
                     help="folder for bench.json and the chart (default: %(default)s)")
    out.add_argument("--json", default=None, help="JSON path (default: OUT_DIR/bench.json)")
    out.add_argument("--chart", default=None,
                     help="chart PNG path (default: OUT_DIR/throughput_vs_ap.png)")


def run(args: argparse.Namespace) -> int:
    if args.model is None:
        args.model = [] if args.detector else ["vitpose-b-simple"]
    if args.weights and len(args.model) != 1:
        raise InputError("--weights needs exactly one --model")
    if any(b < 1 for b in args.batch_size) or args.e2e_batch_size < 1:
        raise InputError("batch sizes must be positive")
    if (args.det_file or args.images_file) and not args.images:
        raise InputError("--det-file / --images-file need --images")
    cfg = BenchConfig(
        models=list(args.model), weights=args.weights, dataset=args.dataset, device=args.device,
        dtypes=list(args.dtype), batch_sizes=list(args.batch_size), backends=list(args.backend),
        peers=list(args.peers), first_result=not args.no_first_result,
        compile=args.compile, transformers=not args.no_transformers, images=args.images,
        det_file=args.det_file, images_file=args.images_file, det_thr=args.det_thr,
        max_images=args.max_images, flip=not args.no_flip, e2e_batch_size=args.e2e_batch_size,
        e2e_repeats=args.e2e_repeats, rounds=args.rounds, warmup=args.warmup,
        min_seconds=args.min_seconds, accuracy_crops=args.accuracy_crops,
        matmul_peak=not args.no_peak, predict_memory=not args.no_memory, threads=args.threads,
        detectors=list(args.detector), int8_variants=list(args.int8_variant),
        calib=args.calib, auto_crops=args.auto_crops)
    report = run_benchmark(cfg)
    out_dir = Path(args.out_dir)
    json_path = Path(args.json) if args.json else out_dir / "bench.json"
    chart_path = Path(args.chart) if args.chart else out_dir / "throughput_vs_ap.png"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, default=str))
    if report["models"]:
        draw_chart(report, chart_path)
    print()
    print(format_report(report))
    print(f"\n-> {json_path}" + (f", {chart_path}" if report["models"] else ""))
    return 0
