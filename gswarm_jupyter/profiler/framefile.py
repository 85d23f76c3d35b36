"""A session's frames file, JSON Lines: one JSON object per line, frames in arrival order, each in
the form it came in.

Invariant: reading a file answers, in order, the frames as the API serves them (the dict form of
`frames.py`, the session's metrics kept and its tags on each frame), whichever form each line
holds; a line cut by a crash is skipped.

- A Dask node's frame (a dict) is its JSON object, metrics kept and tags added as appended, as
  `json.dumps(frame, separators=(",", ":"))` writes it (the only form files written before held).
- A gRPC agent's frame is `{"gswarm.v1.Frame":"<base64>"}`: the message's bytes as they arrived,
  made into the frame's dict (the session's metrics kept, its tags added) only when the session is
  read. Its line is made by joining bytes: the ingest path neither builds a dict nor runs the JSON
  encoder per frame.

The writer holds encoded lines and writes them as one batch per flush (so a crash loses at most
the last flush interval). A flush may run on a thread beside the event loop: it writes under the
writer's lock, and lines appended meanwhile wait for the next flush, in order.
"""

from __future__ import annotations

import binascii
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from ._proto import profiler_pb2 as pb
from .convert import frame_from_proto
from .frames import Frame, keep_metrics

MESSAGE_KEY = "gswarm.v1.Frame"
FSYNC_EVERY_S = 1.0
_MESSAGE_HEAD = b'{"' + MESSAGE_KEY.encode() + b'":"'
_MESSAGE_TAIL = b'"}\n'

_ENCODER = json.JSONEncoder(separators=(",", ":"))
# The C encoder built once (JSONEncoder.encode builds one per call); the pure-Python one without it.
_encode_one = (
    json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, _ENCODER.default, json.encoder.encode_basestring_ascii, None, ":", ",",
        False, False, True,
    )
    if getattr(json.encoder, "c_make_encoder", None) is not None
    else None
)


def encode_line(frame: Frame) -> bytes:
    """`frame` as one JSON Lines line, as `json.dumps(frame, separators=(",", ":"))` writes it
    (ASCII: non-ASCII characters escaped)."""
    if _encode_one is None:
        return (_ENCODER.encode(frame) + "\n").encode()
    return ("".join(_encode_one(frame, 0)) + "\n").encode()


def message_line(payload: bytes) -> bytes:
    """The line of a serialized `gswarm.v1.Frame`."""
    return _MESSAGE_HEAD + binascii.b2a_base64(payload, newline=False) + _MESSAGE_TAIL


class FrameWriter:
    """Appends lines to the frames file at `path`."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file: IO[bytes] = open(path, "ab")  # noqa: SIM115
        self.pending: list[bytes] = []
        self.dirty = False
        self.synced_at = time.monotonic()
        self._lock = threading.Lock()

    def frame(self, frame: Frame) -> None:
        """Hold `frame` (a dict) as it is now: encoded now, the caller may change it later."""
        self.pending.append(encode_line(frame))

    def message(self, payload: bytes) -> None:
        """Hold a serialized `gswarm.v1.Frame`."""
        self.pending.append(message_line(payload))

    def flush(self, force_sync: bool = False) -> None:
        with self._lock:
            if self.file.closed:
                return
            if self.pending:
                pending, self.pending = self.pending, []
                self.file.write(b"".join(pending))
                self.dirty = True
            if not self.dirty and not force_sync:
                return
            self.file.flush()
            now = time.monotonic()
            if force_sync or now - self.synced_at >= FSYNC_EVERY_S:
                os.fsync(self.file.fileno())
                self.synced_at = now
            self.dirty = False

    def close(self) -> None:
        self.flush(force_sync=True)
        with self._lock:
            self.file.close()


def read_frames(
    path: Path, metrics: list[str] | None = None, tags: dict[str, Any] | None = None
) -> Iterator[Frame]:
    """Every whole frame of the file at `path`, oldest first. `metrics` and `tags` are the
    session's: applied to the frames stored as their messages (the others hold them)."""
    try:
        f = open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:
        return
    tags = json.loads(json.dumps(tags)) if tags else None  # as a JSON line holds them
    head, tail = len(_MESSAGE_HEAD), -len(_MESSAGE_TAIL)
    with f:
        for line in f:
            try:
                if line.startswith(_MESSAGE_HEAD) and line.endswith(_MESSAGE_TAIL):
                    encoded = line[head:tail]  # the line as message_line made it
                else:
                    frame = json.loads(line)
                    encoded = frame.get(MESSAGE_KEY) if len(frame) == 1 else None
                    if encoded is None:
                        yield frame
                        continue
                message = pb.Frame.FromString(binascii.a2b_base64(encoded))
            # a line cut by a crash: not JSON, or base64 or a message cut short. (Exception: the
            # profiler reaches protobuf, whose DecodeError this is, only through _proto.)
            except Exception:  # noqa: BLE001
                continue
            frame = keep_metrics(frame_from_proto(message), metrics)
            if tags:
                frame["tags"] = tags
            yield frame
