"""The one NVML probe, read by the node agent's device report and the profiler's sampler alike."""

from __future__ import annotations

from gswarm_jupyter.backends.nvml import NvmlProbe
from gswarm_jupyter.cluster.runtime.devices import nvml_gpus
from gswarm_jupyter.profiler.samplers import GpuSampler

from ..profiler.fake_nvml import FakeGpu, FakeNvml


def test_node_agent_reads_gpus_through_the_shared_probe():
    probe = NvmlProbe(FakeNvml([FakeGpu(), FakeGpu(name="Fake H100", used=0)]))
    assert probe.available and probe.reason is None
    first, second = nvml_gpus(probe)
    assert first == {
        "device": "gpu0",
        "device_id": 0,
        "name": "Fake A100",
        "memory_total": 40 * 2**30,
        "memory_used": 10 * 2**30,
        "memory_available": 30 * 2**30,
        "usage": 0.75,
        "temperature": 61,
        "compute_capability": "8.0",
    }
    assert (second["device"], second["name"], second["memory_used"]) == ("gpu1", "Fake H100", 0)


def test_sampler_and_agent_agree_on_identity():
    nvml = FakeNvml([FakeGpu()])
    agent = nvml_gpus(NvmlProbe(nvml))[0]
    (identity,) = GpuSampler(nvml).info()
    assert identity == {key: agent[key] for key in identity}


def test_without_a_driver_the_probe_has_no_gpus_and_says_why():
    probe = NvmlProbe(FakeNvml(driver=False))
    assert not probe.available
    assert probe.reason is not None and probe.reason.startswith("NVML unavailable")
    assert nvml_gpus(probe) == []
