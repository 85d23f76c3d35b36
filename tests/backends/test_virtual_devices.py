"""The one device map with virtual GPUs: unbound a vgpuN is host-backed; bound, it is the device it
was carved from (in this process), and forgetting it makes it host-backed again."""

from __future__ import annotations

import pytest

from gswarm_jupyter.backends.devices import bind_virtual, framework_device, unbind_virtual
from gswarm_jupyter.core.errors import InvalidRequest


def test_a_vgpu_maps_to_what_it_was_carved_from():
    assert framework_device("vgpu41") == "cpu"
    bind_virtual("vgpu41", "gpu1")
    try:
        assert framework_device("vgpu41") == "cuda:1"
        bind_virtual("vgpu41", "dram")
        assert framework_device("vgpu41") == "cpu"
    finally:
        unbind_virtual("vgpu41")
    assert framework_device("vgpu41") == "cpu"
    with pytest.raises(InvalidRequest):
        bind_virtual("gpu0", "cpu")
