"""The GPU check: one script, at most 8 minutes, that writes one JSON file.

1. parity: CUDA float32 against CPU float32 on the same weights and crops (relative L2 and
   heatmap arg-max agreement);
2. throughput of ViTPose-B at batch 64 (256x192, no flip test; the paper's setting) in fp16 and
   bf16 per engine: torch eager, ``torch.compile``, ONNX Runtime CUDA and TensorRT where
   installed, with the ratio to the paper's 944 images/s on an A100;
3. training throughput: 50 steps of AdamW with AMP (bf16 where supported, else fp16 with a
   gradient scaler) at batch 64;
4. a one-GPU ``torchrun`` predict on the sample images (``--out *.jsonl``: the sharded path).

Each part has its own time budget and records an error instead of stopping the others.
``--dry-run`` runs every part on the CPU with a tiny model in seconds (what the tests run);
on a GPU machine::

    python scripts/gpu_check.py --out gpu_check.json

No timing is asserted anywhere: the JSON holds the figures for docs/PERFORMANCE.md ("GPU").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

try:
    import vitpose
except ImportError:  # a bare checkout (the device machine): the package from this repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import vitpose
from vitpose.inference.engines import (  # noqa: E402
    OnnxRuntimeEngine,
    TorchEngine,
    argmax_agreement,
    onnx_file_for,
    onnxruntime_available,
    optimize_for_inference,
    rel_l2,
)

PAPER_FPS_A100 = 944.0  # ViTPose-B, A100, batch 64, 256x192 (the paper's Table)
ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "coco"


def _model(dry: bool) -> vitpose.ViTPose:
    if dry:
        return vitpose.build_model("vitpose-b-simple", embed_dim=32, depth=1, num_heads=2).eval()
    return vitpose.build_model("vitpose-b-simple").eval()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(fn: Any, x: torch.Tensor, device: torch.device, seconds: float, warmup: int = 2
          ) -> dict[str, float]:
    """Images per second of ``fn(x)``: warm-up calls, then calls for `seconds` (at least 3)."""
    for _ in range(warmup):
        fn(x)
    _sync(device)
    n, t0 = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - t0 < seconds:
        fn(x)
        n += 1
    _sync(device)
    dt = time.perf_counter() - t0
    return {"images_per_s": round(n * len(x) / dt, 2), "calls": n,
            "ms_per_batch": round(1e3 * dt / n, 3)}


def parity(model: vitpose.ViTPose, device: torch.device, batch: int) -> dict[str, Any]:
    x = torch.randn(batch, 3, *model.input_size, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        cpu = TorchEngine(model, None, torch.float32)(x)
        moved = _copy_to(model, device)
        dev = TorchEngine(moved, None, torch.float32)(x.to(device)).cpu()
    same, near = argmax_agreement(dev, cpu)
    return {"rel_l2": rel_l2(dev, cpu), "argmax_same": same, "argmax_within_1px": near,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32 if device.type == "cuda"
            else None}


def _copy_to(model: vitpose.ViTPose, device: torch.device) -> vitpose.ViTPose:
    import copy
    return copy.deepcopy(model).to(device).eval()


#: the whole check stops starting new measurements after this many seconds (8 minutes in all)
BUDGET_S = 420.0
_CLOCK = {"budget": BUDGET_S, "t0": time.perf_counter()}


def _left() -> float:
    return _CLOCK["budget"] - (time.perf_counter() - _CLOCK["t0"])


def throughput(model: vitpose.ViTPose, device: torch.device, batch: int, seconds: float,
               dtypes: list[torch.dtype], compile_ok: bool, dry: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    x = torch.randn(batch, 3, *model.input_size, device=device)

    def add(engine: str, dtype: torch.dtype, fn: Any, **extra: Any) -> None:
        if _left() < 3 * seconds:
            rows.append({"engine": engine, "dtype": str(dtype), "skipped": "time budget"})
            return
        row: dict[str, Any] = {"engine": engine, "dtype": str(dtype).replace("torch.", ""),
                               "batch": batch, **extra}
        try:
            with torch.inference_mode():
                row.update(_rate(fn, x, device, seconds))
            row["vs_paper_a100"] = round(row["images_per_s"] / PAPER_FPS_A100, 3)
        except Exception as e:  # noqa: BLE001 - a failing engine is a finding, not a crash
            row["error"] = f"{type(e).__name__}: {e}"[:500]
        rows.append(row)
        print(json.dumps(row), flush=True)

    for dt in dtypes:
        prepared = optimize_for_inference(_copy_to(model, device), dt)
        add("torch eager", dt, TorchEngine(prepared, None, dt))
        if compile_ok and _left() > 120:
            try:
                compiled = optimize_for_inference(_copy_to(model, device), dt, compile=True)
                add("torch.compile", dt, TorchEngine(compiled, None, dt))
            except Exception as e:  # noqa: BLE001
                rows.append({"engine": "torch.compile", "dtype": str(dt), "error": str(e)[:500]})
        del prepared
    if onnxruntime_available():
        try:
            import onnxruntime as ort
            providers = ort.get_available_providers()
        except Exception:  # noqa: BLE001
            providers = []
        path = onnx_file_for(model)
        for name, trt, fp16 in (("onnxruntime CUDA", False, False),
                                ("onnxruntime TensorRT", True, True)):
            wanted = "TensorrtExecutionProvider" if trt else "CUDAExecutionProvider"
            if trt and _left() < 200:
                rows.append({"engine": name, "skipped": "time budget (TensorRT builds for "
                             "minutes)"})
                continue
            if device.type != "cuda" or wanted not in providers:
                rows.append({"engine": name, "skipped": f"{wanted} not installed "
                             f"(providers: {providers})"})
                continue
            try:
                eng = OnnxRuntimeEngine(path, device=device, tensorrt=trt, fp16=fp16)
                add(name, eng.dtype, eng, providers=eng.providers)
            except Exception as e:  # noqa: BLE001
                rows.append({"engine": name, "error": f"{type(e).__name__}: {e}"[:500]})
        if dry and device.type == "cpu":  # the dry run exercises the ONNX path on the CPU
            eng = OnnxRuntimeEngine(path)
            add("onnxruntime CPU (dry run)", torch.float32, eng, providers=eng.providers)
    else:
        rows.append({"engine": "onnxruntime", "skipped": "onnxruntime is not installed"})
    return rows


def training(model: vitpose.ViTPose, device: torch.device, batch: int, steps: int
             ) -> dict[str, Any]:
    """`steps` AdamW steps with AMP on random crops and heatmaps (MSE), after 3 warm-up steps."""
    net = _copy_to(model, device).train()
    amp = torch.bfloat16 if device.type == "cpu" or torch.cuda.is_bf16_supported() \
        else torch.float16
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    h, w = model.input_size
    x = torch.randn(batch, 3, h, w, device=device)
    target = torch.rand(batch, model.cfg.num_keypoints, h // 4, w // 4, device=device)

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp):
            out = net.head_for(0)(net.forward_features(x, 0))
            loss = torch.nn.functional.mse_loss(out.float(), target)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        return float(loss.detach())

    for _ in range(3):
        step()
    _sync(device)
    t0 = time.perf_counter()
    losses = [step() for _ in range(steps)]
    _sync(device)
    dt = time.perf_counter() - t0
    return {"steps": steps, "batch": batch, "amp": str(amp).replace("torch.", ""),
            "images_per_s": round(steps * batch / dt, 2), "seconds": round(dt, 2),
            "loss_first_last": [round(losses[0], 6), round(losses[-1], 6)],
            "peak_mem_mb": round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)
            if device.type == "cuda" else None}


def torchrun_predict(model: vitpose.ViTPose, device: torch.device, timeout: float,
                     tmp: Path) -> dict[str, Any]:
    """``torchrun --nproc_per_node 1 -m vitpose predict`` on the sample images."""
    ckpt = vitpose.save_checkpoint(model, tmp / "model.pth")
    images = SAMPLES if SAMPLES.is_dir() else ROOT / "src" / "vitpose" / "assets"
    out = tmp / "predict.jsonl"
    runner = shutil.which("torchrun")
    launcher = [runner] if runner else [sys.executable, "-m", "torch.distributed.run"]
    cmd = [*launcher, "--standalone", "--nproc_per_node", "1", "-m", "vitpose", "predict",
           str(images), "--weights", str(ckpt), "--device", str(device), "--detector",
           "whole-image", "--backend", "torch", "--out", str(out)]
    src = str(Path(vitpose.__file__).resolve().parents[1])  # the vitpose this script runs
    env = {**os.environ, "VITPOSE_CACHE": str(tmp / "cache"),
           "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"command": " ".join(cmd), "error": f"timed out after {timeout:.0f} s"}
    lines = out.read_text().splitlines() if out.is_file() else []
    return {"command": " ".join(cmd), "exit_code": proc.returncode,
            "seconds": round(time.perf_counter() - t0, 2), "result_lines": len(lines),
            "stderr_tail": proc.stderr[-1500:]}


def _part(report: dict[str, Any], name: str, fn: Any) -> None:
    t0 = time.perf_counter()
    try:
        report[name] = fn()
    except Exception as e:  # noqa: BLE001 - one failing part must not lose the others
        report[name] = {"error": f"{type(e).__name__}: {e}",
                        "traceback": traceback.format_exc()[-2000:]}
    report.setdefault("part_seconds", {})[name] = round(time.perf_counter() - t0, 1)
    print(f"== {name} done in {report['part_seconds'][name]} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="gpu_check.json", help="the JSON report")
    p.add_argument("--dry-run", action="store_true",
                   help="on the CPU with a tiny model, in seconds (what the tests run)")
    p.add_argument("--device", default=None, help="default cuda (cpu with --dry-run)")
    p.add_argument("--batch", type=int, default=None, help="default 64 (4 with --dry-run)")
    p.add_argument("--seconds", type=float, default=None,
                   help="timed seconds per engine and dtype (default 10; 0.2 with --dry-run)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default 50)")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--no-torchrun", action="store_true", help="skip the torchrun predict")
    p.add_argument("--budget", type=float, default=BUDGET_S,
                   help="seconds after which no new measurement starts (default %(default)s)")
    args = p.parse_args(argv)
    _CLOCK.update(budget=args.budget, t0=time.perf_counter())
    dry = args.dry_run
    device = torch.device(args.device or ("cpu" if dry else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here: run with --dry-run on a CPU", file=sys.stderr)
        return 2
    batch = args.batch or (4 if dry else 64)
    seconds = args.seconds if args.seconds is not None else (0.2 if dry else 10.0)
    steps = args.steps or (3 if dry else 50)
    t_start = time.perf_counter()
    report: dict[str, Any] = {
        "dry_run": dry, "device": str(device), "torch": torch.__version__,
        "cuda": torch.version.cuda, "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "paper_fps_a100_vitpose_b_batch64": PAPER_FPS_A100,
        "model": "tiny (dry run)" if dry else "vitpose-b-simple (random weights: speed only)"}
    model = _model(dry)
    dtypes = [torch.float16, torch.bfloat16] if device.type == "cuda" else [torch.bfloat16]
    with tempfile.TemporaryDirectory(prefix="vitpose-gpu-check-") as tmp:
        os.environ.setdefault("VITPOSE_CACHE", str(Path(tmp) / "cache"))
        if device.type == "cuda":
            _part(report, "parity_cuda_vs_cpu_fp32", lambda: parity(model, device, 8))
        else:
            report["parity_cuda_vs_cpu_fp32"] = {"skipped": "no CUDA device (dry run)"}
            _part(report, "parity_cpu_self_check", lambda: parity(model, device, 2))
        _part(report, "inference_throughput",
              lambda: throughput(model, device, batch, seconds, dtypes,
                                 not args.no_compile and not dry, dry))
        _part(report, "training_amp", lambda: training(model, device, batch, steps))
        if not args.no_torchrun and _left() > 30:
            _part(report, "torchrun_predict",
                  lambda: torchrun_predict(model, device, 60 if dry else max(30, _left()),
                                           Path(tmp)))
    report["total_seconds"] = round(time.perf_counter() - t_start, 1)
    Path(args.out).write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"-> {args.out} ({report['total_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
