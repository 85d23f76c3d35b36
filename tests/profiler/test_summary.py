import pytest

from gswarm_jupyter.profiler.summary import percentile, summarize


def _frame(node, cpu, gpu_util=None):
    gpus = [] if gpu_util is None else [{"device": "gpu0", "utilization_ratio": gpu_util}]
    return {
        "node": node,
        "seq": 1,
        "host": {"cpu_utilization_ratio": cpu, "disk_read_bytes_per_s": None},
        "gpus": gpus,
    }


def test_summary_per_node_device_and_metric():
    frames = [_frame("n1", v / 10, gpu_util=v / 20) for v in range(1, 11)] + [_frame("n2", 0.5)]
    summary = summarize(frames)
    cpu = summary["n1"]["host"]["cpu_utilization_ratio"]
    assert cpu["mean"] == pytest.approx(0.55)
    assert cpu["max"] == pytest.approx(1.0)
    assert cpu["p95"] == pytest.approx(0.955)
    assert cpu["count"] == 10
    assert summary["n1"]["gpu0"]["utilization_ratio"]["max"] == pytest.approx(0.5)
    assert "disk_read_bytes_per_s" not in summary["n1"]["host"]  # null readings are not zeros
    assert summary["n2"] == {
        "host": {"cpu_utilization_ratio": {"mean": 0.5, "max": 0.5, "p95": 0.5, "count": 1}}
    }


def test_percentile_matches_linear_interpolation():
    assert percentile([1.0], 0.95) == 1.0
    assert percentile([0.0, 10.0], 0.5) == 5.0
    assert percentile(list(map(float, range(101))), 0.95) == pytest.approx(95.0)
