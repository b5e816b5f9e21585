"""Speed and memory measurements behind `vitpose bench`.

* `measure`: interleaved timing, matmul peak, FLOPs, peak memory, samples, end-to-end runs;
* `run`: `run_benchmark` (which variants, engines and peers are measured, and how);
* `report`: the plain-text tables and headline ratios;
* `chart`: the throughput-vs-AP chart of the original README.

Timing never runs in unit tests beyond a smoke run.
"""

from .chart import chart_points, draw_chart
from .measure import (
    Sample,
    StageClock,
    Timing,
    load_samples,
    load_transformers_reference,
    matmul_peak_gflops,
    model_flops,
    peak_rss_mb,
    pipeline_end_to_end,
    run_with_peak_rss,
    time_interleaved,
    transformers_end_to_end,
)
from .report import format_report, summary
from .run import PAPER_FPS_A100, BenchConfig, coco_ap_of, largest_batch, run_benchmark

__all__ = [
    "PAPER_FPS_A100", "BenchConfig", "Sample", "StageClock", "Timing", "chart_points",
    "coco_ap_of", "draw_chart", "format_report", "largest_batch", "load_samples",
    "load_transformers_reference", "matmul_peak_gflops", "model_flops", "peak_rss_mb",
    "pipeline_end_to_end", "run_benchmark", "run_with_peak_rss", "summary", "time_interleaved",
    "transformers_end_to_end",
]
