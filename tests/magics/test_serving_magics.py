"""`%gswarm load`, `infer`, `unload` and `services` through IPython's magic machinery, against a real
server."""

from __future__ import annotations

import numpy as np
import pytest
from IPython.core.error import UsageError

from gswarm_jupyter.magics.display import Table

MLP = "builtin://mlp?in=8&hidden=16&out=4&seed={seed}"
GPT = "builtin://gpt?vocab=256&d_model=32&layers=1&heads=2&context=64&seed=0"


def _row(table: Table, first: str) -> list[str]:
    return next(line.split() for line in repr(table).splitlines() if line.startswith(first + " "))


def test_load_on_a_device_infer_from_python_and_json_then_unload(ip, client, capsys):
    table = ip.run_line_magic(
        "gswarm", f"load mg-s-mlp --path {MLP.format(seed=1)} --device node2:dram --batch 8 -o kept")
    try:
        out = capsys.readouterr().out
        assert out.startswith("mg-s-mlp loaded with torch on node2:dram in ")
        sid = ip.user_ns["kept"]["service_id"]
        assert _row(table, sid)[1:7] == ["mg-s-mlp", "node2", "dram", "torch", "running", "0"]
        assert client.services.get(sid)["config"]["max_batch_size"] == 8

        ip.user_ns["x"] = np.linspace(-1, 1, 24, dtype=np.float32).reshape(3, 8)
        from_python = ip.run_line_magic("gswarm", "infer mg-s-mlp x -o kept")
        line = capsys.readouterr().out
        assert line.startswith(f"3 rows from {sid} on node2, inference_time ")
        assert line.rstrip().endswith(" ms")
        assert ip.user_ns["kept"]["inference_time"] > 0
        direct = client.compute.infer("mg-s-mlp", ip.user_ns["x"].tolist())["output_data"]
        assert np.allclose(from_python, direct) and np.asarray(from_python).shape == (3, 4)

        as_json = ip.run_line_magic("gswarm", 'infer mg-s-mlp "[[0.5, 0.5, 0.5, 0.5, 0.5, 0.5, '
                                              '0.5, 0.5]]"')
        one_row = ip.run_line_magic("gswarm", "infer mg-s-mlp [0.5]*8")  # a flat row is one row
        as_cell = ip.run_cell_magic("gswarm", "infer mg-s-mlp", "[[0.5] * 8]\n")
        assert as_json == one_row == as_cell and len(as_json) == 1

        listing = ip.run_line_magic("gswarm", "services --model mg-s-mlp -o kept")
        assert repr(listing).splitlines()[1].split()[:7] == [
            "id", "model", "node", "device", "framework", "status", "requests"]
        served = _row(listing, sid)
        assert served[6] == str(ip.user_ns["kept"][0]["requests_served"])
        assert int(served[6]) >= 5 and served[8] == "ms"  # p50 in ms
        assert "<table>" in listing._repr_html_()
        capsys.readouterr()
    finally:
        ip.run_line_magic("gswarm", "unload mg-s-mlp")
    assert capsys.readouterr().out.strip() == f"mg-s-mlp unloaded: stopped {sid}"
    assert "mg-s-mlp" not in [m["model_id"] for m in client.compute.loaded()]
    assert repr(ip.run_line_magic("gswarm", "services --model mg-s-mlp")).endswith("(none)")


def test_jax_load_answers_like_torch_and_gpt_generates_with_a_seed(ip, client, capsys):
    ip.run_line_magic("gswarm", f"load mg-s-torch --path {MLP.format(seed=2)}")
    ip.run_line_magic("gswarm", f"load mg-s-jax --path {MLP.format(seed=2)} --framework jax")
    ip.run_line_magic("gswarm", f"load mg-s-gpt --path {GPT}")
    try:
        row = "[[0.25, -0.5, 1, 2, 0, 0.1, -3, 0.7]]"
        torch_out = ip.run_line_magic("gswarm", f"infer mg-s-torch {row}")
        jax_out = ip.run_line_magic("gswarm", f"infer mg-s-jax {row}")
        assert np.allclose(torch_out, jax_out, atol=1e-5)
        jax_service = client.services.list(model_name="mg-s-jax")[0]
        assert jax_service["framework"] == "jax"

        ip.user_ns["prompt"] = b"hello"
        capsys.readouterr()
        tokens = ip.run_line_magic(
            "gswarm", "infer mg-s-gpt prompt --max-tokens 5 --seed 3 --temperature 0.8 --decode")
        again = ip.run_line_magic("gswarm", "infer mg-s-gpt 'list(\"hello\".encode())' "
                                            "--max-tokens 5 --seed 3 --temperature 0.8")
        assert tokens == again and len(tokens[0]) == 5
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith("5 tokens from ")
        assert out[1] == repr(bytes(tokens[0]).decode(errors="replace"))
    finally:
        for name in ("mg-s-torch", "mg-s-jax", "mg-s-gpt"):
            client.compute.unload(name)


def test_wrong_use_is_a_usage_error_with_the_usage_line(ip, client):
    with pytest.raises(UsageError, match=r"(?s)usage: %gswarm load .*invalid choice: 'tf'"):
        ip.run_line_magic("gswarm", "load m --framework tf")
    with pytest.raises(UsageError, match=r"(?s)usage: %gswarm load .*must be at least 1"):
        ip.run_line_magic("gswarm", "load m --batch 0")
    with pytest.raises(UsageError, match=r"(?s)usage: %gswarm infer .*MODEL"):
        ip.run_line_magic("gswarm", "infer")
    with pytest.raises(UsageError, match="give DATA"):
        ip.run_line_magic("gswarm", "infer mg-s-none")
    with pytest.raises(UsageError, match="neither a Python expression here .*NameError"):
        ip.run_line_magic("gswarm", "infer mg-s-none no_such_name")
    with pytest.raises(UsageError, match="non-empty list of rows, not dict"):
        ip.run_line_magic("gswarm", "infer mg-s-none '{\"a\": 1}'")
    with pytest.raises(UsageError, match="MODEL_NOT_FOUND: .*mg-s-none"):
        ip.run_line_magic("gswarm", "infer mg-s-none [[1.0]]")
    with pytest.raises(UsageError, match="MODEL_NOT_FOUND"):
        ip.run_line_magic("gswarm", "unload mg-s-none")
    ip.run_line_magic("gswarm", f"load mg-s-bad --path {MLP.format(seed=3)}")
    try:
        with pytest.raises(UsageError, match=r"INVALID_INPUT_DATA: .*expected"):
            ip.run_line_magic("gswarm", "infer mg-s-bad [[1.0, 2.0]]")
        with pytest.raises(UsageError, match=r"(?s)usage: %gswarm infer .*invalid int value"):
            ip.run_line_magic("gswarm", "infer mg-s-bad [[1.0]] --max-tokens many")
        with pytest.raises(UsageError, match="MODEL_ALREADY_LOADED"):
            ip.run_line_magic("gswarm", "load mg-s-bad")
    finally:
        client.compute.unload("mg-s-bad")
