"""Sharding a `predict` run over the ranks of a ``torchrun`` launch (see docs/SCALE_OUT.md).

The pieces, each usable on its own:

* **The plan** (`write_plan`, `iter_plan`, `assigned_rows`): rank 0 lists the inputs once, in the
  single-process order, and writes them to ``P.plan.jsonl`` next to the results ``P``: one line
  ``[path, key, drawn, todo]`` per input (``drawn``: the drawn copy or None; ``todo``: not yet in
  any journal). Every rank then *streams* that file and keeps only its own rows, so the folder is
  read from the file system once per job, and no rank holds another rank's share in memory.
* **The assignment** (`is_assigned`): round-robin over the rows still to do, so a rerun spreads
  exactly the missing work over however many ranks it has.
* **The journals** (`shard_path`, `journal_paths`, `read_journal`): rank ``r`` journals its work
  to ``P.rank0000r.partial.jsonl`` with `ResumableResults` (one ``{"key", "value"}`` line per
  input under a settings header). Journals are keyed by input, not by rank, so a rerun on any
  number of ranks reads them all (plus the single-process journal ``P.partial.jsonl``) to learn
  what is done.
* **The merge** (`merge_journals`): rank 0 writes the usual results file from every journal, in
  input order (``.json``) or streamed in journal order, one result per line (``.jsonl``).
* **Reading ahead** (`vitpose.inference.threads.map_ahead`): images are read and decoded in
  worker threads (OpenCV releases the GIL while decoding), in order, a bounded number ahead of
  the model.

This module has no notion of processes: the caller passes ``rank`` and ``world_size``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import InputError, OutputError
from .io import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

__all__ = [
    "PlanRow",
    "assigned_rows",
    "find_videos",
    "is_assigned",
    "iter_plan",
    "journal_paths",
    "merge_journals",
    "plan_path",
    "read_journal",
    "remove_run_files",
    "shard_path",
    "write_plan",
]

_JOURNAL_HEADER = "vitpose_journal"  # the header key of `ResumableResults` journals
_PLAN_HEADER = "vitpose_plan"
#: Input list files (one video path per line) are recognised by these extensions.
LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list"})



class PlanRow(NamedTuple):
    """One input of the plan.

    Attributes:
        index: position in the input order (0-based).
        path: the input file.
        key: its journal key and default ``image_id`` (path relative to the input root).
        drawn: where its drawn copy goes, or None (``--no-draw``, videos).
        todo: not done by an earlier run.
    """

    index: int
    path: str
    key: str
    drawn: str | None
    todo: bool


# ---------------------------------------------------------------------------------------------
# File names
# ---------------------------------------------------------------------------------------------

def shard_path(results_path: Path, rank: int) -> Path:
    """The `ResumableResults` path of rank `rank`'s journal: its journal is
    ``P.rank0000r.partial.jsonl``. Nothing is ever written at the returned path itself."""
    return results_path.with_name(f"{results_path.name}.rank{rank:05d}")


def plan_path(results_path: Path) -> Path:
    """``P.plan.jsonl``: the input list of a sharded run (removed when the run completes)."""
    return results_path.with_name(results_path.name + ".plan.jsonl")


def journal_paths(results_path: Path) -> list[Path]:
    """Every journal of `results_path` on disk: the single-process one (``P.partial.jsonl``)
    and the per-rank ones of any earlier world size, sorted."""
    single = results_path.with_name(results_path.name + ".partial.jsonl")
    found = sorted(results_path.parent.glob(f"{_glob_escape(results_path.name)}.rank*"
                                            ".partial.jsonl"))
    return ([single] if single.exists() else []) + found


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def remove_run_files(results_path: Path) -> None:
    """Removes every journal and the plan of `results_path` (a completed or overwritten run)."""
    for path in [*journal_paths(results_path), plan_path(results_path)]:
        path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Journals
# ---------------------------------------------------------------------------------------------

def read_journal(path: Path, settings: Mapping[str, Any]) -> Iterator[tuple[Hashable, Any]]:
    """The ``(key, value)`` records of a `ResumableResults` journal, streamed. A torn or damaged
    line ends the journal (as `ResumableResults` does: what follows is redone).

    Raises:
        InputError: the file is not a journal, or was written with other `settings`.
        OutputError: the file cannot be read.
    """
    expected = json.loads(json.dumps(dict(settings)))
    try:
        with path.open("rb") as fh:
            header = True
            for raw in fh:
                if not raw.endswith(b"\n"):
                    return  # torn last line (a kill mid-write)
                try:
                    row = json.loads(raw)
                except (ValueError, UnicodeDecodeError):
                    return
                if header:
                    if not isinstance(row, dict) or _JOURNAL_HEADER not in row:
                        raise InputError(f"{path} is not a vitpose results journal: pass "
                                         "--overwrite to replace it")
                    if row.get("settings") != expected:
                        raise InputError(_settings_message(path, row.get("settings"), expected))
                    header = False
                elif isinstance(row, dict) and "key" in row:
                    key = tuple(row["key"]) if isinstance(row["key"], list) else row["key"]
                    yield key, row.get("value")
                else:
                    return
    except OSError as e:
        raise OutputError(f"cannot read {path}: {e.strerror or e}") from None


def _settings_message(path: Path, stored: Any, expected: dict[str, Any]) -> str:
    stored = stored if isinstance(stored, dict) else {}
    diff = [f"{k}: {stored.get(k)!r} then, {expected.get(k)!r} now"
            for k in sorted(set(stored) | set(expected)) if stored.get(k) != expected.get(k)]
    return (f"{path} holds an interrupted run with other settings ({'; '.join(diff[:3])}): "
            "rerun it with the same options to continue, or pass --overwrite to start afresh")


def journal_keys(paths: Iterable[Path], settings: Mapping[str, Any]) -> set[Hashable]:
    """The keys done in any of the journals `paths` (values are read and dropped)."""
    return {key for path in paths for key, _ in read_journal(path, settings)}


# ---------------------------------------------------------------------------------------------
# The plan and the assignment
# ---------------------------------------------------------------------------------------------

def write_plan(path: Path, rows: Iterable[tuple[str, str, str | None, bool]],
               info: Mapping[str, Any]) -> dict[str, int]:
    """Writes the plan (atomically): a header line with `info`, then one
    ``[path, key, drawn, todo]`` line per input, in input order.

    Returns:
        ``{"total": inputs, "todo": inputs still to do}``.
    """
    tmp = path.with_name(path.name + ".tmp")
    total = todo = 0
    try:
        # the first file of the run: its folder is made now (the checks before create nothing)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(json.dumps({_PLAN_HEADER: 1, **info}) + "\n")
            for row in rows:
                fh.write(json.dumps(list(row)) + "\n")
                total += 1
                todo += bool(row[3])
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
    return {"total": total, "todo": todo}


def iter_plan(path: Path) -> Iterator[PlanRow]:
    """The rows of a plan written by `write_plan`, streamed."""
    try:
        with path.open("r", encoding="utf-8") as fh:
            header = json.loads(fh.readline() or "{}")
            if _PLAN_HEADER not in header:
                raise OutputError(f"{path} is not a vitpose plan file (remove it and rerun)")
            for index, line in enumerate(fh):
                p, key, drawn, todo = json.loads(line)
                yield PlanRow(index, p, key, drawn, bool(todo))
    except OSError as e:
        raise OutputError(f"cannot read {path}: {e.strerror or e}") from None


def is_assigned(todo_index: int, rank: int, world_size: int) -> bool:
    """Round-robin: the `todo_index`-th input still to do goes to rank ``todo_index % world``.
    Over the *missing* inputs, so every rank of a rerun gets an equal share of what is left."""
    return todo_index % world_size == rank


def assigned_rows(path: Path, rank: int, world_size: int) -> Iterator[PlanRow]:
    """The rows of the plan at `path` that are to do and assigned to `rank`, streamed."""
    n = 0
    for row in iter_plan(path):
        if row.todo:
            if is_assigned(n, rank, world_size):
                yield row
            n += 1


# ---------------------------------------------------------------------------------------------
# The merge
# ---------------------------------------------------------------------------------------------

def merge_journals(results_path: Path, journals: list[Path], settings: Mapping[str, Any],
                   order: Iterable[Hashable], flatten: Callable[[list[Any]], list[Any]]
                   ) -> int:
    """Writes the results file from every journal (atomically, through ``P.tmp``).

    A ``.jsonl`` path gets one element of the flattened results per line, streamed in journal
    order (memory: the set of keys); any other path gets one JSON document in the input order
    `order` (keys not in it last), as a single-process run writes it. A key found in several
    journals (redone after a lost drawing) is written once, from the last journal read.

    Returns:
        The number of keys (inputs) written.

    Raises:
        OutputError: the file cannot be written (the journals are untouched).
    """
    tmp = results_path.with_name(results_path.name + ".tmp")
    try:
        if results_path.suffix.lower() == ".jsonl":
            last = {key: i for i, path in enumerate(journals)
                    for key, _ in read_journal(path, settings)}
            count = len(last)
            with tmp.open("w", encoding="utf-8") as fh:
                for i, path in enumerate(journals):
                    for key, value in read_journal(path, settings):
                        if last.get(key) == i:
                            del last[key]  # written once even when repeated within a journal
                            for entry in flatten([value]):
                                fh.write(json.dumps(entry, allow_nan=False) + "\n")
        else:
            done: dict[Hashable, Any] = {}
            for path in journals:
                done.update(read_journal(path, settings))
            values = [done.pop(k) for k in order if k in done] + list(done.values())
            tmp.write_text(json.dumps(flatten(values), allow_nan=False), encoding="utf-8")
            count = len(values)
        os.replace(tmp, results_path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {results_path}: {e.strerror or e}; the results so far "
                          "are kept in the journals, rerun the same command to finish") from None
    return count


# ---------------------------------------------------------------------------------------------
# Video collections
# ---------------------------------------------------------------------------------------------

def find_videos(spec: str) -> list[Path] | None:
    """The videos of a video collection, or None when `spec` is not one.

    A collection is a list file (``.txt``/``.lst``/``.list``: one video path per line, relative
    paths taken from the list's folder, blank lines and ``#`` comments skipped) or a folder that
    holds video files and no image (a folder with images is an image run). Folder videos are
    sorted by name.

    Raises:
        InputError: a list file names no video, or names a file that does not exist.
    """
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"cannot read the video list {path}: {e}") from None
        videos = []
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            video = Path(line).expanduser()
            video = video if video.is_absolute() else path.parent / video
            if not video.is_file():
                raise InputError(f"{path}, line {n}: no such video file {line!r}")
            videos.append(video)
        if not videos:
            raise InputError(f"the video list {path} names no video")
        return videos
    if not path.is_dir():
        return None
    videos = []
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            suffix = os.path.splitext(entry.name)[1].lower()
            if suffix in IMAGE_EXTENSIONS and entry.is_file():
                return None  # an image folder (stops at its first image: cheap on huge ones)
            if suffix in VIDEO_EXTENSIONS and entry.is_file():
                videos.append(Path(entry.path))
    return sorted(videos) or None
