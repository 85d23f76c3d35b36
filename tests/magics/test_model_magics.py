"""`%gswarm models`, `register`, `move` and `copy` through IPython's magic machinery, against a real
server."""

from __future__ import annotations

import argparse
import hashlib

import pytest
from gswarm_kernels import checkpoint_bytes, init_params
from IPython.core.error import UsageError

from gswarm_jupyter.magics.display import Table
from gswarm_jupyter.magics.models import byte_rate

from ..http_source import Source

MLP = "builtin://mlp?in=8&hidden=16&out=4&seed={seed}"


def _row(table: Table, name: str) -> list[str]:
    return next(line.split() for line in repr(table).splitlines() if line.startswith(name + " "))


def test_register_then_models_lists_it_with_its_locations(ip, client):
    table = ip.run_line_magic("gswarm", f"register mg-mlp {MLP.format(seed=1)} --to node2:disk")
    assert isinstance(table, Table)
    size = client.models.get("mg-mlp")["model_size"]
    try:
        assert _row(table, "mg-mlp")[:4] == ["mg-mlp", "mlp", *_size_words(size)]
        listing = ip.run_line_magic("gswarm", "models --type mlp -o kept")
        text = repr(listing)
        assert text.splitlines()[1].split() == ["name", "type", "size", "status", "version",
                                                "locations"]
        assert _row(listing, "mg-mlp")[4:] == ["ready", "1", "node2:disk"]
        assert "mg-mlp" in [m["model_name"] for m in ip.user_ns["kept"]]
        assert {m["model_type"] for m in ip.user_ns["kept"]} == {"mlp"}
        assert "<table>" in listing._repr_html_()
    finally:
        client.models.delete("mg-mlp")


def _size_words(size: int) -> list[str]:
    from gswarm_jupyter.core.units import format_bytes

    return format_bytes(size).split()


def test_copy_and_move_draw_a_bar_until_the_task_ends(ip, client, capsys):
    client.models.register("mg-place", MLP.format(seed=2), download_to="node1:disk")
    try:
        capsys.readouterr()
        table = ip.run_line_magic("gswarm", "copy mg-place node1:disk node2:dram --bandwidth 50MB")
        out, err = capsys.readouterr()
        assert out.startswith("task model_copy-mg-place") and " completed in " in out
        assert "100/100%" in err and "mg-place copy" in err  # tqdm's bar (text mode here)
        assert _row(table, "mg-place")[-2:] == ["node1:disk,", "node2:dram"]

        ip.run_line_magic("gswarm", "move mg-place node2:dram node1:dram -o kept")
        out, err = capsys.readouterr()
        assert out.startswith("task model_move-mg-place") and " completed in " in out
        assert "mg-place move" in err
        assert {loc["device"] for loc in ip.user_ns["kept"]["locations"]} == {
            "node1:disk", "node1:dram"}
    finally:
        client.models.delete("mg-place", force=True)


def test_register_from_http_waits_for_the_download(ip, client, capsys):
    config = {"in": 4, "hidden": [8], "out": 2}
    payload = checkpoint_bytes("mlp", config, init_params("mlp", config, seed=3))
    with Source() as src:
        src.files["w.safetensors"] = payload
        try:
            table = ip.run_line_magic(
                "gswarm", f"register mg-web {src.url('w.safetensors')} --to node2:dram -o kept")
            out, err = capsys.readouterr()
            assert out.startswith("task model_download-mg-web") and " completed in " in out
            assert "100/100%" in err
            assert _row(table, "mg-web")[-3:] == ["ready", "1", "node2:dram"]
            assert ip.user_ns["kept"]["checksum"] == hashlib.sha256(payload).hexdigest()
        finally:
            client.models.delete("mg-web", force=True)


def test_a_failed_copy_prints_its_error(ip, client, capsys):
    client.models.register("mg-fail", MLP.format(seed=4), download_to="node1:disk")
    try:
        with pytest.raises(UsageError, match="NOT_FOUND"):  # no copy on the source
            ip.run_line_magic("gswarm", "copy mg-fail node2:disk node1:dram")
        with pytest.raises(UsageError, match="CONFLICT"):
            ip.run_line_magic("gswarm", "copy mg-fail node1:disk node1:disk")
        with pytest.raises(UsageError, match="MODEL_NOT_FOUND"):
            ip.run_line_magic("gswarm", "move mg-none node1:disk node1:dram")
        with pytest.raises(UsageError, match="CONFLICT"):
            ip.run_line_magic("gswarm", f"register mg-fail {MLP.format(seed=4)}")
    finally:
        client.models.delete("mg-fail")


@pytest.mark.parametrize("line, usage", [
    ("register only-a-name", "usage: %gswarm register [-h]"),
    ("move m node1:disk", "usage: %gswarm move [-h]"),
    ("copy m a b --bandwidth fast", "usage: %gswarm copy [-h]"),
    ("copy m a b --bandwidth 0", "must be positive"),
    ("models --nope", "unrecognized arguments: --nope"),
])
def test_wrong_use_is_a_usage_error_with_the_usage_line(ip, line, usage):
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("gswarm", line)
    assert usage in str(info.value)


def test_byte_rates_read_their_units():
    assert [byte_rate(t) for t in ("200000", "50MB", "1.5k", "1GiB", "2mib/s")] == [
        200_000, 50_000_000, 1500, 2**30, 2 * 2**20]
    with pytest.raises(argparse.ArgumentTypeError):
        byte_rate("12 parsecs")
