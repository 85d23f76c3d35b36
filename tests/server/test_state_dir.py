"""One server, its own state: the default data folder belongs to the server's root_dir, and a
second server on a data folder already in use is refused at start, with a message saying why."""

from __future__ import annotations

import os

import httpx
import pytest

from gswarm_jupyter.server.statedir import (
    DataDirInUse,
    StateLock,
    default_data_dir,
    holder,
    main,
)
from gswarm_jupyter.testing import LiveServer


def test_the_default_data_dir_is_one_per_real_root_dir(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    os.symlink(tmp_path / "a", tmp_path / "link-to-a")
    a = default_data_dir(tmp_path / "a", tmp_path / "data")
    assert a.parent == tmp_path / "data" / "gswarm" and a.name.startswith("a-")
    assert default_data_dir(tmp_path / "link-to-a", tmp_path / "data") == a
    assert default_data_dir(tmp_path / "b", tmp_path / "data") != a


def test_a_held_folder_cannot_be_locked_again_until_released(tmp_path):
    lock = StateLock.acquire(tmp_path / "state", {"root_dir": "/somewhere"})
    assert holder(tmp_path / "state") == {"pid": os.getpid(), "root_dir": "/somewhere"}
    with pytest.raises(DataDirInUse, match=rf"in use by the server process {os.getpid()} "
                                           r"\(serving /somewhere\)"):
        StateLock.acquire(tmp_path / "state", {})
    lock.release()
    assert holder(tmp_path / "state") is None
    StateLock.acquire(tmp_path / "state", {}).release()


def test_reset_removes_the_roots_default_folder_unless_a_server_holds_it(tmp_path, monkeypatch,
                                                                          capsys):
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    root = tmp_path / "project"
    root.mkdir()
    folder = default_data_dir(root)
    assert main([str(root)]) == 0
    assert capsys.readouterr().out.strip() == str(folder)

    lock = StateLock.acquire(folder, {})
    (folder / "gswarm.sqlite3").write_bytes(b"state")
    assert main([str(root), "--reset"]) == 1
    assert "Stop it first; nothing was removed" in capsys.readouterr().err
    assert (folder / "gswarm.sqlite3").exists()

    lock.release()
    assert main([str(root), "--reset"]) == 0
    assert not folder.exists()
    assert main([str(root), "--reset"]) == 0  # nothing left to remove is not an error
    assert "nothing to reset" in capsys.readouterr().out


def test_a_second_server_on_the_same_data_dir_is_refused_at_start(tmp_path):
    shared = tmp_path / "shared-state"
    first = LiveServer(tmp_path / "first", nodes=1, data_dir=shared).start()
    try:
        assert first.proc is not None
        second = LiveServer(tmp_path / "second", nodes=1, data_dir=shared)
        with pytest.raises(RuntimeError, match="exited"):
            second.start()
        assert second.proc is not None and second.proc.wait(timeout=30) != 0
        said = second.log_path.read_text()
        assert f"{shared} is in use by the server process {first.proc.pid}" in said, said
        assert "--GswarmApp.data_dir=PATH" in said
        assert first.health() is not None  # the first one never noticed
    finally:
        first.stop()
    assert holder(shared) is None  # a stopped server lets go of its folder


def test_servers_of_different_root_dirs_keep_separate_state_by_default(tmp_path):
    env = {"JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data")}
    a = LiveServer(tmp_path / "a", nodes=1, default_data_dir=True, extra_env=env)
    b = LiveServer(tmp_path / "b", nodes=1, default_data_dir=True, extra_env=env)
    with a, b:
        assert a.proc is not None and b.proc is not None
        answer = httpx.post(
            a.url + "gswarm/api/v1/models", headers=a.headers, timeout=60,
            json={"model_name": "only-in-a", "model_type": "mlp",
                  "source_url": "builtin://mlp?in=4&hidden=4&out=2&seed=0"},
        )
        assert answer.status_code == 201, answer.text
        names = [m["model_name"] for m in _models(a)]
        assert names == ["only-in-a"]
        assert _models(b) == []

        folders = {default_data_dir(s.root, tmp_path / "jupyter-data"): s for s in (a, b)}
        assert len(folders) == 2
        for folder, server in folders.items():
            assert (folder / "gswarm.sqlite3").exists()
            assert holder(folder) == {"pid": server.proc.pid, "root_dir": str(server.root)}


def _models(server: LiveServer) -> list[dict]:
    answer = httpx.get(server.url + "gswarm/api/v1/models", headers=server.headers, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["models"]
