"""Would int8 make the default path faster than OpenVINO bf16, and would it pass the arg-max gate?

The model's matrix products run at ~89% of the machine's bf16 peak in OpenVINO already
(docs/PERFORMANCE.md), so at the same precision no engine can be much faster; int8 (AVX-512
VNNI, AMX-INT8) does twice the multiply-adds per instruction. This script measures what int8
gives on the trained proxy, with the accuracy measure of `auto`'s gate:

* ``peer``: OpenVINO bf16 on its defaults on our one-file export (the peer of `vitpose bench`);
* ``ours bf16``: our OpenVINO bf16 engine (float32 stem and heatmap layer, calls split across
  streams), what `--backend auto` runs when bf16 passes the gate;
* ``int8 <layers>``: the same engine with the trunk graph quantized by NNCF's post-training
  quantization (static, per-channel weights, per-tensor activations, SmoothQuant), only the
  named layers in int8 and everything else as in ``ours bf16``. The calibration uses half of
  the crops; agreement is also given on the other half ("held out").

Crops: every detection of the COCO sample images (the paper's detections) and their mirrors.
Reference: our eager float32 heatmaps. `auto`'s own gate (the bundled image's crops, pass at
`MIN_ARGMAX_SAME`) is reported too. Arg-max agreement over all keypoints and over those
whose float32 peak is >= 0.3; relative L2 of the heatmaps; crops/s at each row count, in
interleaved rounds (the fastest round counts), and the ratio to the peer.

    pip install nncf   # not a dependency of vitpose
    python scripts/int8_probe.py --weights best.pth [--model vitpose-b-simple]
        [--layers linear fc1+qkv middle] [--rows 1 8] [--rounds 5] [--json out.json]

docs/PERFORMANCE.md ("int8") has a run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import vitpose
from vitpose.inference.detectors import load_coco_detections
from vitpose.inference.engines import (
    OpenVinoEngine,
    TorchEngine,
    onnx_file_for,
    onnx_parts_for,
    rel_l2,
)
from vitpose.inference.engines.auto import MIN_ARGMAX_SAME, calibration_inputs
from vitpose.inference.engines.base import argmax_agreement
from vitpose.inference.io import read_image
from vitpose.inference.pipeline import PoseEstimator, TestSettings

#: which matrix products of the trunk run in int8 (a regular expression on OpenVINO's names
#: of the exported graph's MatMul nodes); the attention's own products stay bf16 throughout
LAYERS = {
    "linear": r"/(qkv|proj|fc1|fc2)/MatMul",
    "fc1+qkv": r"/(qkv|fc1)/MatMul",  # the two whose inputs come from a LayerNorm
    "middle": r"blocks\.(?!0/)(?!{last}/)\d+/.*/(qkv|proj|fc1|fc2)/MatMul",  # not the first, last
}


def cpu_name() -> str:
    """The CPU's model name, family and the instruction sets that matter here."""
    try:
        info = dict(line.split(":", 1) for line in
                    Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines() if ":" in line)
    except OSError:
        return platform.processor() or platform.machine()
    info = {k.strip(): v.strip() for k, v in info.items()}
    flags = set(info.get("flags", "").split())
    isa = [f for f in ("avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")
           if f in flags]
    return (f"{info.get('model name', '?')} (family {info.get('cpu family', '?')}, "
            f"{os.cpu_count()} cores; {' '.join(isa) or 'no bf16/int8 extensions'})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, help="trained weights (path or hub id)")
    p.add_argument("--model", default="vitpose-b-simple")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/coco"))
    p.add_argument("--layers", nargs="+", default=list(LAYERS), choices=list(LAYERS))
    p.add_argument("--rows", type=int, nargs="+", default=[1, 8])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=3.0, help="per engine, rows and round")
    p.add_argument("--json", help="also write the report here")
    args = p.parse_args()
    try:
        import nncf
        import openvino as ov
    except ImportError as e:
        raise SystemExit(f"this probe needs OpenVINO and NNCF: pip install openvino nncf ({e})")
    os.environ.setdefault("VITPOSE_CACHE", tempfile.mkdtemp(prefix="vitpose-int8-"))
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model = vitpose.load_model(args.model, weights=args.weights).eval()
    data = Path(args.data)

    # crops and float32 reference heatmaps
    est = PoseEstimator(model, settings=TestSettings.for_dataset("coco", flip_test=False))
    dets = load_coco_detections(data / "test_coco_det_AP_H_56.json", data / "test_coco.json")
    crops = [est.crops(read_image(data / name), boxes)[0] for name, boxes in dets.items()
             if len(boxes)]
    x = torch.cat(crops)
    x = torch.cat([x, torch.flip(x, [3])])
    with torch.no_grad():
        ref = torch.cat([model(x[i:i + 16]) for i in range(0, len(x), 16)])
    order = np.random.default_rng(0).permutation(len(x))
    calibration, held_out = order[: len(x) // 2], order[len(x) // 2:]

    one = onnx_file_for(model)
    stem, trunk, final = onnx_parts_for(model)
    engines = {"peer": OpenVinoEngine(one, "bfloat16", tuned=False),
               "ours bf16": OpenVinoEngine(one, "bfloat16", parts=(stem, trunk, final))}

    # int8 trunks: calibrated on the stem's output for the calibration crops
    core = ov.Core()
    stem_f32 = core.compile_model(str(stem), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    tokens = [stem_f32(x[i:i + 1].numpy())[0] for i in calibration]
    trunk_model = core.read_model(str(trunk))
    names = [op.get_friendly_name() for op in trunk_model.get_ordered_ops()
             if op.get_type_name() in ("MatMul", "Convolution")]
    last = model.cfg.depth - 1
    quantize_seconds = {}
    for label in args.layers:
        pattern = re.compile(LAYERS[label].format(last=last))
        ignored = [n for n in names if not pattern.search(n)]
        t0 = time.perf_counter()
        q = nncf.quantize(trunk_model.clone(), nncf.Dataset(tokens),
                          model_type=nncf.ModelType.TRANSFORMER, subset_size=len(tokens),
                          ignored_scope=nncf.IgnoredScope(names=ignored, validate=False))
        quantize_seconds[label] = round(time.perf_counter() - t0, 1)
        xml = Path(os.environ["VITPOSE_CACHE"]) / f"trunk-int8-{label.replace('+', '-')}.xml"
        ov.save_model(q, str(xml), compress_to_fp16=False)
        engines[f"int8 {label}"] = OpenVinoEngine(one, "bfloat16", parts=(stem, xml, final))

    report: dict = {"cpu": cpu_name(), "model": args.model, "weights": str(args.weights),
                    "crops": len(x), "load_start": os.getloadavg(),
                    "quantize_seconds": quantize_seconds, "accuracy": {}, "speed": {}}
    confident = ref.flatten(2).amax(-1) >= 0.3
    held = torch.as_tensor(held_out)
    gate_x = calibration_inputs(model)  # what `auto`'s gate measures on
    gate_ref = TorchEngine(model, None, torch.float32)(gate_x)
    for label, engine in engines.items():
        out = torch.cat([engine(x[i:i + 16]) for i in range(0, len(x), 16)])
        same = out.flatten(2).argmax(-1) == ref.flatten(2).argmax(-1)
        report["accuracy"][label] = {
            "auto_gate_argmax_same": round(argmax_agreement(engine(gate_x), gate_ref)[0], 4),
            "argmax_same": round(same.float().mean().item(), 4),
            "argmax_same_held_out": round(same[held].float().mean().item(), 4),
            "argmax_same_confident": round(same[confident].float().mean().item(), 4),
            "rel_l2": round(rel_l2(out, ref), 5)}
        gate = report["accuracy"][label]["auto_gate_argmax_same"]
        report["accuracy"][label]["passes_auto_gate"] = gate >= MIN_ARGMAX_SAME
        print(label, report["accuracy"][label], flush=True)

    for rows in args.rows:
        xr = x[:rows].contiguous()
        for engine in engines.values():  # warm-up (the split models compile on first use)
            engine(xr)
        best = dict.fromkeys(engines, 0.0)
        for _ in range(args.rounds):
            for label, engine in engines.items():
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < args.seconds:
                    engine(xr)
                    n += rows
                best[label] = max(best[label], n / (time.perf_counter() - t0))
        report["speed"][rows] = {k: {"crops_per_s": round(v, 2),
                                     "vs_peer": round(v / best["peer"], 3)}
                                 for k, v in best.items()}
        print(f"rows {rows}:", json.dumps(report["speed"][rows]), flush=True)
    report["load_end"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
