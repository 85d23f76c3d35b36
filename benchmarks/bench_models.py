"""Model store benchmarks, each against its baselines in the same run:

1. disk -> host memory load of a 1 GiB safetensors checkpoint: the weight store's own disk -> dram
   path (`WeightStore.read(.., "disk")` then `.write(.., "dram", ..)`, the two calls a dram copy
   task makes on the worker, plus the zero-copy tensor views of `load`) against
   `safetensors.torch.load_file`, `torch.load(weights_only=True)` of the same weights as `.pt`, and
   a raw `readinto` of the file. Page cache warm: each file is read once before each timing.
2. a 1 GiB model copy `node1:dram -> node2:dram` through the model store's copy task (two real
   worker processes, bytes carried worker to worker by Dask) against a raw loopback TCP copy of
   the same number of bytes.

Files go under the repo's `.tmp/` and are deleted afterwards.
"""

from __future__ import annotations

import asyncio
import gc
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .harness import ROOT, Result

TMP = ROOT.parent / ".tmp" / "bench-models"
WIDTH = 8192
CONFIG = {"in": WIDTH, "hidden": [WIDTH, WIDTH, WIDTH], "out": WIDTH}  # 4 x 256 MiB + biases
ROUNDS = 3
LOAD_ROUNDS = 5  # loads are short and this machine is shared: more rounds for a steady median
MIB = 2**20


def _write_checkpoint(folder: Path) -> tuple[Path, Path]:
    """The 1 GiB mlp checkpoint as safetensors (with its architecture) and as a torch `.pt`."""
    import torch
    from gswarm_kernels.checkpoint import save_checkpoint
    from gswarm_kernels.params import param_shapes

    rng = np.random.default_rng(0)
    params = {k: rng.random(shape, dtype=np.float32) for k, shape in param_shapes("mlp", CONFIG).items()}
    st, pt = folder / "model.safetensors", folder / "model.pt"
    save_checkpoint(st, "mlp", CONFIG, params)
    torch.save({k: torch.from_numpy(v) for k, v in params.items()}, pt)
    del params
    gc.collect()
    return st, pt


def _warm(path: Path) -> None:
    with open(path, "rb") as f:
        while f.read(64 * MIB):
            pass


def _touch(result: object) -> int:
    """Read one byte of every 4 KiB page of the loaded tensors, so a lazy (mmap) loader pays for
    bringing its bytes in as the eager ones did."""
    arrays = result.values() if isinstance(result, dict) else [result]
    total = 0
    for a in arrays:
        flat = np.asarray(a).reshape(-1).view(np.uint8)
        total += int(flat[::4096].sum())
    return total


def _timed(path: Path, load: Callable[[], object]) -> float:
    """Bytes per second of one `load` of `path` with its pages touched, page cache warm; the
    result is freed."""
    _warm(path)
    gc.collect()
    start = time.perf_counter()
    result = load()
    _touch(result)
    elapsed = time.perf_counter() - start
    del result
    gc.collect()
    return path.stat().st_size / elapsed


def _raw_read(path: Path) -> np.ndarray:
    buffer = np.empty(path.stat().st_size, dtype=np.uint8)
    with open(path, "rb", buffering=0) as f:
        view, got = memoryview(buffer), 0
        while got < len(buffer):
            n = f.readinto(view[got : got + 16 * MIB])
            if not n:
                break
            got += n
    return buffer


def _store_loader(folder: Path, st: Path) -> Callable[[], object]:
    """The weight store's disk -> dram copy of `st`, then its tensors as views of that copy."""
    from gswarm_jupyter.cluster.runtime.signals import TaskSignal
    from gswarm_jupyter.cluster.storage.weightstore import WeightStore

    store = WeightStore(folder / "store")
    disk = store.path("bench", 1, "safetensors")
    disk.parent.mkdir(parents=True, exist_ok=True)
    disk.hardlink_to(st)  # the store's disk copy is the same file (same page cache)

    def load() -> object:
        store.delete("bench", "dram")
        data = store.read("bench", "disk")
        store.write("bench", 1, "dram", data, TaskSignal("bench-load"), measure=False)
        del data
        _, _, params = store.load("bench", "dram")
        return params

    return load


def _load_benchmark() -> list[Result]:
    import safetensors.torch
    import torch

    folder = TMP / "load"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        st, pt = _write_checkpoint(folder)
        ours = _store_loader(folder, st)
        runs: dict[str, list[float]] = {"ours": [], "raw": [], "safetensors": [], "torch": []}
        for _ in range(LOAD_ROUNDS):
            runs["ours"].append(_timed(st, ours))
            runs["raw"].append(_timed(st, lambda: _raw_read(st)))
            runs["safetensors"].append(_timed(st, lambda: safetensors.torch.load_file(st)))
            runs["torch"].append(_timed(pt, lambda: torch.load(pt, weights_only=True)))
        size = st.stat().st_size
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        gc.collect()
    med = {k: statistics.median(v) for k, v in runs.items()}
    faster = med["ours"] > max(med["safetensors"], med["torch"])
    note = (
        f"{size / MIB:.0f} MiB mlp checkpoint; page cache warm (each file read once right before "
        f"each timing); every loader's result has one byte per 4 KiB page read inside the timing "
        f"(safetensors.load_file maps the file lazily); median of {LOAD_ROUNDS} interleaved rounds; "
        f"raw = readinto in 16 MiB blocks into one fresh buffer; ours = WeightStore.read(disk) + "
        f"write(dram) + load(dram) views, as a disk->dram copy task runs them on the worker. "
        f"safetensors.torch.load_file {med['safetensors'] / MIB:,.0f} MiB/s, "
        f"torch.load(weights_only=True) of the .pt {med['torch'] / MIB:,.0f} MiB/s: ours is "
        f"{'faster than both' if faster else 'NOT faster than both'}. safetensors.load_file "
        f"maps the page cache (no copy into process memory), so no eager loader can beat it warm. "
        f"Caveat: on this shared VM a fresh 1 GiB buffer fills at either ~3.7 or ~0.9 GiB/s from "
        f"run to run whatever reads into it, so the ratio to the raw read swings; ours makes one "
        f"read into one fresh buffer (np.fromfile) and keeps it as the dram copy, i.e. it is the "
        f"raw read plus header parsing."
    )
    return [
        Result(
            name="model_load_1GiB_disk_to_dram_bytes_per_second",
            value=med["ours"] / MIB, unit="MiB/s",
            baseline="raw readinto of the same file, same run",
            baseline_value=med["raw"] / MIB, ratio=med["ours"] / med["raw"],
            goal=">= 0.9", note=note,
        ),
        Result(
            name="model_load_1GiB_vs_safetensors_load_file",
            value=med["ours"] / MIB, unit="MiB/s",
            baseline="safetensors.torch.load_file, same file, same run",
            baseline_value=med["safetensors"] / MIB, ratio=med["ours"] / med["safetensors"],
            goal=">= 1.0", note="as above",
        ),
        Result(
            name="model_load_1GiB_vs_torch_load",
            value=med["ours"] / MIB, unit="MiB/s",
            baseline="torch.load(weights_only=True) of the same weights as .pt, same run",
            baseline_value=med["torch"] / MIB, ratio=med["ours"] / med["torch"],
            goal=">= 1.0", note="as above",
        ),
    ]


# -- 2. node1:dram -> node2:dram ----------------------------------------------------------------


async def _copy_rounds(st: Path, size: int) -> tuple[list[float], list[float]]:
    from gswarm_jupyter.cluster.storage.model_users import ModelUsers
    from gswarm_jupyter.cluster.storage.modelstore import ModelStore
    from gswarm_jupyter.cluster.storage.registration import ModelSources
    from gswarm_jupyter.core.modelregistry import ModelRegistry
    from gswarm_jupyter.core.models_api import CopyRequest, ModelCreate

    from .bench_transfer import _socket_copy
    from .cluster import swarm

    async with swarm() as s:
        models = ModelStore(ModelRegistry(s.db), s.runtime, s.executor, users=ModelUsers())
        models.start()
        await ModelSources(models, [str(st.parent)]).register(ModelCreate(model_name="bench", source_url=f"file://{st}",
                                          download_to="node1:dram"))
        store_rates, raw_rates = [], []
        for _ in range(ROUNDS):
            start = time.perf_counter()
            task = await models.copy("bench", CopyRequest(source_device="node1:dram",
                                                          target_device="node2:dram"))
            done = await s.executor.wait(task.task_id)
            elapsed = time.perf_counter() - start
            assert done.status == "completed", done.error
            assert done.result["size"] == size
            store_rates.append(size / elapsed)
            await models.drop_copy("bench", "node2:dram")
            raw_rates.append(await asyncio.to_thread(_socket_copy, size))
            gc.collect()
        return store_rates, raw_rates


def _copy_benchmark() -> list[Result]:
    folder = TMP / "copy"
    folder.mkdir(parents=True, exist_ok=True)
    try:
        st, pt = _write_checkpoint(folder)
        pt.unlink()
        size = st.stat().st_size
        store_rates, raw_rates = asyncio.run(_copy_rounds(st, size))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    ours, raw = statistics.median(store_rates), statistics.median(raw_rates)
    return [
        Result(
            name="model_copy_1GiB_node1_dram_to_node2_dram_bytes_per_second",
            value=ours / MIB, unit="MiB/s",
            baseline="raw loopback TCP sendall/recv_into, same bytes, same run",
            baseline_value=raw / MIB, ratio=ours / raw, goal=">= 0.7",
            note=(f"{size / MIB:.0f} MiB mlp checkpoint held in node1's dram, copied by the model "
                  f"store's copy task (two worker processes); median of {ROUNDS} interleaved "
                  "rounds, timed from the copy request to the task's completion"),
        )
    ]


def run() -> list[Result]:
    try:
        return _load_benchmark() + _copy_benchmark()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
