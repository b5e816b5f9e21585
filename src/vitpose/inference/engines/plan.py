"""The rule of ``--backend auto`` (`plan_engine`): whether a job is long enough to calibrate the
engines, from facts only (the candidates, the CPU's instruction sets, the model's size, whether
the exported graph is cached, the job's crops); no timing, so tests inject every fact."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ...models.vitpose import ViTPose
from .base import DTYPE_NAMES
from .online import ROUNDS

__all__ = ["GATE_ROWS", "LONG_JOB_FACTOR", "TIMING_ROWS", "Candidate", "Plan", "calibration_cost_crops",
           "estimate_seconds_per_crop", "gflop_per_crop_of", "plan_engine"]


@dataclass(frozen=True)
class Candidate:
    """An engine to build: backend and compute dtype."""

    backend: str
    dtype: torch.dtype

    @property
    def label(self) -> str:
        return f"{self.backend}/{DTYPE_NAMES[self.dtype]}"


#: Sustained float32 multiply-add throughput of one thread (FLOP/s) by instruction set, for the
#: rule's estimates only (orders of magnitude: a 2-core AVX2 EPYC runs ViTPose-B at ~0.5 s per
#: crop); bf16 where native.
_F32_RATE = (("avx512f", 60e9), ("avx2", 30e9))
_BF16_RATE = (("amx_bf16", 400e9), ("avx512_bf16", 120e9))
_SCALAR_RATE = 8e9
_GPU_RATE = 20e12
#: rows an engine runs in a calibration (gate crops, warm-up, interleaved rounds), and the
#: export / OpenVINO compilation, in crops of the safe engine (2-core AVX2 measures: ViTPose-B
#: exports in ~10 s, compiles in ~2-4 s)
_EXPORT_CROPS = 20
_COMPILE_CROPS = 8


def estimate_seconds_per_crop(gflop_per_crop: float, dtype: torch.dtype, threads: int,
                              features: frozenset[str] | set[str],
                              device: str | torch.device = "cpu") -> float:
    """A rough model-call time per crop from the model's size and the CPU's instruction sets
    (the rule's estimate, never a measurement; a GPU counts as one fast thread)."""
    if torch.device(device).type != "cpu":
        return gflop_per_crop * 1e9 / _GPU_RATE
    rate = next((r for f, r in _F32_RATE if f in features), _SCALAR_RATE)
    if dtype != torch.float32:
        rate = next((r for f, r in _BF16_RATE if f in features), rate / 2)  # emulated: slower
    return gflop_per_crop * 1e9 / (rate * max(1, int(threads)))


def gflop_per_crop_of(model: ViTPose) -> float:
    """Multiply-adds x 2 of one crop, from the parameters of the matrix products and the token
    count (attention's own products are small at these sizes)."""
    h, w = model.input_size
    tokens = (h // model.cfg.patch_size) * (w // model.cfg.patch_size)
    params = sum(p.numel() for p in model.backbone.parameters())
    return 2.0 * params * tokens / 1e9


@dataclass
class Plan:
    """What `plan_engine` decided: calibrate (during the job, from its second call; or before it
    where the job cannot switch engines), or run `engine` without timing anything."""

    calibrate: bool
    engine: str
    reason: str
    seconds_per_crop: float = 0.0
    calibration_seconds: float = 0.0
    #: the calibration's cost in crops of the safe engine (export, compilation, gate)
    calibration_crops: float = 0.0
    during: bool = True


#: A calibration during a job runs when the job's crops are at least this many times what the
#: calibration costs (in crops of the safe engine): it then adds at most half to the job's time,
#: less what the faster engine saves over the rest of the job, and every later job runs the
#: chosen engine from its first crop.
LONG_JOB_FACTOR = 2.0
#: gate rows: the crops of the bundled image and their mirrors (`calibration_inputs`)
GATE_ROWS = 8
#: the largest timed call during a job (rows; `online.CalibratingEngine`'s ``chunk``)
TIMING_ROWS = 8


def calibration_cost_crops(candidates: Sequence[Candidate], features: frozenset[str] | set[str],
                           graph_cached: bool, device: str | torch.device = "cpu",
                           threads: int = 1, gflop_per_crop: float = 1.0) -> float:
    """What a calibration during a job costs, in crops of the safe engine (torch float32): the
    reference and each candidate's gate on `GATE_ROWS` rows (a lower-precision one at its
    estimated speed on this CPU), an OpenVINO compilation per OpenVINO candidate and the ONNX
    export when the graph is not cached. The timing costs nothing extra: it runs the job's own
    calls."""
    s_f32 = estimate_seconds_per_crop(gflop_per_crop, torch.float32, threads, features, device)
    cost = float(GATE_ROWS)  # the reference
    for c in candidates:
        if c.backend == "torch" and c.dtype == torch.float32:
            continue
        s = estimate_seconds_per_crop(gflop_per_crop, c.dtype, threads, features, device)
        cost += GATE_ROWS * s / s_f32
        if c.backend == "openvino":
            cost += _COMPILE_CROPS
    if not graph_cached and any(c.backend != "torch" for c in candidates):
        cost += _EXPORT_CROPS
    return cost


def plan_engine(*, crops: int | None, gflop_per_crop: float, target: torch.dtype,
                candidates: Sequence[Candidate], threads: int,
                features: frozenset[str] | set[str], graph_cached: bool,
                device: str | torch.device = "cpu") -> Plan:
    """The rule of ``--backend auto`` when nothing is remembered: calibrate during a job whose
    `crops` (model rows, flip-test mirrors included; None: unknown) are at least
    `LONG_JOB_FACTOR` times what the calibration costs (`calibration_cost_crops`), and enough to
    time every candidate on the job's calls (its first call on the safe engine, torch float32),
    else run what ``--backend torch`` runs: the torch path in the policy's dtype. The
    break-even is in crops, so it does not depend on the model's size or the CPU's speed (both
    scale alike), only on the engines to calibrate, the CPU's instruction sets (the speed of
    bf16) and whether the exported graph is cached. Pure: tests inject every fact."""
    safe = "torch/float32"
    # a job that is not calibrated runs what `--backend torch` runs with the same dtype
    # policy: the torch path in the policy's dtype (bf16 where the CPU computes it natively)
    plain = f"torch/{DTYPE_NAMES[target]}"
    path = f"the exact {plain} path" if target == torch.float32 else \
        f"the {plain} path (as --backend torch)"
    s_f32 = estimate_seconds_per_crop(gflop_per_crop, torch.float32, threads, features, device)
    labels = [c.label for c in candidates]
    if len(candidates) <= 1:
        return Plan(False, plain, f"{plain} is the only engine to consider here (installed: "
                    f"{', '.join(labels) or 'torch'}): nothing to calibrate", s_f32)
    cost = calibration_cost_crops(candidates, features, graph_cached, device, threads,
                                  gflop_per_crop)
    seconds = cost * s_f32
    export = not graph_cached and any(c.backend != "torch" for c in candidates)
    what = (f"~{cost:.0f} crops' worth (~{seconds:.0f} s) to calibrate {len(candidates)} engines"
            + (" with the ONNX export" if export else ""))
    if crops is None:
        return Plan(False, plain, f"the job's length is unknown, so it is not calibrated "
                    f"({what}): {path} runs", s_f32, seconds, cost)
    # the job must also hold the timed calls: `ROUNDS` turns of each candidate, an untimed and
    # a timed call each, of up to `TIMING_ROWS` rows
    needed = max(LONG_JOB_FACTOR * cost, len(candidates) * 2 * ROUNDS * TIMING_ROWS)
    if crops >= needed:
        return Plan(True, "", f"a long job ({crops} crops, {what}): the first call runs on "
                    f"{safe}, the others calibrate", s_f32, seconds, cost)
    return Plan(False, plain, f"a short job ({crops} crops, fewer than the {needed:.0f} that "
                f"repay {what}): {path} runs without calibration", s_f32, seconds, cost)
