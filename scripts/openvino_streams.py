"""Does splitting a call across OpenVINO streams pay on this machine? And the float32 ends?

Times, in interleaved rounds on the same crops (the fastest round of each counts), the model
call of one variant (default ViTPose-B simple, random weights: speed does not depend on them):

* ``peer``: OpenVINO on its defaults on our one-file ONNX export (what `vitpose bench` calls the
  peer): one request per call;
* ``1 stream``: our engine with ``streams=1`` (latency hint, one request per call);
* ``2 streams``: our engine as `--backend openvino` builds it on 2 threads (calls of several
  rows split into two parts run at once on a throughput-hint model);
* in bf16 also ``1 stream, one graph``: our settings without the float32 ends (one graph, every
  layer bf16), to show what the three-graph chain costs.

    python scripts/openvino_streams.py [--model vitpose-b-simple] [--rows 1 2 8 16 32]
        [--dtypes float32 bfloat16] [--rounds 5] [--json out.json]

Prints crops/s per variant and rows, and each variant's ratio to the peer; docs/PERFORMANCE.md
("Streams") has a run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

import vitpose
from vitpose.inference.engines import OpenVinoEngine, onnx_file_for, onnx_parts_for


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="vitpose-b-simple")
    p.add_argument("--rows", type=int, nargs="+", default=[1, 2, 8, 16, 32])
    p.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()
    os.environ.setdefault("VITPOSE_CACHE", tempfile.mkdtemp(prefix="vitpose-streams-"))
    torch.manual_seed(0)
    model = vitpose.build_model(args.model).eval()
    one, parts = onnx_file_for(model), onnx_parts_for(model)
    report: dict = {"model": args.model, "load_start": os.getloadavg(), "runs": []}
    for dtype in args.dtypes:
        variants = {"peer": OpenVinoEngine(one, dtype, tuned=False),
                    "1 stream": OpenVinoEngine(one, dtype, streams=1, parts=parts),
                    "2 streams": OpenVinoEngine(one, dtype, streams=2, parts=parts)}
        if dtype != "float32":
            variants["1 stream, one graph"] = OpenVinoEngine(one, dtype, streams=1)
        for rows in args.rows:
            x = torch.randn(rows, 3, *model.input_size, generator=torch.Generator().manual_seed(1))
            for engine in variants.values():  # warm-up: compilation of the split models
                engine(x)
            best = dict.fromkeys(variants, float("inf"))
            for _ in range(args.rounds):
                for name, engine in variants.items():
                    t0 = time.perf_counter()
                    engine(x)
                    best[name] = min(best[name], time.perf_counter() - t0)
            peer = best["peer"]
            cells = [f"{name} {rows / t:6.2f}/s (x{peer / t:.2f})" for name, t in best.items()]
            print(f"{dtype:8s} rows {rows:3d} load {os.getloadavg()[0]:4.1f}: " + ", ".join(cells),
                  flush=True)
            report["runs"].append({"dtype": dtype, "rows": rows, "load": os.getloadavg()[0],
                                   "crops_per_s": {k: rows / t for k, t in best.items()}})
    report["load_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
