from pathlib import Path

import pytest

from gswarm_jupyter.profiler import gen


def test_committed_stubs_match_the_proto(tmp_path: Path):
    pytest.importorskip("grpc_tools")
    written = gen.generate(out_dir=tmp_path)
    assert [p.name for p in written] == list(gen.OUTPUTS)
    for path in written:
        committed = gen.PACKAGE_DIR / path.name
        assert (
            committed.read_text() == path.read_text()
        ), f"{committed} is stale: run `python -m gswarm_jupyter.profiler.gen`"


def test_stubs_import_inside_the_package():
    from gswarm_jupyter.profiler._proto import profiler_pb2, profiler_pb2_grpc

    assert profiler_pb2.DESCRIPTOR.package == "gswarm.v1"
    assert hasattr(profiler_pb2_grpc, "ProfilerServiceStub")
    frame = profiler_pb2.Frame()
    assert not frame.host.HasField("cpu_utilization_ratio")  # absent, not zero
