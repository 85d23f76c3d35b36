"""The data pool's chunks: layout rules and durable metadata (migration 2).

The bytes live on the nodes; this module knows only what a chunk is and where its copies are.
A location's status is `available`, `copying` (a move or transfer is writing it), `downloading`
(a URL fetch is writing it) or `lost` (a memory copy on a worker that restarted).
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from typing import Any, Literal

from .clock import iso
from .db import Database, dumps, loads, migration
from .errors import InvalidRequest, NotFound
from .locations import LocationTable

ChunkType = Literal["input", "output", "intermediate"]
ChunkFormat = Literal["tensor", "bytes", "json"]
LocationStatus = Literal["available", "copying", "downloading", "lost"]

MAX_DIMS = 32  # numpy's own limit (NPY_MAXDIMS of numpy 1.x)
UNBOUNDED = 2**62  # the byte count a tensor may have when no limit is configured

# Element sizes of the dtypes a tensor chunk may have (numpy and torch names).
DTYPE_SIZES: dict[str, int] = {
    "bool": 1,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "float16": 2,
    "bfloat16": 2,
    "int32": 4,
    "uint32": 4,
    "float32": 4,
    "int64": 8,
    "uint64": 8,
    "float64": 8,
    "complex64": 8,
    "complex128": 16,
}

migration(
    2,
    """
CREATE TABLE chunks (
    chunk_id TEXT PRIMARY KEY,
    chunk_type TEXT NOT NULL,
    format TEXT NOT NULL,
    size INTEGER,
    shape TEXT,
    dtype TEXT,
    created_by TEXT,
    created_at REAL NOT NULL,
    access_count INTEGER NOT NULL DEFAULT 0,
    task_id TEXT,
    error TEXT
);
CREATE TABLE chunk_locations (
    chunk_id TEXT NOT NULL REFERENCES chunks (chunk_id) ON DELETE CASCADE,
    node TEXT NOT NULL,
    device TEXT NOT NULL,
    status TEXT NOT NULL,
    worker TEXT,
    task_id TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (chunk_id, node, device)
)
""",
)


def new_chunk_id() -> str:
    return f"chunk-{secrets.token_hex(6)}"


def check_layout(
    fmt: str,
    size: int | None,
    shape: list[int] | None,
    dtype: str | None,
    data: bytes | None = None,
    max_bytes: int | None = None,
) -> None:
    """A tensor needs a known dtype and a shape whose byte count is `size` (and at most
    `max_bytes`); json must parse."""
    if fmt == "tensor":
        if shape is None:
            raise InvalidRequest("a tensor chunk needs metadata.shape", {"field": "metadata.shape"})
        if dtype is None:
            raise InvalidRequest("a tensor chunk needs metadata.dtype", {"field": "metadata.dtype"})
        if dtype not in DTYPE_SIZES:
            raise InvalidRequest(
                f"unknown dtype {dtype!r}: expected one of {', '.join(DTYPE_SIZES)}",
                {"field": "metadata.dtype", "allowed": list(DTYPE_SIZES)},
            )
        expected = tensor_bytes(shape, dtype, max_bytes)
        if size is not None and size != expected:
            raise InvalidRequest(
                f"{size} bytes do not fit shape {shape} of {dtype} ({expected} bytes)",
                {"field": "data", "expected": expected, "got": size, "shape": shape,
                 "dtype": dtype},
            )
    elif fmt == "json" and data is not None:
        try:
            json.loads(data.decode("utf-8"))
        except RecursionError:
            raise InvalidRequest("data is JSON nested too deeply", {"field": "data"}) from None
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidRequest(f"data is not UTF-8 JSON: {exc}", {"field": "data"}) from None


def tensor_bytes(shape: list[int], dtype: str, max_bytes: int | None = None) -> int:
    """The byte count of a `shape` of `dtype` (a known one): at most `MAX_DIMS` dimensions, each
    >= 0, and at most `max_bytes` bytes in all (`InvalidRequest` naming metadata.shape)."""
    if len(shape) > MAX_DIMS:
        raise InvalidRequest(
            f"a tensor has at most {MAX_DIMS} dimensions; shape has {len(shape)}",
            {"field": "metadata.shape", "limit": MAX_DIMS, "got": len(shape)},
        )
    if any(d < 0 for d in shape):
        raise InvalidRequest("shape dimensions must be >= 0", {"field": "metadata.shape"})
    limit = UNBOUNDED if max_bytes is None else max_bytes
    itemsize = DTYPE_SIZES[dtype]
    count = 1
    for d in shape:  # bounded as it goes: no product of huge numbers is ever formed
        count *= d
        if d * itemsize > limit or count * itemsize > limit:
            raise InvalidRequest(
                f"shape {shape} of {dtype} is over the limit of {limit} bytes",
                {"field": "metadata.shape", "limit": limit, "shape": shape, "dtype": dtype},
            )
    return count * itemsize


class ChunkRegistry:
    """Chunks and their locations in SQLite; records come out as the API shows them."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.copies = LocationTable(db, "chunk_locations", "chunk_id", sized=False)

    def create(
        self,
        chunk_id: str,
        *,
        chunk_type: str,
        fmt: str,
        size: int | None,
        shape: list[int] | None,
        dtype: str | None,
        created_by: str | None,
        task_id: str | None = None,
    ) -> None:
        self.db.execute(
            "INSERT INTO chunks (chunk_id, chunk_type, format, size, shape, dtype, created_by, "
            "created_at, task_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (chunk_id, chunk_type, fmt, size, dumps(shape), dtype, created_by, time.time(),
             task_id),
        )

    def row(self, chunk_id: str) -> sqlite3.Row:
        row = self.db.one("SELECT * FROM chunks WHERE chunk_id = ?", (chunk_id,))
        if row is None:
            raise NotFound(f"unknown chunk {chunk_id!r}", {"chunk_id": chunk_id})
        return row

    def exists(self, chunk_id: str) -> bool:
        return self.db.one("SELECT 1 FROM chunks WHERE chunk_id = ?", (chunk_id,)) is not None

    def ids(self) -> list[str]:
        rows = self.db.all("SELECT chunk_id FROM chunks ORDER BY created_at, chunk_id")
        return [r[0] for r in rows]

    def set_size(self, chunk_id: str, size: int) -> None:
        self.db.execute("UPDATE chunks SET size = ? WHERE chunk_id = ?", (size, chunk_id))

    def set_task(self, chunk_id: str, task_id: str) -> None:
        self.db.execute("UPDATE chunks SET task_id = ? WHERE chunk_id = ?", (task_id, chunk_id))

    def set_error(self, chunk_id: str, error: dict[str, Any] | None) -> None:
        self.db.execute("UPDATE chunks SET error = ? WHERE chunk_id = ?", (dumps(error), chunk_id))

    def count_access(self, chunk_id: str) -> None:
        self.db.execute(
            "UPDATE chunks SET access_count = access_count + 1 WHERE chunk_id = ?", (chunk_id,)
        )

    def delete(self, chunk_id: str) -> None:
        self.db.execute("DELETE FROM chunks WHERE chunk_id = ?", (chunk_id,))

    def record(self, chunk_id: str, references: int = 0) -> dict[str, Any]:
        """The API's chunk record."""
        row = self.row(chunk_id)
        locations = self.copies.of(chunk_id)
        record: dict[str, Any] = {
            "chunk_id": row["chunk_id"],
            "chunk_type": row["chunk_type"],
            "size": row["size"],
            "format": row["format"],
            "locations": [
                {"device": f"{loc['node']}:{loc['device']}", "status": loc["status"]}
                for loc in locations
            ],
            "metadata": {
                "shape": loads(row["shape"]),
                "dtype": row["dtype"],
                "created_by": row["created_by"],
                "created_at": iso(row["created_at"]),
                "access_count": row["access_count"],
            },
            "references": references,
        }
        if row["task_id"] is not None:
            record["task_id"] = row["task_id"]
        if row["error"] is not None:
            record["error"] = loads(row["error"])
        return record
