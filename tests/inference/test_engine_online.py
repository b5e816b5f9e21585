"""The calibration during a job (`engines.online.CalibratingEngine`): the first call on the safe
engine, the candidates prepared once before the second, timed on the job's own calls (a fake
clock the fake engines advance: no test depends on this machine's timing), the fastest kept;
failures never fail the job."""

from __future__ import annotations

import logging

import pytest
import torch

from vitpose.inference.engines import CalibratingEngine, Engine


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeEngine(Engine):
    """Heatmaps filled with `value`; each call advances the clock by `seconds_per_row` x rows
    (and by `warmup` more on its first call). `spin`: its threads keep spinning after a call,
    so that the next call of another engine takes that many seconds more (ONNX Runtime)."""

    def __init__(self, name: str, clock: Clock, seconds_per_row: float, value: float,
                 warmup: float = 0.0, fail_after: int | None = None,
                 dtype: torch.dtype = torch.float32, spin: float = 0.0) -> None:
        self.backend, self.dtype = name, dtype
        self.clock, self.spr, self.value, self.warmup = clock, seconds_per_row, value, warmup
        self.calls, self.fail_after, self.spin = 0, fail_after, spin

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("unsupported shape")
        tail = getattr(self.clock, "tail", None)
        if tail is not None and tail[0] is not self:
            self.clock.now += tail[1]  # the previous engine's spinning threads
        self.clock.tail = (self, self.spin)
        self.clock.now += self.spr * len(images) + (self.warmup if self.calls == 1 else 0.0)
        return torch.full((len(images), 2, 4, 3), self.value)


def _engine(clock, candidates, *, prepare=None, decided=None, released=None):
    safe = FakeEngine("torch", clock, 1.0, 0.0)
    calls = {"prepare": 0}

    def default_prepare():
        calls["prepare"] += 1
        clock.now += 10.0  # export, compilation, gate
        return {"torch/float32": safe, **candidates}

    def decide(samples, overhead, timed):
        decided.update(samples=samples, overhead=overhead, timed=timed) if decided is not None \
            else None
        return min(samples, key=lambda k: min(samples[k].values()))

    engine = CalibratingEngine(safe, "torch/float32", prepare or default_prepare, decide,
                               clock=clock, rounds=3,
                               release=(lambda: released.append(1)) if released is not None
                               else None)
    return engine, safe, calls


def test_first_call_is_the_safe_engine_then_the_fastest_candidate_wins():
    clock = Clock()
    fast = FakeEngine("openvino", clock, 0.3, 2.0, warmup=5.0)
    mid = FakeEngine("onnxruntime", clock, 0.8, 1.0)
    decided, released = {}, []
    engine, safe, calls = _engine(clock, {"openvino/float32": fast, "onnxruntime/float32": mid},
                                  decided=decided, released=released)
    x = torch.zeros(2, 3, 8, 6)
    assert engine(x).unique().item() == 0.0 and calls["prepare"] == 0 and safe.calls == 1
    outputs = []
    while not engine.done:
        outputs.append(engine(x).unique().item())
        assert len(outputs) < 50
    assert calls["prepare"] == 1
    assert engine.label == "openvino/float32"
    # every call of the job returned the heatmaps of the engine that ran it
    assert set(outputs) == {0.0, 1.0, 2.0}
    # the warm-up call (5 s more) did not count; the overhead is the preparation's
    assert decided["samples"]["openvino/float32"] == {2: pytest.approx(0.3)}
    assert decided["overhead"] == pytest.approx(10.0) and decided["timed"] >= 3
    assert released == [1]
    n = fast.calls
    for _ in range(5):
        assert engine(x).unique().item() == 2.0
    assert fast.calls == n + 5 and mid.calls <= 4


def test_clearly_slower_candidates_leave_after_one_timed_call():
    clock = Clock()
    fast = FakeEngine("openvino", clock, 0.2, 2.0)
    slow = FakeEngine("onnxruntime", clock, 0.9, 1.0)
    engine, safe, _ = _engine(clock, {"openvino/float32": fast, "onnxruntime/float32": slow})
    x = torch.zeros(2, 3, 8, 6)
    while not engine.done:
        engine(x)
    # safe (1.0) and onnxruntime (0.9) are > 1.5x openvino (0.2): one timed call each
    assert slow.calls == 2 and safe.calls == 2
    assert engine.label == "openvino/float32"


def test_a_candidate_that_fails_on_a_job_call_leaves_and_the_call_runs_on_the_safe_engine(
        caplog):
    clock = Clock()
    broken = FakeEngine("openvino", clock, 0.1, 2.0, fail_after=1)
    engine, safe, _ = _engine(clock, {"openvino/float32": broken})
    x = torch.zeros(2, 3, 8, 6)
    outs = []
    with caplog.at_level(logging.WARNING):
        while not engine.done:
            outs.append(engine(x).unique().item())
    assert engine.label == "torch/float32" and set(outs) <= {0.0, 2.0}
    assert any("failed on a call of the job" in r.getMessage() for r in caplog.records)
    assert engine(x).unique().item() == 0.0


def test_a_failing_preparation_leaves_the_job_on_the_safe_engine(caplog):
    clock = Clock()

    def prepare():
        raise OSError("no space left to export")

    engine, safe, _ = _engine(clock, {}, prepare=prepare)
    x = torch.zeros(2, 3, 8, 6)
    with caplog.at_level(logging.WARNING):
        for _ in range(4):
            assert engine(x).unique().item() == 0.0
    assert engine.done and engine.label == "torch/float32"
    assert any("calibration failed" in r.getMessage() and "no space" in r.getMessage()
               for r in caplog.records)


def test_a_one_call_job_never_prepares_anything():
    clock = Clock()
    engine, safe, calls = _engine(clock, {"openvino/float32": FakeEngine("openvino", clock,
                                                                        0.1, 2.0)})
    engine(torch.zeros(2, 3, 8, 6))
    assert calls["prepare"] == 0 and not engine.done and engine.label == "torch/float32"
    assert "calibration" in engine.describe()


def test_a_call_of_many_rows_is_timed_in_parts_and_the_rest_runs_on_the_choice():
    clock = Clock()
    fast = FakeEngine("openvino", clock, 0.3, 2.0)
    engine, safe, _ = _engine(clock, {"openvino/float32": fast})
    engine.chunk = 4
    engine(torch.zeros(2, 3, 8, 6))
    out = engine(torch.zeros(40, 3, 8, 6))  # 10 parts: enough for the whole calibration
    assert engine.done and engine.label == "openvino/float32" and out.shape[0] == 40
    # the parts ran on both engines; the rows after the choice on the chosen one
    assert set(out[:8].flatten().tolist()) <= {0.0, 2.0} and (out[-4:] == 2.0).all()


def test_the_safe_engines_weights_are_freed_when_another_engine_is_chosen():
    clock = Clock()
    engine, safe, _ = _engine(clock, {"openvino/float32": FakeEngine("openvino", clock, 0.1,
                                                                     2.0)})
    freed = []
    engine.free_safe = lambda: freed.append(1)
    x = torch.zeros(2, 3, 8, 6)
    while not engine.done:
        engine(x)
    assert engine.label == "openvino/float32" and freed == [1]
    slow = FakeEngine("openvino", clock, 5.0, 2.0)
    engine, safe, _ = _engine(clock, {"openvino/float32": slow})
    engine.free_safe = lambda: freed.append(2)
    while not engine.done:
        engine(x)
    assert engine.label == "torch/float32" and freed == [1]  # the safe engine kept its weights


def test_each_turn_is_an_untimed_call_then_a_timed_one():
    """A candidate called right after one whose threads still spin (ONNX Runtime) is slowed by
    that: its first call of each turn is not timed, so the spinning of the engine before it
    never counts, and the fastest engine wins though it always follows the spinning one."""
    clock = Clock()
    spinner = FakeEngine("onnxruntime", clock, 0.8, 1.0, spin=2.0)
    fast = FakeEngine("openvino", clock, 0.6, 2.0)
    decided = {}
    # the rotation: torch/float32, onnxruntime, openvino (always right after onnxruntime)
    engine, safe, _ = _engine(clock, {"onnxruntime/float32": spinner,
                                      "openvino/float32": fast}, decided=decided)
    x = torch.zeros(2, 3, 8, 6)
    while not engine.done:
        engine(x)
    assert engine.label == "openvino/float32"
    assert decided["samples"]["openvino/float32"] == {2: pytest.approx(0.6)}
    assert decided["samples"]["onnxruntime/float32"] == {2: pytest.approx(0.8)}
    assert fast.calls == 2 * 3  # three turns of two calls
