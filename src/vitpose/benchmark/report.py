"""The report of `run_benchmark` as plain-text tables, and its headline ratios."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["format_report", "row_label", "summary"]


def row_label(row: Mapping[str, Any]) -> str:
    """``impl/backend/dtype[+compile]``; for ``auto`` ``vitpose/auto:<policy>=<engine>``; for
    an int8 variant ``vitpose/openvino/int8-<variant>`` (each variant its own row)."""
    if row.get("backend") == "auto":
        return f"{row['impl']}/auto:{row.get('policy')}={row.get('engine')}"
    if row.get("dtype") == "int8" and str(row.get("policy") or "").startswith("int8-"):
        return f"{row['impl']}/{row['backend']}/{row['policy']}"
    return f"{row['impl']}/{row['backend']}/{row['dtype']}" + ("+compile" if row["compile"]
                                                              else "")


def _auto(rows: list[Mapping[str, Any]], policy: str) -> Mapping[str, Any] | None:
    return next((r for r in rows if r.get("backend") == "auto" and r.get("policy") == policy),
                None)


def summary(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The headline ratios of one model: for each batch size the default path (``auto`` with
    the ``auto`` dtype policy) against the fastest peer in any precision, the exact path
    (``auto`` with ``float32``) against the fastest float32 peer, and our best variant against
    ``transformers``; end to end the default path against the OpenVINO reference pipeline;
    the time to first result of ``predict`` with a warm cache against the torch path."""
    runs = entry["runs"]
    out: dict[str, Any] = {}
    for b in sorted({r["batch_size"] for r in runs}):
        at_b = [r for r in runs if r["batch_size"] == b]
        rec: dict[str, Any] = {}
        default, exact = _auto(at_b, "auto"), _auto(at_b, "float32")
        if default:
            rec["default_engine"] = default["engine"]
            rec["default_crops_per_s"] = default["items_per_s"]
            rec["default_vs_fastest_peer"] = default.get("vs_fastest_peer")
            rec["fastest_peer"] = default.get("fastest_peer")
            rec["default_argmax_same"] = default["argmax_same"]
        if exact:
            rec["exact_engine"] = exact["engine"]
            rec["exact_crops_per_s"] = exact["items_per_s"]
            rec["exact_vs_fastest_fp32_peer"] = exact.get("vs_fastest_peer_same_class")
            rec["fastest_fp32_peer"] = exact.get("fastest_peer_same_class")
            rec["exact_rel_l2_vs_fp32"] = exact["rel_l2_vs_fp32"]
        ours = [r for r in at_b if r["impl"] == "vitpose"]
        theirs = {r["dtype"]: r for r in at_b if r["impl"] == "transformers"}
        if ours:
            best = max(ours, key=lambda r: r["items_per_s"])
            rec["best_ours"] = row_label(best)
            rec["best_ours_crops_per_s"] = best["items_per_s"]
            rec["best_ours_fraction_of_matmul_peak"] = best["fraction_of_matmul_peak"]
            if "float32" in theirs:
                rec["best_ours_vs_transformers_fp32"] = round(
                    best["items_per_s"] / theirs["float32"]["items_per_s"], 3)
        out[f"batch_{b}"] = rec
    e2e = entry["end_to_end"]
    default = _auto(e2e, "auto") or next(
        iter(sorted((r for r in e2e if r["impl"] == "vitpose"),
                    key=lambda r: -r["instances_per_s"])), None)
    if default:
        out["e2e_default"] = row_label(default)
        out["e2e_default_instances_per_s"] = default["instances_per_s"]
        out["e2e_default_vs_openvino_reference"] = default.get("vs_openvino_reference")
        out["e2e_default_vs_transformers_fp32"] = default.get("vs_transformers_fp32")
        out["e2e_default_non_model_fraction"] = default["non_model_fraction"]
    first = {r["run"]: r for r in entry.get("first_result", [])}
    if "torch" in first and "auto, warm cache" in first:
        out["first_result_warm_vs_torch"] = round(first["auto, warm cache"]["seconds"]
                                                  / first["torch"]["seconds"], 3)
    mem = [r["peak_rss_mb"] for r in entry["predict_memory"] if r.get("peak_rss_mb")]
    if mem:
        out["predict_peak_rss_mb_max"] = max(mem)
    return out


def _fmt(v: Any, spec: str = ".2f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def format_report(report: Mapping[str, Any]) -> str:
    """The report as plain-text tables."""
    lines = []
    sysinfo = report["system"]
    lines.append(f"device: {sysinfo.get('gpu') or sysinfo['cpu']} ({sysinfo['cpu_count']} CPUs, "
                 f"{sysinfo['torch_threads']} torch threads), torch {sysinfo['torch']}, "
                 f"transformers {sysinfo.get('transformers')}, onnxruntime "
                 f"{sysinfo.get('onnxruntime')}, openvino {sysinfo.get('openvino')}")
    if "load_average_start" in sysinfo:
        lines.append(f"load average at start {sysinfo['load_average_start']}, at end "
                     f"{sysinfo.get('load_average_end')}")
    if report["matmul_peak_gflops"]:
        lines.append("matmul peak: " + ", ".join(f"{k} {v:.0f} GFLOP/s"
                                                  for k, v in report["matmul_peak_gflops"].items()))
    for m in report["models"]:
        lines.append("")
        lines.append(f"{m['model']}  ({m['params_M']}M params, {m['gflop_per_crop']} GFLOP/crop, "
                     f"dataset {m['dataset']}, weights {m['weights']}, COCO AP (README) "
                     f"{_fmt(m['coco_ap_readme'], '.1f')})")
        for c in m.get("auto_choices", []):
            lines.append(f"auto ({c['policy']}): {c['engine']}, calibrated in "
                         f"{c['calibration_seconds']} s: {c['reason']}")
        hdr = (f"{'model call':44s} {'batch':>5s} {'crops/s':>8s} {'ms/batch':>9s} "
               f"{'%peak':>6s} {'x hf32':>7s} {'x peer':>7s} {'x peer=':>7s} {'relL2':>8s} "
               f"{'argmax':>7s}")
        lines.append(hdr)
        for r in m["runs"]:
            frac = r["fraction_of_matmul_peak"]
            lines.append(
                f"{row_label(r):44s} {r['batch_size']:5d} {r['items_per_s']:8.2f} "
                f"{r['median_ms']:9.1f} {_fmt(None if frac is None else 100 * frac, '.1f'):>6s} "
                f"{_fmt(r['vs_transformers_fp32']):>7s} {_fmt(r.get('vs_fastest_peer')):>7s} "
                f"{_fmt(r.get('vs_fastest_peer_same_class')):>7s} {r['rel_l2_vs_fp32']:8.1e} "
                f"{100 * r['argmax_same']:6.1f}%"
                + (f"  paper A100: {r['paper_fps_a100']}" if r.get("paper_fps_a100") else ""))
        if m["end_to_end"]:
            lines.append(f"{'end to end (flip test)':44s} {'inst':>5s} {'inst/s':>8s} "
                         f"{'seconds':>9s} {'x hf32':>7s} {'x ovref':>7s} {'non-model':>9s}  "
                         "stages (s)")
            for r in m["end_to_end"]:
                stages = " ".join(f"{k} {v:.2f}" for k, v in r["stages_s"].items())
                lines.append(f"{row_label(r):44s} {r['instances']:5d} "
                             f"{r['instances_per_s']:8.2f} {r['seconds']:9.2f} "
                             f"{_fmt(r['vs_transformers_fp32']):>7s} "
                             f"{_fmt(r.get('vs_openvino_reference')):>7s} "
                             f"{100 * r['non_model_fraction']:8.1f}%  {stages}")
        for r in m.get("first_result", []):
            lines.append(f"vitpose predict, one image, {r['run']}: {r['seconds']:.2f} s, peak RSS "
                         f"{_fmt(r['peak_rss_mb'], '.0f')} MiB, exit code {r['exit_code']}")
        for r in m["predict_memory"]:
            lines.append(f"vitpose predict ({r['dtype']}): peak RSS {_fmt(r['peak_rss_mb'], '.0f')}"
                         f" MiB, {r['seconds']} s, exit code {r['exit_code']}")
        for note in m["notes"]:
            lines.append(f"note: {note}")
        if m.get("summary"):
            lines.append("summary: " + json.dumps(m["summary"]))
    det_rows = report.get("detectors") or []
    if det_rows:
        lines.append("")
        lines.append(f"{'detector (random weights)':28s} {'engine':12s} {'input':>9s} "
                     f"{'ms/frame':>9s} {'best ms':>8s}")
        for r in det_rows:
            if "note" in r:
                lines.append(f"{r['detector']:28s} {r['engine']:12s} unavailable: {r['note']}")
                continue
            size = "x".join(str(v) for v in reversed(r["input_hw"]))
            lines.append(f"{r['detector']:28s} {r['engine']:12s} {size:>9s} "
                         f"{r['ms_per_frame']:9.1f} {r['best_ms']:8.1f}"
                         + ("  <- --det-engine auto" if r["auto"] else ""))
    return "\n".join(lines)
