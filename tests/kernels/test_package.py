from __future__ import annotations

import subprocess
import sys


def test_import_is_light_and_exports_resolve():
    """`import gswarm_kernels` and its framework-neutral API pull in neither torch nor JAX."""
    code = (
        "import sys, gswarm_kernels as k\n"
        "k.init_params('mlp', {}, 0); k.checkpoint_bytes; k.quantize; k.TrainResult\n"
        "heavy = [m for m in ('torch', 'jax', 'optax', 'gswarm_jupyter') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
