"""Decoding ahead and encoding behind on worker threads, so that both overlap the matting (PyAV releases the
GIL while it decodes and encodes). Bounded queues: at most `depth` frames wait on either side."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_DONE = object()
POLL_S = 0.1


def _put(q: queue.Queue, item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            continue
    return False


def prefetched(items: Iterator[T], depth: int = 4) -> Iterator[T]:
    """`items` produced on a worker thread, up to `depth` ahead; an exception there is raised here, and
    leaving the loop early stops the worker."""
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                if not _put(q, (True, item), stop):
                    return
            _put(q, (True, _DONE), stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            _put(q, (False, exc), stop)

    worker = threading.Thread(target=work, name="matanyone2-decode", daemon=True)
    worker.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        worker.join()


class BackgroundWork:
    """Calls run in order on one worker thread, at most `depth` waiting; `close()` waits for them and raises
    the first exception one of them raised (so does the next `submit` after it)."""

    def __init__(self, depth: int = 4):
        self.q: queue.Queue = queue.Queue(depth)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.worker = threading.Thread(target=self._work, name="matanyone2-encode", daemon=True)
        self.worker.start()

    def _work(self) -> None:
        while True:
            job = self.q.get()
            if job is _DONE:
                return
            if self.error is None:
                try:
                    job()
                except BaseException as exc:  # noqa: BLE001 - raised on the caller's thread
                    self.error = exc

    def submit(self, job: Callable[[], None]) -> None:
        if self.error is not None:
            raise self.error
        self.q.put(job)

    def close(self) -> None:
        """Wait for every submitted call; raise the first error."""
        self.q.put(_DONE)
        self.worker.join()
        if self.error is not None:
            raise self.error

    def abandon(self) -> None:
        """Stop without raising (after a failure elsewhere): pending calls are dropped."""
        self.error = self.error or RuntimeError("abandoned")  # the worker skips whatever is still queued
        try:
            while True:
                self.q.get_nowait()
        except queue.Empty:
            pass
        self.q.put(_DONE)
        self.worker.join()
