"""Profiling sessions: an index in the server's SQLite database, frames in one JSON Lines file per
session (`framefile`: each frame stored in the form it arrived in, held and written in batches every
fraction of a second, so a crash loses at most the last flush interval; the periodic flush runs on
a thread, so the write and fsync never stall the event loop). A session still `running` when the
server starts again was cut short: it becomes `interrupted`, with the frames its file holds.

Whatever reads a whole frames file (a summary, the recovery's count) runs on a thread; the index
(SQLite) and the session maps are touched on the event loop only. A session being finished is in
`closing`, out of `running` (no frame is recorded for it meanwhile), until its summary is stored;
if summarising fails, it goes back to `running` as it was, its frames kept.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.clock import iso, iso_or_none
from ..core.db import Database, dumps, loads, migration
from ..core.errors import Conflict, NotFound
from .framefile import FrameWriter, read_frames
from .frames import Frame
from .summary import Summary, summarize

migration(
    40,
    """
CREATE TABLE profiler_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    sampling_frequency_ms INTEGER NOT NULL,
    nodes TEXT,
    metrics TEXT,
    tags TEXT,
    start_time REAL NOT NULL,
    end_time REAL,
    frames_collected INTEGER NOT NULL DEFAULT 0,
    path TEXT NOT NULL,
    summary TEXT
);
CREATE INDEX profiler_sessions_by_name ON profiler_sessions (name, id);
CREATE UNIQUE INDEX profiler_sessions_one_running ON profiler_sessions (name)
    WHERE status = 'running'
""",
)

RUNNING, FINISHED, INTERRUPTED = "running", "finished", "interrupted"


@dataclass
class Session:
    id: int
    name: str
    status: str
    sampling_frequency_ms: int
    nodes: list[str] | None
    metrics: list[str] | None
    tags: dict[str, Any] | None
    start_time: float
    end_time: float | None
    frames_collected: int
    path: Path
    summary: Summary | None = None
    stopping_at: float | None = field(default=None, repr=False)

    def covers(self, node: str) -> bool:
        return self.nodes is None or node in self.nodes

    def record(self) -> dict[str, Any]:
        """The API's view of the session (no summary, no frames)."""
        end = self.end_time
        return {
            "name": self.name,
            "status": self.status,
            "sampling_frequency_ms": self.sampling_frequency_ms,
            "nodes": self.nodes,
            "metrics": self.metrics,
            "tags": self.tags,
            "start_time": iso(self.start_time),
            "end_time": iso_or_none(end),
            "start_time_unix_s": self.start_time,
            "end_time_unix_s": end,
            "duration_s": round((end if end is not None else time.time()) - self.start_time, 3),
            "frames_collected": self.frames_collected,
        }


class SessionStore:
    """The sessions index and their frame files under `root`."""

    def __init__(self, db: Database, root: Path) -> None:
        self.db = db
        self.root = Path(root)
        self.running: dict[str, Session] = {}
        self.closing: dict[str, Session] = {}  # being finished: its file closed and summarised
        self._writers: dict[str, FrameWriter] = {}

    async def recover(self) -> list[str]:
        """Mark sessions left running by a previous server as interrupted; answer their names.
        Each file is read on a thread."""
        names = []
        for row in self.db.all("SELECT * FROM profiler_sessions WHERE status = ?", (RUNNING,)):
            session = _session(row)
            count, last = await asyncio.to_thread(self._tally, session)
            self.db.execute(
                "UPDATE profiler_sessions SET status = ?, end_time = ?, frames_collected = ? "
                "WHERE id = ?",
                (INTERRUPTED, last, count, session.id),
            )
            names.append(session.name)
        return names

    def _tally(self, session: Session) -> tuple[int, float | None]:
        """The number of frames `session`'s file holds and the last one's time (reads it all)."""
        count, last = 0, None
        for frame in self.frames(session):
            count += 1
            last = frame.get("timestamp_unix_s", last)
        return count, last

    def create(
        self,
        name: str,
        sampling_frequency_ms: int,
        nodes: list[str] | None,
        metrics: list[str] | None,
        tags: dict[str, Any] | None = None,
    ) -> Session:
        if name in self.running or name in self.closing:
            raise Conflict(f"profiling session {name!r} is already running", {"name": name})
        start = time.time()
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO profiler_sessions (name, status, sampling_frequency_ms, nodes, "
                "metrics, tags, start_time, path) VALUES (?, ?, ?, ?, ?, ?, ?, '')",
                (
                    name,
                    RUNNING,
                    sampling_frequency_ms,
                    _json(nodes),
                    _json(metrics),
                    None if not tags else dumps(tags),
                    start,
                ),
            )
            number = int(cursor.lastrowid or 0)
            path = self.root / f"{number:06d}-{_slug(name)}.jsonl"
            conn.execute("UPDATE profiler_sessions SET path = ? WHERE id = ?", (str(path), number))
        session = Session(
            id=number,
            name=name,
            status=RUNNING,
            sampling_frequency_ms=sampling_frequency_ms,
            nodes=nodes,
            metrics=metrics,
            tags=tags or None,
            start_time=start,
            end_time=None,
            frames_collected=0,
            path=path,
        )
        self._writers[name] = FrameWriter(path)
        self.running[name] = session
        return session

    def append(self, session: Session, frame: Frame) -> None:
        """Hold `frame` (its dict, the session's metrics kept) for the next flush, as it is now
        (encoded now: the caller may change it)."""
        self._writers[session.name].frame(
            {**frame, "tags": session.tags} if session.tags else frame
        )
        session.frames_collected += 1

    def append_message(self, session: Session, payload: bytes) -> None:
        """Hold a gRPC agent's frame, the serialized `gswarm.v1.Frame` as it arrived (the
        session's metrics and tags are applied when the session is read)."""
        self._writers[session.name].message(payload)
        session.frames_collected += 1

    def frames(self, session: Session) -> Iterator[Frame]:
        """The frames `session`'s file holds (what was flushed), oldest first."""
        return read_frames(session.path, session.metrics, session.tags)

    def flush(self) -> None:
        """Write what every running session holds (safe on a thread beside the event loop)."""
        for writer in list(self._writers.values()):
            writer.flush()

    async def finish(self, name: str, end_time: float) -> Session:
        """Close the running session `name`: its file, its end, its summary (the file written
        out, closed and read on a thread). On an error the session is running again, as it was."""
        session = self.running.pop(name)
        self.closing[name] = session
        writer = self._writers[name]
        try:
            summary = await asyncio.to_thread(self._close_and_summarize, session, writer)
        except BaseException:
            if writer.file.closed:  # the summary failed after the file was closed
                self._writers[name] = FrameWriter(session.path)
            self.running[name] = session
            raise
        finally:
            del self.closing[name]
        del self._writers[name]
        session.status, session.end_time, session.summary = FINISHED, end_time, summary
        self.db.execute(
            "UPDATE profiler_sessions SET status = ?, end_time = ?, frames_collected = ?, "
            "summary = ? WHERE id = ?",
            (FINISHED, end_time, session.frames_collected, dumps(summary), session.id),
        )
        return session

    def _close_and_summarize(self, session: Session, writer: FrameWriter) -> Summary:
        """On a thread: every held frame written and synced, the file closed, then read."""
        writer.close()
        return summarize(self.frames(session))

    def close(self) -> None:
        """Server shutdown: files closed, sessions left as they are (the next start recovers)."""
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def get(self, name: str) -> Session:
        """The running session `name`, else the latest finished or interrupted one."""
        live = self.running.get(name) or self.closing.get(name)
        if live is not None:
            return live
        row = self.db.one(
            "SELECT * FROM profiler_sessions WHERE name = ? ORDER BY id DESC LIMIT 1", (name,)
        )
        if row is None:
            raise NotFound(f"no profiling session named {name!r}", {"name": name})
        return _session(row)

    def all(self) -> list[Session]:
        """Every session, oldest first; running ones with their live counters."""
        live = {s.id: s for s in (*self.running.values(), *self.closing.values())}
        rows = self.db.all("SELECT * FROM profiler_sessions ORDER BY id")
        return [live.get(row["id"]) or _session(row) for row in rows]

    async def summary(self, session: Session) -> Summary:
        """The stored summary, or one computed from the file (running or interrupted sessions:
        written out and read on a thread)."""
        if session.summary is not None:
            return session.summary
        writer = self._writers.get(session.name)
        return await asyncio.to_thread(self._summarize_now, session, writer)

    def _summarize_now(self, session: Session, writer: FrameWriter | None) -> Summary:
        """On a thread: what `writer` holds written, then the file read."""
        if writer is not None:
            writer.flush()
        return summarize(self.frames(session))


def _session(row: Any) -> Session:
    return Session(
        id=row["id"],
        name=row["name"],
        status=row["status"],
        sampling_frequency_ms=row["sampling_frequency_ms"],
        nodes=loads(row["nodes"]),
        metrics=loads(row["metrics"]),
        tags=loads(row["tags"]),
        start_time=row["start_time"],
        end_time=row["end_time"],
        frames_collected=row["frames_collected"],
        path=Path(row["path"]),
        summary=loads(row["summary"]),
    )


def _json(value: list[str] | None) -> str | None:
    return None if value is None else dumps(value)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)
