"""The group writer (`core.groupwriter`): a write that fails is logged and tried again with what
was noted since, in order; `flush` raises while writes fail and answers once one succeeds."""

from __future__ import annotations

import logging
import time

import pytest

from gswarm_jupyter.core import groupwriter
from gswarm_jupyter.core.db import Database
from gswarm_jupyter.core.groupwriter import GroupWriter


def test_a_failed_write_is_logged_and_tried_again_with_the_notes_since(tmp_path, monkeypatch,
                                                                        caplog):
    monkeypatch.setattr(groupwriter, "RETRY", 0.05)
    written: list[int] = []
    failures = [OSError("database is locked")] * 2  # the first two writes fail

    def write(db: Database, batch: list[int]) -> None:
        if failures:
            raise failures.pop()
        written.extend(batch)

    writer: GroupWriter[list[int], int] = GroupWriter(
        tmp_path / "state.sqlite3", batch=list, add=list.append, merge=lambda a, b: a + b,
        write=write, name="test-writer", what="numbers")
    with caplog.at_level(logging.WARNING, logger="gswarm_jupyter.core.groupwriter"):
        writer.note(1)
        deadline = time.monotonic() + 10
        while not caplog.records and time.monotonic() < deadline:  # the first write failed
            time.sleep(0.005)
        with pytest.raises(RuntimeError, match="writing numbers failed"):
            writer.flush(timeout=0.01)  # its time ran out while writes fail
        writer.note(2)
        writer.note(3)
        writer.flush(timeout=10)  # waits for the write that succeeds
        writer.close()

    assert written == [1, 2, 3]
    assert sum("writing numbers failed" in r.getMessage() for r in caplog.records) == 2


def test_notes_a_failing_database_still_holds_at_close_are_logged_as_lost(tmp_path, caplog):
    def write(db: Database, batch: list[int]) -> None:
        raise OSError("disk gone")

    writer: GroupWriter[list[int], int] = GroupWriter(
        tmp_path / "state.sqlite3", batch=list, add=list.append, merge=lambda a, b: a + b,
        write=write, name="test-writer", what="numbers")
    with caplog.at_level(logging.WARNING, logger="gswarm_jupyter.core.groupwriter"):
        writer.note(1)
        writer.close()  # returns: one last try, then the loss is logged

    assert any("numbers not written at close" in r.getMessage() for r in caplog.records)
