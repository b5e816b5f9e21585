"""Reading and writing the package's small files safely: one home for both.

* `atomic_open` / `atomic_write_bytes` / `atomic_write_text` / `atomic_write_json`: a file
  appears whole or not at all (temporary file beside it, flushed, fsynced, renamed over the
  destination). A reader never sees half a file, and an interrupted writer leaves the previous
  version in place. The temporaries are named ``.<name>.<pid>.<random>.tmp`` so that
  `clean_stale_temporaries` can tell those of dead processes.
* `read_json` / `read_json_lines` / `read_results_file`: JSON written by users (detections,
  annotations, results, id lists). Whatever the bytes, they return the value or raise one
  `InputError` naming the file: unreadable, not UTF-8, invalid, nested too deep, an integer
  with thousands of digits, or larger than a limit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from .errors import InputError

__all__ = ["MAX_JSON_BYTES", "atomic_open", "atomic_write_bytes", "atomic_write_json",
           "atomic_write_text", "clean_stale_temporaries", "read_json", "read_json_lines",
           "read_results_file", "temporary_path"]

PathLike = str | os.PathLike

#: Largest JSON file read whole (bytes); ``$VITPOSE_MAX_JSON_BYTES`` overrides it. COCO's
#: train2017 person keypoints file is ~240 MB; detection files of a whole split ~100 MB.
MAX_JSON_BYTES = 2 << 30


#: Bytes of the destination's name kept in a temporary's name, so that the temporary of a
#: name at the file system's 255-byte limit still fits (the rest is replaced by a digest).
_TEMPORARY_NAME_BYTES = 200


def temporary_path(path: PathLike) -> Path:
    """A unique temporary name beside ``path`` (same folder, so the rename is atomic), short
    enough for the file system whatever the length of ``path``'s own name."""
    path = Path(path)
    name = path.name
    raw = os.fsencode(name)
    if len(raw) > _TEMPORARY_NAME_BYTES:
        digest = hashlib.sha1(raw).hexdigest()[:8]
        # cut on a character boundary (bytes that are not UTF-8 are dropped: the digest
        # keeps the name unique)
        name = raw[:_TEMPORARY_NAME_BYTES - 9].decode("utf-8", "ignore") + "~" + digest
    return path.with_name(f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists (another user's) or unknowable: leave its files alone
    return True


def clean_stale_temporaries(folder: PathLike, *, include_own: bool = False) -> list[Path]:
    """Remove the temporaries of `atomic_open` that a killed process left in ``folder``.

    A temporary is stale when the process that wrote it is gone (its pid is in the name).
    Those of live processes are kept (they may be writing now); ``include_own`` also removes
    this process's own, for callers that know it is writing nothing (after a restart the same
    pid can come back).

    Returns:
        the files removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    own = os.getpid()
    for entry in folder.iterdir():
        m = _TEMPORARY.fullmatch(entry.name)
        if not m or not entry.is_file():
            continue
        pid = int(m.group("pid"))
        if (pid == own and include_own) or (pid != own and not _pid_alive(pid)):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb", *, fsync: bool = True,
                encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it replaces ``path``.

    On an exception (or Ctrl-C) the temporary is removed and ``path`` is left as it was.

    Args:
        path: destination (its folder must exist).
        mode: ``'wb'`` or ``'w'`` (text, UTF-8 unless ``encoding``).
        fsync: flush the data (and the folder entry) to disk before returning; off for files
            that are cheap to make again (caches), on for results and checkpoints.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode 'wb' or 'w', got {mode!r}")
    path = Path(path)
    tmp = temporary_path(path)
    kwargs = {} if mode == "wb" else {"encoding": encoding or "utf-8", "newline": ""}
    handle = open(tmp, mode.replace("w", "x"), **kwargs)
    try:
        with handle:
            yield handle
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        _fsync_dir(path.parent)


def atomic_write_bytes(path: PathLike, data: bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see `atomic_open`)."""
    with atomic_open(path, "wb", fsync=fsync) as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str, *, fsync: bool = True) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (see `atomic_open`)."""
    return atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_json(path: PathLike, value: Any, *, indent: int | None = None,
                      fsync: bool = True, writer: Callable[[Any], str] | None = None) -> Path:
    """Write ``value`` as strict JSON (no NaN / Infinity: they raise ``ValueError``) atomically.

    ``writer`` replaces ``json.dumps`` (e.g. one result per line).
    """
    text = writer(value) if writer else json.dumps(value, indent=indent, allow_nan=False)
    return atomic_write_text(path, text, fsync=fsync)


def _max_json_bytes() -> int:
    raw = os.environ.get("VITPOSE_MAX_JSON_BYTES")
    try:
        return int(raw) if raw else MAX_JSON_BYTES
    except ValueError:
        raise InputError(f"VITPOSE_MAX_JSON_BYTES must be a number of bytes, got {raw!r}") from None


def _read_bytes(path: Path, what: str) -> bytes:
    limit = _max_json_bytes()
    try:
        if path.is_dir():
            raise InputError(f"{what} file {path} is a folder, not a file")
        size = path.stat().st_size
        if size > limit:
            raise InputError(f"{what} file {path} is {size / 1e6:.0f} MB, more than the "
                             f"{limit / 1e6:.0f} MB read whole (VITPOSE_MAX_JSON_BYTES)")
        with open(path, "rb") as f:
            return f.read(limit + 1)
    except FileNotFoundError:
        raise InputError(f"{what} file not found: {path}") from None
    except PermissionError:
        raise InputError(f"cannot read {what} file {path}: permission denied") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} file {path}: {exc.strerror or exc}") from None


def _parse(data: bytes | str, path: Path, what: str, where: str = "") -> Any:
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        reason = f"{exc.msg}: line {exc.lineno} column {exc.colno}" if not where else exc.msg
    except UnicodeDecodeError:
        reason = "not UTF-8 text"
    except RecursionError:
        reason = "nested too deeply"
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        reason = str(exc).split(";")[0]
    raise InputError(f"{what} file {path}{where} is not valid JSON ({reason})")


def read_json(path: PathLike, what: str = "JSON") -> Any:
    """Parse a JSON file; any problem raises one `InputError` naming ``what`` and the file."""
    path = Path(path)
    return _parse(_read_bytes(path, what), path, what)


def read_json_lines(path: PathLike, what: str = "JSON lines") -> list[Any]:
    """The values of a JSON-lines file (blank lines skipped). A bad line raises `InputError`
    naming its number, and says when the file ends inside it (an interrupted writer)."""
    path = Path(path)
    out: list[Any] = []
    for number, raw in enumerate(_read_bytes(path, what).splitlines(keepends=True), 1):
        if not raw.strip():
            continue
        try:
            out.append(_parse(raw, path, what, f": line {number}"))
        except InputError as exc:
            if raw.endswith(b"\n"):
                raise
            raise InputError(f"{exc}; the file ends in the middle of this line (was its writer "
                             "interrupted?)") from None
    return out


def read_results_file(path: PathLike, what: str = "results") -> Any:
    """A results file: JSON, or JSON lines for a ``.jsonl`` file (one result per line, as
    ``vitpose predict --out results.jsonl`` writes them)."""
    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        return read_json_lines(path, what)
    return read_json(path, what)
