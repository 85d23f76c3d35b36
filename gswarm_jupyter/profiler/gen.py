"""Regenerate the committed gRPC stubs from `proto/`: `python -m gswarm_jupyter.profiler.gen`.

Needs `grpcio-tools` (a test dependency). The stubs land in `gswarm_jupyter/profiler/_proto/`;
the generated service module's absolute import is made relative so the stubs live inside the
package.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent / "_proto"
PROTO_ROOT = Path(__file__).resolve().parents[2] / "proto"
PROTO = "gswarm/v1/profiler.proto"
OUTPUTS = ("profiler_pb2.py", "profiler_pb2.pyi", "profiler_pb2_grpc.py")


def generate(out_dir: Path = PACKAGE_DIR, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Write the stubs of `proto_root/gswarm/v1/profiler.proto` into `out_dir`; answer paths."""
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as scratch:
        code = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{proto_root}",
                f"--python_out={scratch}",
                f"--pyi_out={scratch}",
                f"--grpc_python_out={scratch}",
                str(proto_root / PROTO),
            ]
        )
        if code != 0:
            raise RuntimeError(f"protoc failed with exit code {code}")
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name in OUTPUTS:
            text = (Path(scratch) / "gswarm" / "v1" / name).read_text()
            text = re.sub(r"^from gswarm\.v1 import ", "from . import ", text, flags=re.M)
            target = out_dir / name
            target.write_text(text)
            written.append(target)
    init = out_dir / "__init__.py"
    if not init.exists():
        init.write_text('"""Stubs generated from proto/gswarm/v1/profiler.proto: do not edit."""\n')
    return written


if __name__ == "__main__":
    for path in generate():
        print(path)
    sys.exit(0)
