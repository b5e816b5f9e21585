"""Results files that survive interruptions: a JSON-lines journal written as the run goes and
the final JSON written from it, so that a rerun of the same command continues where the last
one stopped.

One unit of work (an image, a video frame, later a shard's item) is one journal line
``{"key": KEY, "value": VALUE}`` under a header line that records the settings of the run
(``{"vitpose_journal": 1, "settings": {...}}``). The states of an output path ``P``:

==========================  ===============================================================
on disk                     `ResumableResults` does
==========================  ===============================================================
nothing                     a fresh run
``P.partial.jsonl``         resume: the keys in it are done (a torn last line, from a kill
                            mid-write, is dropped); other settings than the journal's are an
                            error that names ``--overwrite``
``P`` only                  the run is complete: an error that names ``--overwrite``
``overwrite=True``          a fresh run; the old journal is removed when the new one starts
==========================  ===============================================================

`finish` writes ``P`` (atomically, through ``P.tmp``) from the journal in the caller's order;
with ``complete=True`` it then removes the journal, otherwise (an interrupted run) the journal
stays as the marker that the run can be resumed. Values must be finite: ``NaN`` is refused
(`ValueError`), so ``P`` is always valid JSON.

Both files are UTF-8 JSON that strict parsers accept, also for file names that are not valid
UTF-8 (Python holds their bytes as lone surrogates, which JSON cannot carry): such strings, in
keys, values and settings, are written as `vitpose.inference.io.printable_name` gives them (the
byte 0xE9 as the four characters ``\\xe9``), and keys are compared in that form, so a rerun
finds the journalled work of such files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputError
from .io import json_safe, printable_name

__all__ = ["ResumableResults", "is_journal_header"]

_HEADER = "vitpose_journal"


def _dumps(value: Any) -> bytes:
    """Strict UTF-8 JSON of `value` (NaN refused); strings that are not valid Unicode (names
    that are not UTF-8) written as `printable_name` gives them."""
    text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: the rare case pays for the walk
        return json.dumps(json_safe(value), allow_nan=False, ensure_ascii=False).encode("utf-8")


def _key(key: Hashable) -> Hashable:
    if isinstance(key, str):
        return printable_name(key)
    if isinstance(key, tuple):
        return tuple(_key(k) for k in key)
    return key


class _Done(dict):
    """key -> value, with string keys held (and looked up) as `printable_name` gives them: the
    form a journal read back has."""

    def __contains__(self, key: object) -> bool:
        return super().__contains__(_key(key))  # type: ignore[arg-type]

    def __getitem__(self, key: Hashable) -> Any:
        return super().__getitem__(_key(key))

    def __setitem__(self, key: Hashable, value: Any) -> None:
        super().__setitem__(_key(key), value)

    def get(self, key: Hashable, default: Any = None) -> Any:
        return super().get(_key(key), default)


def is_journal_header(row: Any) -> bool:
    """Whether `row` (the value of a JSON line) is the header line of a results journal."""
    return isinstance(row, dict) and _HEADER in row


def _lock(fh: Any, path: Path) -> None:
    """Holds the journal for this run (an exclusive lock, released when the file is closed or
    the process ends): a second run on the same outputs while this one lives is refused."""
    try:
        import fcntl
    except ImportError:  # no advisory locks here (Windows): runs are not kept apart
        return
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise InputError(f"{path} is being written by another run right now (two `vitpose "
                         "predict` on the same outputs would overwrite each other's results): "
                         "wait for it to finish, or choose another --out / --out-dir") from None
    except OSError:
        pass  # a file system without locks


class ResumableResults:
    """The journal and final JSON of one output path (see the module docstring).

    Nothing is written until `start`, so a run can check its outputs (and fail) before it
    loads a model.

    Args:
        path: the final JSON file.
        settings: what makes two runs "the same command" (JSON-serialisable); a journal with
            other settings is not resumed.
        overwrite: start afresh even when a journal or a complete result exists.
        flatten: final JSON from the journal's values in order (default: the list of values).

    Attributes:
        done: key -> value of the work already in the journal (empty for a fresh run).
        resumed: True when a journal was found and is continued.
    """

    def __init__(self, path: str | os.PathLike[str], settings: Mapping[str, Any], *,
                 overwrite: bool = False,
                 flatten: Callable[[list[Any]], Any] = list) -> None:
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial.jsonl")
        self.settings = json_safe(json.loads(json.dumps(dict(settings))))  # as stored
        self.flatten = flatten
        self.overwrite = overwrite
        self.done: dict[Hashable, Any] = _Done()
        self.resumed = False
        self._good_size = 0  # bytes of the journal up to its last complete line
        self._fh = None
        if self.partial.exists():  # another live run writing it: refused, even with overwrite
            try:
                with self.partial.open("rb") as probe:
                    _lock(probe, self.partial)
            except OSError:
                pass
        if overwrite:
            return
        if self.partial.exists():
            self._read_journal()
            self.resumed = True
        elif self.path.exists():
            raise InputError(f"output already exists: {self.path} (the run is complete; pass "
                             f"--overwrite to replace it)")

    def _read_journal(self) -> None:
        try:
            data = self.partial.read_bytes()
        except OSError as e:
            raise OutputError(f"cannot read {self.partial}: {e.strerror or e}") from None
        pos = 0
        header_seen = False
        for raw in data.split(b"\n")[:-1]:  # the part after the last newline is torn
            try:
                row = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                break  # a damaged line: everything from here on is redone
            if not header_seen:
                if not isinstance(row, dict) or _HEADER not in row:
                    raise InputError(f"{self.partial} is not a vitpose results journal: pass "
                                     "--overwrite to replace it")
                self._check_settings(row.get("settings"))
                header_seen = True
            elif isinstance(row, dict) and "key" in row:
                key = tuple(row["key"]) if isinstance(row["key"], list) else row["key"]
                self.done[key] = row.get("value")
            else:
                break
            pos += len(raw) + 1
        self._good_size = pos if header_seen else 0

    def _check_settings(self, stored: Any) -> None:
        if stored == self.settings:
            return
        stored = stored if isinstance(stored, dict) else {}
        diff = [f"{k}: {stored.get(k)!r} then, {self.settings.get(k)!r} now"
                for k in sorted(set(stored) | set(self.settings))
                if stored.get(k) != self.settings.get(k)]
        raise InputError(f"{self.partial} holds an interrupted run with other settings "
                         f"({'; '.join(diff[:3])}): rerun it with the same options to continue, "
                         "or pass --overwrite to start afresh")

    # -- writing ------------------------------------------------------------------------------
    def start(self) -> None:
        """Opens the journal for appending (a fresh one with the header line, or the resumed
        one cut after its last complete line)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.resumed and self._good_size:
                self._fh = self.partial.open("r+b")
                _lock(self._fh, self.partial)
                self._fh.truncate(self._good_size)
                self._fh.seek(self._good_size)
            else:
                self.done.clear()
                self._fh = self.partial.open("ab")
                _lock(self._fh, self.partial)  # before emptying: never another run's journal
                self._fh.truncate(0)
                self._write({_HEADER: 1, "settings": self.settings})
        except OSError as e:
            raise OutputError(f"cannot write {self.partial}: {e.strerror or e}") from None

    def add(self, key: Hashable, value: Any) -> None:
        """Records one unit of work (a later record of the same key replaces the earlier).

        Raises:
            ValueError: `value` holds NaN or infinity.
            OutputError: the journal cannot be written (disk full, ...).
        """
        row = {"key": list(key) if isinstance(key, tuple) else key, "value": value}
        self._write(row)
        self.done[key] = value

    def _write(self, row: Any) -> None:
        line = _dumps(row) + b"\n"
        assert self._fh is not None, "start() first"
        try:
            self._fh.write(line)
            self._fh.flush()
        except OSError as e:
            raise OutputError(f"cannot write {self.partial}: {e.strerror or e}; what was "
                              "written so far is kept, rerun the same command to continue") \
                from None

    def finish(self, order: Iterable[Hashable] | None = None, complete: bool = True) -> int:
        """Writes the final JSON from everything done (this run and the resumed ones).

        Args:
            order: the keys in output order (keys not in it go last, in journal order).
            complete: the run did all its work: remove the journal. False keeps it, so a rerun
                continues.

        Returns:
            The number of keys written.

        Raises:
            OutputError: the final file cannot be written; the journal is then kept.
        """
        if self._fh is not None:
            try:
                self._fh.close()
            except OSError:
                complete = False
            self._fh = None
        rank = {_key(k): i for i, k in enumerate(order or [])}
        keys = sorted(self.done, key=lambda k: rank.get(k, len(rank)))
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_bytes(_dumps(self.flatten([self.done[k] for k in keys])))
            os.replace(tmp, self.path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}; the results so far "
                              f"are kept in {self.partial}, rerun the same command to finish") \
                from None
        if complete:
            self.partial.unlink(missing_ok=True)
        return len(keys)
