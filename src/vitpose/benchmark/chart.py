"""The throughput-vs-AP chart of the original README, drawn with OpenCV from a bench report (AP
from the README's tables, throughput measured)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..imageio import write_image

__all__ = ["chart_points", "draw_chart"]


_COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
            (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def chart_points(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Points of the throughput-vs-AP chart: one per (series, model) with a known COCO AP;
    throughput is the model's best measured crops/s in that series; the paper's A100 figures
    (batch 64) form their own series."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    paper: dict[str, dict[str, Any]] = {}
    for m in report["models"]:
        ap = m.get("coco_ap_readme")
        if ap is None:
            continue
        short = (m.get("variant") or m["model"]).replace("vitpose-", "")
        for r in m["runs"]:
            series = f"{r['impl']} {r['backend']} {r['dtype']}" + (" compile" if r["compile"]
                                                                   else "")
            key = (series, m["model"])
            if key not in best or r["items_per_s"] > best[key]["throughput"]:
                best[key] = {"series": series, "label": short, "throughput": r["items_per_s"],
                             "ap": ap}
        if m.get("paper_fps_a100_batch64"):
            paper[m["model"]] = {"series": "paper: A100, batch 64", "label": short,
                                 "throughput": m["paper_fps_a100_batch64"], "ap": ap}
    return list(best.values()) + list(paper.values())


def draw_chart(report: Mapping[str, Any], path: str | os.PathLike,
               size_wh: tuple[int, int] = (1000, 640)) -> Path:
    """Draw COCO AP (README) against measured throughput (log scale) as a PNG with OpenCV."""
    points = chart_points(report)
    w, h = size_wh
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 80, 300, 50, 60
    x0, x1, y0, y1 = left, w - right, top, h - bottom
    font = cv2.FONT_HERSHEY_SIMPLEX
    black = (0, 0, 0)
    title = "COCO val AP (original README) vs throughput measured by `vitpose bench`"
    cv2.putText(img, title, (left, 30), font, 0.55, black, 1, cv2.LINE_AA)
    if points:
        xs = [p["throughput"] for p in points]
        lo, hi = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)))
        hi = max(hi, lo + 1)
        aps = [p["ap"] for p in points]
        ap_lo, ap_hi = math.floor(min(aps)) - 1, math.ceil(max(aps)) + 1
    else:
        lo, hi, ap_lo, ap_hi = 0, 3, 72, 82

    def px(t: float, ap: float) -> tuple[int, int]:
        fx = (math.log10(t) - lo) / (hi - lo)
        fy = (ap - ap_lo) / (ap_hi - ap_lo)
        return int(x0 + fx * (x1 - x0)), int(y1 - fy * (y1 - y0))

    cv2.rectangle(img, (x0, y0), (x1, y1), black, 1)
    for e in range(lo, hi + 1):
        for mult in (1, 2, 5):
            t = mult * 10.0 ** e
            if not 10.0 ** lo <= t <= 10.0 ** hi:
                continue
            x, _ = px(t, ap_lo)
            cv2.line(img, (x, y0), (x, y1), (225, 225, 225) if mult > 1 else (200, 200, 200), 1)
            label = f"{t:g}"
            cv2.putText(img, label, (x - 4 * len(label), y1 + 18), font, 0.4, black, 1,
                        cv2.LINE_AA)
    for ap in range(int(ap_lo), int(ap_hi) + 1):
        _, y = px(10.0 ** lo, ap)
        cv2.line(img, (x0, y), (x1, y), (230, 230, 230), 1)
        cv2.putText(img, str(ap), (x0 - 30, y + 4), font, 0.4, black, 1, cv2.LINE_AA)
    cv2.putText(img, "throughput (crops/s, log scale)", ((x0 + x1) // 2 - 120, h - 20), font,
                0.5, black, 1, cv2.LINE_AA)
    cv2.putText(img, "AP", (20, (y0 + y1) // 2), font, 0.5, black, 1, cv2.LINE_AA)
    series = list(dict.fromkeys(p["series"] for p in points))
    taken: list[tuple[int, int, int, int]] = []  # label boxes drawn so far

    def put_label(text: str, x: int, y: int, colour: tuple[int, int, int]) -> None:
        (tw, th), _ = cv2.getTextSize(text, font, 0.4, 1)
        for dy in (-7, 14, -21, 28):  # above, below, further up, further down; else skip
            box = (x + 7, y + dy - th, x + 7 + tw, y + dy + 2)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                       for b in taken):
                taken.append(box)
                cv2.putText(img, text, (box[0], y + dy), font, 0.4, colour, 1, cv2.LINE_AA)
                return

    for i, s in enumerate(series):
        colour = _COLOURS[i % len(_COLOURS)][::-1]  # RGB -> BGR
        pts = sorted((p for p in points if p["series"] == s), key=lambda p: p["throughput"])
        xy = [px(p["throughput"], p["ap"]) for p in pts]
        if len(xy) > 1:
            cv2.polylines(img, [np.array(xy, np.int32)], False, colour, 2, cv2.LINE_AA)
        for (x, y), p in zip(xy, pts, strict=True):
            cv2.circle(img, (x, y), 5, colour, -1, cv2.LINE_AA)
            put_label(p["label"], x, y, colour)
        ly = y0 + 20 + 22 * i
        cv2.circle(img, (x1 + 20, ly - 4), 5, colour, -1, cv2.LINE_AA)
        cv2.putText(img, s, (x1 + 32, ly), font, 0.42, black, 1, cv2.LINE_AA)
    if not points:
        cv2.putText(img, "no measured model has a COCO AP in the README tables", (x0 + 20,
                    (y0 + y1) // 2), font, 0.5, (0, 0, 200), 1, cv2.LINE_AA)
    return write_image(path, img[..., ::-1])  # drawn in OpenCV's BGR
