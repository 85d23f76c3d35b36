"""Writes noted off the event loop, committed in groups by a thread of their own.

`note(item)` only adds `item` to the pending batch (how is the owner's `add`: keep the latest per
key, or append in order) and wakes an idle writer; it never touches SQLite. The writer thread,
started at the first note, commits the whole pending batch in one transaction over its own
connection (`write`), then lets the next batch gather for `interval` seconds while items keep
coming. Batches are written in the order they were noted, and everything noted before `flush()` is
committed when `flush()` answers. A write that fails is logged and tried again after `RETRY`
seconds, its batch merged before what was noted since (`merge`); `flush` waits for it, and
raises the failure if its time runs out first. `close()` writes what is noted, then stops the thread (a batch that
still cannot be written then is logged as lost); a closed writer refuses notes (`Closed`). What
a crash loses is at most the last `interval` of notes, or what waited on a failing database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from .db import Database

INTERVAL = 0.005  # seconds between two group commits while notes keep coming
RETRY = 0.5  # seconds before a failed write is tried again

log = logging.getLogger(__name__)

B = TypeVar("B")  # the pending batch (a dict, a list)
I = TypeVar("I")  # one noted item


class Closed(RuntimeError):
    """A note came after `close()`."""


class GroupWriter(Generic[B, I]):
    """One daemon thread with its own `Database`, committing each pending batch in one transaction."""

    def __init__(
        self,
        path: Path | str,
        *,
        batch: Callable[[], B],
        add: Callable[[B, I], object],
        merge: Callable[[B, B], B],
        write: Callable[[Database, B], None],
        name: str,
        what: str,
        interval: float = INTERVAL,
    ) -> None:
        self.path = Path(path)
        self.interval = interval
        self.name = name  # the thread's name
        self.what = what  # what is written, for errors ("task changes")
        self._batch, self._add, self._merge, self._write = batch, add, merge, write
        self._pending: B = batch()
        self._lock = threading.Condition()
        self._noted_count = 0  # notes so far
        self._written_count = 0  # notes committed so far (by `note` order)
        self._closed = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def note(self, item: I) -> None:
        """Add `item` to the pending batch, to be committed within about `interval`."""
        with self._lock:
            if self._closed:
                raise Closed(f"the {self.name} is closed")
            idle = not self._pending  # only an idle writer waits to be woken
            self._add(self._pending, item)
            self._noted_count += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            elif idle:
                self._lock.notify_all()

    def flush(self, timeout: float | None = 30.0) -> None:
        """Answer once every note so far is committed; after `timeout` s, raise the last
        write's failure (writes are being tried again) or `TimeoutError`."""
        with self._lock:
            target = self._noted_count
            self._lock.notify_all()
            done = self._lock.wait_for(
                lambda: self._written_count >= target or self._thread is None, timeout)
            if done and self._written_count >= target:
                return
            if self._error is not None:
                raise RuntimeError(f"writing {self.what} failed") from self._error
            raise TimeoutError(f"{self.what} were not written in time")

    def close(self) -> None:
        """Write what is noted, then stop the thread (a closed writer takes no more notes)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        db: Database | None = None
        try:
            while True:
                with self._lock:
                    self._lock.wait_for(lambda: self._pending or self._closed)
                    if not self._pending:  # closed, and everything is written
                        return
                    batch, self._pending = self._pending, self._batch()
                    counted = self._noted_count
                try:
                    db = db or Database(self.path)
                    self._write(db, batch)
                except Exception as exc:  # noqa: BLE001 (logged, kept for `flush`, tried again)
                    with self._lock:
                        self._error = exc
                        self._pending = self._merge(batch, self._pending)
                        self._lock.notify_all()
                        closed = self._closed
                    if closed:
                        log.error("gswarm: %s not written at close: %s", self.what, exc)
                        return
                    log.warning("gswarm: writing %s failed (tried again in %g s): %s",
                                self.what, RETRY, exc)
                    time.sleep(RETRY)
                    continue
                with self._lock:
                    self._written_count = counted
                    self._error = None
                    self._lock.notify_all()
                    closed = self._closed
                if not closed:
                    time.sleep(self.interval)  # let the next group gather
        finally:
            if db is not None:
                db.close()
            with self._lock:
                self._thread = None
                self._lock.notify_all()
