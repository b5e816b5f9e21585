"""Tests for vitpose.inference.engines.choice: the timing loop, the fastest-with-ties rule and
the remembered choice shared by the ``auto`` runtime choices (no test depends on speed)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from vitpose.inference.engines.choice import RememberedChoice, fastest, time_calls


def test_time_calls_warms_up_then_interleaves_rounds_starting_with_each_in_turn() -> None:
    calls: list[str] = []
    timed = time_calls({n: (lambda n=n: calls.append(n)) for n in ("a", "b", "c")}, rounds=4,
                       settle=0)
    assert calls[:3] == ["a", "b", "c"]  # one warm-up call each
    rounds = [calls[i:i + 3] for i in range(3, len(calls), 3)]
    assert rounds == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    assert set(timed) == {"a", "b", "c"} and all(0 <= t < 1 for t in timed.values())


def test_time_calls_keeps_the_fastest_round(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seconds are the least disturbed round's, from an injected clock."""
    ticks = iter([0.0, 3.0, 10.0, 11.0, 20.0, 22.0])  # rounds of 3 s, 1 s, 2 s
    monkeypatch.setattr("vitpose.inference.engines.choice.time.perf_counter",
                        lambda: next(ticks))
    assert time_calls({"x": lambda: None}, rounds=3) == {"x": 1.0}


def test_time_calls_pauses_before_a_call_that_follows_another_candidates(monkeypatch) -> None:
    """The pause (`SETTLE_SECONDS`) lets the previous candidate's spinning threads go idle; it
    is not timed, and a candidate timed after itself does not wait."""
    events: list[object] = []
    monkeypatch.setattr("vitpose.inference.engines.choice.time.sleep",
                        lambda s: events.append(s))
    time_calls({"a": lambda: events.append("a"), "b": lambda: events.append("b")}, rounds=2,
               settle=0.2)
    assert events == ["a", "b", 0.2, "a", 0.2, "b", "b", 0.2, "a"]  # warm-up, two rounds
    events.clear()
    time_calls({"x": lambda: events.append("x")}, rounds=3, settle=0.2)
    assert events == ["x"] * 4  # one candidate: never a pause


def test_fastest_with_a_tie_margin_prefers_the_order() -> None:
    assert fastest({"a": 2.0, "b": 1.0}) == "b"
    assert fastest({"a": 1.0, "b": 1.0}) == "a"  # exact tie: the first
    assert fastest({"a": 1.02, "b": 1.0}, order=("a", "b"), tie=0.03) == "a"
    assert fastest({"a": 1.05, "b": 1.0}, order=("a", "b"), tie=0.03) == "b"
    assert fastest({"c": 1.01, "b": 1.0, "a": 1.02}, order=("a",), tie=0.03) == "a"
    assert fastest({"c": 1.01, "b": 1.0}, order=("a",), tie=0.03) == "b"  # unordered: faster
    with pytest.raises(ValueError):
        fastest({})


def test_remembered_choice_holds_for_its_fingerprint_only(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "choice.json"
    here = RememberedChoice(path, {"cpu": "x", "candidates": ("a", "b")})
    assert here.read() is None  # nothing yet
    assert here.write({"engine": "b", "ms": {"a": 2.0, "b": 1.0}})
    assert json.loads(path.read_text())["fingerprint"] == {"cpu": "x", "candidates": ["a", "b"]}
    assert here.read() == {"engine": "b", "ms": {"a": 2.0, "b": 1.0}}  # tuples read as lists
    assert RememberedChoice(path, {"cpu": "y", "candidates": ["a", "b"]}).read() is None
    assert [p.name for p in path.parent.iterdir()] == ["choice.json"]  # no temporaries
    for text in ("{not json", "[" * 100_000, "[1]", ""):
        path.write_text(text)
        assert here.read() is None
    nothing = RememberedChoice(None, {"cpu": "x"})
    assert nothing.read() is None and nothing.write({"engine": "a"}) is False


def test_a_choice_that_cannot_be_written_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """E.g. a cache folder that cannot be made (here a file is in the way): the next run
    measures again."""
    blocker = tmp_path / "cache"
    blocker.write_text("a file, not a folder")
    memory = RememberedChoice(blocker / "c.json", {"cpu": "x"}, what="the detector choice")
    with caplog.at_level(logging.WARNING):
        assert memory.write({"engine": "a"}) is False
    assert "cannot remember the detector choice in" in caplog.text
    assert memory.read() is None
