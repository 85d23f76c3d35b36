"""The worker side of a vGPU: where a service on one runs its model, its fair-queue turn, and (on
CUDA only) the process memory bound."""

from __future__ import annotations

import pytest

from gswarm_jupyter.cluster.tenancy.vgpu_worker import bound_cuda_memory, runner_device, turn_of
from gswarm_jupyter.cluster.tenancy.wfq import gate_for

CPU_SHARE = {"virtual_gpu_id": "w-cpu", "group": "nodeX:dram", "weight": 3, "backing": "cpu",
             "physical_device": "dram", "memory_size": 2**20}


def test_a_host_backed_vgpu_runs_on_its_device_name_and_takes_turns():
    assert runner_device("vgpu0", CPU_SHARE) == "vgpu0"  # framework_device maps it to cpu
    assert runner_device("dram", None) == "dram" and turn_of(None) is None
    assert bound_cuda_memory(CPU_SHARE) is None and bound_cuda_memory(None) is None
    turn = turn_of(CPU_SHARE)
    with turn():
        pass
    assert gate_for("nodeX:dram").granted["w-cpu"] == 1


def test_a_cuda_backed_vgpu_runs_on_its_physical_gpu():
    share = {**CPU_SHARE, "backing": "cuda", "physical_device": "gpu1", "group": "nodeX:gpu1"}
    assert runner_device("vgpu0", share) == "gpu1"


@pytest.mark.gpu
def test_a_cuda_backed_vgpu_bounds_its_process_memory():
    import torch

    total = torch.cuda.get_device_properties(0).total_memory
    share = {**CPU_SHARE, "backing": "cuda", "physical_device": "gpu0", "group": "n:gpu0",
             "memory_size": total // 4}
    try:
        assert bound_cuda_memory(share) == pytest.approx(0.25, abs=1e-6)
        with pytest.raises(torch.cuda.OutOfMemoryError):
            torch.empty(total // 2, dtype=torch.uint8, device="cuda:0")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
