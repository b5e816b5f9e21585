"""Background threads of the predict job: reading ahead of the model (`prefetch` for one
stream of frames, `map_ahead` for images decoded by a pool of workers) and drawing/writing
behind it (`BackgroundWriter`). Video and sharded runs share them."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["BackgroundWriter", "map_ahead", "prefetch"]

T = TypeVar("T")
R = TypeVar("R")


_DONE = object()


def prefetch(iterable: Iterable[Any], depth: int = 8) -> Iterator[Any]:
    """Iterates over ``iterable`` in a background thread, up to ``depth`` items ahead (frame
    decoding overlaps the model). Errors of the producer are raised here; closing the
    generator stops the thread."""
    q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def work() -> None:
        try:
            for x in iterable:
                while not stop.is_set():
                    try:
                        q.put(x, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(exc)

    t = threading.Thread(target=work, name="vitpose-read", daemon=True)
    t.start()
    try:
        while True:
            x = q.get()
            if x is _DONE:
                return
            if isinstance(x, BaseException):
                raise x
            yield x
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                q.get_nowait()
        t.join(timeout=5)


class BackgroundWriter:
    """Runs ``fn(*args)`` calls (drawing a frame and writing it) in order in a background
    thread. The first error is raised by the next `submit` or by `close`.

    Args:
        depth: calls waiting at most (then `submit` blocks).
    """

    def __init__(self, depth: int = 8) -> None:
        self._q: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name="vitpose-write", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            job = self._q.get()
            if job is _DONE:
                return
            if self._error is None:
                try:
                    job[0](*job[1])
                except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
                    self._error = exc

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._error is not None:
            raise self._error
        self._q.put((fn, args))

    def close(self) -> None:
        """Waits for every submitted call; raises the first error."""
        if self._thread.is_alive():
            self._q.put(_DONE)
            self._thread.join()
        if self._error is not None:
            err, self._error = self._error, None
            raise err


def map_ahead(fn: Callable[[T], R], items: Iterable[T], workers: int = 2, depth: int | None = None
             ) -> Iterator[tuple[T, R | None, Exception | None]]:
    """``fn(item)`` for each item in worker threads, yielded in input order as
    ``(item, result, None)`` or ``(item, None, error)`` when `fn` raised an `Exception`.

    At most `depth` (default ``2 * workers``) items are in flight, so memory stays bounded and
    the items iterable is consumed lazily. ``workers=0`` calls `fn` in the caller's thread.
    """
    if workers <= 0:
        for item in items:
            try:
                yield item, fn(item), None
            except Exception as e:  # noqa: BLE001 - handed to the caller with its item
                yield item, None, e
        return
    depth = depth or 2 * workers
    pending: deque[tuple[T, Future[R]]] = deque()
    it = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vitpose-read") as pool:
        try:
            for item in it:
                pending.append((item, pool.submit(fn, item)))
                if len(pending) >= depth:
                    yield _outcome(*pending.popleft())
            while pending:
                yield _outcome(*pending.popleft())
        finally:
            for _, future in pending:
                future.cancel()


def _outcome(item: T, future: Future[R]) -> tuple[T, R | None, Exception | None]:
    try:
        return item, future.result(), None
    except Exception as e:  # noqa: BLE001
        return item, None, e
