import time

import pytest

from gswarm_jupyter.profiler.frames import GPU_METRICS, HOST_METRICS, keep_metrics, readings
from gswarm_jupyter.profiler.samplers import GpuSampler, HostSampler, NodeSampler

from .fake_nvml import FakeGpu, FakeNvml


def test_host_sampler_measures_in_base_units():
    sampler = HostSampler()
    time.sleep(0.05)
    sample = sampler.sample()
    assert set(sample) == set(HOST_METRICS)
    assert 0.0 <= sample["cpu_utilization_ratio"] <= 1.0
    assert 0 < sample["memory_used_bytes"] <= sample["memory_total_bytes"]
    assert isinstance(sample["memory_total_bytes"], int)
    for key in ("network_rx_bytes_per_s", "network_tx_bytes_per_s"):
        assert sample[key] is not None and sample[key] >= 0


def test_without_nvml_gpu_fields_are_absent_not_zero():
    # The real pynvml here: no NVIDIA driver, so NVML cannot start.
    sampler = NodeSampler("n1")
    assert not sampler.gpu.available and sampler.gpu.reason
    frame = sampler.sample([])
    assert frame["gpus"] == []
    assert {device for device, _, _ in readings(frame)} == {"host"}


def test_without_a_driver_the_fake_also_reports_no_gpu():
    assert GpuSampler(FakeNvml(driver=False)).sample() == []


def test_gpu_readings_through_nvml_in_base_units():
    gpu = FakeGpu()
    sampler = GpuSampler(FakeNvml([gpu]))
    assert sampler.available
    assert sampler.info() == [
        {
            "device": "gpu0",
            "device_id": 0,
            "name": "Fake A100",
            "memory_total": 40 * 2**30,
            "compute_capability": "8.0",
        }
    ]
    first = sampler.sample()[0]
    assert first["nvlink_rx_bytes_per_s"] is None  # a rate needs two counter readings
    gpu.nvlink_rx_kib += 2048
    gpu.nvlink_tx_kib += 1024
    time.sleep(0.05)
    (reading,) = sampler.sample()
    assert set(GPU_METRICS) <= set(reading)
    assert reading["device"] == "gpu0"
    assert reading["utilization_ratio"] == pytest.approx(0.75)
    assert reading["memory_used_bytes"] == 10 * 2**30
    assert reading["temperature_celsius"] == 61.0
    assert reading["power_watts"] == pytest.approx(250.0)
    assert reading["pcie_rx_bytes_per_s"] == 1000 * 1024
    assert reading["pcie_tx_bytes_per_s"] == 500 * 1024
    # 2 MiB over at least 50 ms: at most 40 MiB/s, and more than nothing
    assert 0 < reading["nvlink_rx_bytes_per_s"] <= 2048 * 1024 / 0.05
    assert reading["nvlink_rx_bytes_per_s"] == pytest.approx(2 * reading["nvlink_tx_bytes_per_s"])
    assert reading["processes"] == [{"pid": 4242, "used_memory_bytes": 2**30}]


def test_unsupported_gpu_readings_are_null():
    sampler = GpuSampler(FakeNvml([FakeGpu(nvlink=False, power_supported=False), FakeGpu()]))
    sampler.sample()
    without, with_nvlink = sampler.sample()
    assert without["power_watts"] is None and without["nvlink_rx_bytes_per_s"] is None
    assert without["utilization_ratio"] == pytest.approx(0.75)
    assert with_nvlink["device"] == "gpu1" and with_nvlink["nvlink_rx_bytes_per_s"] == 0.0


def test_node_frame_with_gpus_and_metric_filter():
    frame = NodeSampler("n1", FakeNvml([FakeGpu(), FakeGpu()])).sample(["s"])
    assert frame["node"] == "n1" and frame["sessions"] == ["s"]
    assert [g["device"] for g in frame["gpus"]] == ["gpu0", "gpu1"]
    assert frame["timestamp"].endswith("Z") and frame["timestamp_unix_s"] <= time.time()
    kept = keep_metrics(frame, ["memory_used_bytes"])
    assert set(kept["host"]) == {"memory_used_bytes"}
    assert set(kept["gpus"][0]) == {"device", "memory_used_bytes", "processes"}
    assert {m for _, m, _ in readings(kept)} == {"memory_used_bytes"}


def test_proc_counters_give_psutils_numbers():
    import psutil

    from gswarm_jupyter.profiler.procfs import ProcCounters

    proc = ProcCounters()
    try:
        times, cpu = psutil.cpu_times(), proc.cpu()
        # the same /proc/stat line in clock ticks (a tick or so may pass between the two reads)
        assert cpu.total == pytest.approx(sum(times) * 100, abs=50)
        assert cpu.idle == pytest.approx((times.idle + times.iowait) * 100, abs=50)
        memory = proc.memory()
        assert memory.total == psutil.virtual_memory().total
        assert memory.available is not None and 0 < memory.available <= memory.total
        disks, total = proc.disks(), psutil.disk_io_counters()
        assert set(disks) and sum(r for r, _ in disks.values()) <= total.read_bytes
        nets = proc.networks()
        assert {n.decode() for n in nets} == set(psutil.net_io_counters(pernic=True))
        assert nets[b"lo"][0] <= psutil.net_io_counters(pernic=True)["lo"].bytes_recv
    finally:
        proc.close()


def test_host_sampler_through_psutil_where_there_is_no_proc():
    sampler = HostSampler(proc=False)
    time.sleep(0.05)
    sample = sampler.sample()
    assert set(sample) == set(HOST_METRICS)
    assert 0.0 <= sample["cpu_utilization_ratio"] <= 1.0
    assert sample["memory_total_bytes"] == HostSampler().sample()["memory_total_bytes"]
    assert sample["network_rx_bytes_per_s"] is not None


def test_io_rates_per_device_a_restarted_counter_counts_from_zero():
    from gswarm_jupyter.profiler.samplers import _rates

    before = {"a": (1000, 50), "b": (500, 0), "gone": (9, 9)}
    after = {"a": (3000, 50), "b": (200, 100), "new": (10**9, 10**9)}
    assert _rates(before, after, 2.0) == (1100.0, 50.0)  # a: +2000, b restarted: +200; +100
    assert _rates({}, after, 2.0) == (None, None)  # no device: unknown, not zero
