"""The dependency rule of DESIGN.md (section "Dependency rule"; docs/architecture.md and README's
layout say the same), checked on every module: which gswarm packages each package imports, which
third-party libraries, and, inside `cluster/`, which wings each wing imports. Arrows point inward.

`MAY_IMPORT` and `NAMED` are DESIGN.md's table word for word; `TOOLS` are the libraries the table
does not name but its "Choices" section picks for one need (host metrics, plots, widgets, ...):
utilities, not layers, each allowed only in the packages that have that need."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gswarm_jupyter"
KERNELS = ROOT / "kernels" / "gswarm_kernels"

# DESIGN.md, the gswarm side of each row: the gswarm_jupyter packages a package may import.
MAY_IMPORT: dict[str, set[str]] = {
    "core": set(),
    "backends": {"core"},
    "cluster": {"core", "backends"},
    "profiler": {"core", "backends"},
    "server": {"core", "cluster", "profiler"},
    "client": {"core"},
    "magics": {"client", "core"},
    "widgets": {"client", "core"},
}
# DESIGN.md, the third-party side of each row (dask is distributed's own package).
NAMED: dict[str, set[str]] = {
    "core": {"pydantic", "pydantic_core"},  # "the standard library and pydantic only"
    "gswarm_kernels": {"numpy", "torch", "jax"},
    "backends": {"gswarm_kernels"},
    "cluster": {"distributed", "dask", "grpc"},
    "profiler": {"distributed", "dask", "grpc"},
    "server": {"jupyter_server", "tornado"},
    "client": {"httpx"},
    "magics": set(),
    "widgets": set(),
}
# DESIGN.md's "never" words (also implied by the rows; stated so a breach names the rule).
NEVER: dict[str, set[str]] = {
    "gswarm_kernels": {"gswarm_jupyter"},
    "cluster": {"gswarm_kernels"},
    "profiler": {"gswarm_kernels"},
    "server": {"magics", "widgets", "client"},
    "magics": {"server", "cluster"},
    "widgets": {"server", "cluster"},
}
# Tools: a module (or a package and everything under it) a package may use for one need.
TOOLS: dict[str, dict[str, str]] = {
    "core": {},
    "gswarm_kernels": {
        "ml_dtypes": "bf16 arrays without torch or JAX",
        "optax": "JAX optimisers",
        "safetensors": "checkpoints",
        "tokenizers": "tokenizer.json of Hugging Face model directories",
    },
    "backends": {
        "numpy": "arrays", "torch": "the kernels' frameworks, which the runners drive",
        "jax": "the kernels' frameworks, which the runners drive",
        "pynvml": "GPU metrics (nvidia-ml-py), imported where used",
    },
    "cluster": {"numpy": "arrays", "psutil": "host metrics"},
    "profiler": {
        "psutil": "host metrics", "matplotlib": "a finished session's static plot",
        "grpc_tools": "stub generation from proto/ (make proto)",
    },
    "server": {
        "traitlets": "jupyter_server's configuration", "jupyter_core.paths": "Jupyter's folders",
        "pydantic": "request validation and OpenAPI schemas", "psutil": "host memory",
        "prometheus_client": "the Prometheus exposition",
        "orjson": "request bodies read fast (json.loads stays the rule: server.fastjson)",
    },
    "client": {
        "numpy": "arrays in records", "jupyter_core.paths": "the runtime folder of connection files",
        "tornado.websocket": "the WebSocket streams' client (httpx has none)",
        "tornado.httpclient": "the WebSocket streams' client (httpx has none)",
    },
    "magics": {
        "IPython": "the magics themselves", "tqdm": "progress", "matplotlib": "static plots",
    },
    "widgets": {
        "IPython": "display", "ipywidgets": "the panels", "bqplot": "live charts",
        "sidecar": "the side dashboard", "numpy": "arrays",
    },
}
# Inside cluster/: the wings each wing may import. runtime is the ground; tenancy (the allocation
# and vGPU ledgers) stands on it alone; storage and serving enforce its ledgers where they place.
WINGS: dict[str, set[str]] = {
    "runtime": set(),
    "tenancy": {"runtime"},
    "storage": {"runtime", "tenancy"},
    "serving": {"runtime", "storage", "tenancy"},
    "training": {"runtime", "storage"},
}
OWN = {"gswarm_jupyter", "__future__"}


def imports(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved within its package)."""
    tree = ast.parse(path.read_text(), str(path))
    package = path.relative_to(ROOT if PACKAGE in path.parents else KERNELS.parent)
    parts = package.with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            else:
                found.add(node.module or "")
    return found


def within(name: str, allowed: set[str] | dict[str, str]) -> bool:
    """`name` is one of `allowed` or a module under one of them."""
    return any(name == a or name.startswith(a + ".") for a in allowed)


def sources(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*.py")) if "_proto" not in p.parts]  # generated stubs


def breaches(package: str, root: Path) -> list[str]:
    """Every import of `package`'s modules that its row of the table does not allow."""
    stdlib = sys.stdlib_module_names
    found = []
    for path in sources(root):
        for name in imports(path):
            top, _, rest = name.partition(".")
            inner = rest.split(".")[0]
            where = f"{path.relative_to(ROOT)} imports {name}"
            if top == "gswarm_jupyter" and package != "gswarm_kernels":
                if inner in NEVER.get(package, set()):
                    found.append(f"{where}: {package} never imports {inner}")
                elif inner and inner not in MAY_IMPORT[package] | {package, "_version"}:
                    found.append(f"{where}: not in {package}'s row")
            elif top in NEVER.get(package, set()):
                found.append(f"{where}: {package} never imports {top}")
            elif top in stdlib or top in OWN or top == package:
                continue
            elif not (within(name, NAMED[package]) or within(name, TOOLS[package])):
                found.append(f"{where}: neither in {package}'s row nor among its tools")
    return found


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_each_package_imports_only_what_its_row_allows(package):
    assert breaches(package, PACKAGE / package) == []


def test_kernels_import_only_their_frameworks_and_never_gswarm_jupyter():
    assert breaches("gswarm_kernels", KERNELS) == []


def test_the_tables_agree_with_each_other():
    assert set(NAMED) == set(TOOLS) == set(MAY_IMPORT) | {"gswarm_kernels"}
    for package, never in NEVER.items():
        assert not never & MAY_IMPORT.get(package, set()), package
        assert not never & NAMED[package], package


def test_cluster_is_in_wings_whose_arrows_point_inward():
    cluster = PACKAGE / "cluster"
    wings = {p.name for p in cluster.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert wings == set(WINGS)
    assert [p.name for p in cluster.glob("*.py")] == ["__init__.py"]
    for wing, allowed in WINGS.items():
        for path in sorted((cluster / wing).rglob("*.py")):
            for name in imports(path):
                parts = name.split(".")
                if parts[:2] == ["gswarm_jupyter", "cluster"] and len(parts) > 2:
                    assert parts[2] in allowed | {wing}, f"{path.relative_to(ROOT)} imports {name}"


def test_importing_the_package_is_light():
    code = (
        "import sys, gswarm_jupyter, gswarm_jupyter.client, gswarm_jupyter.core.errors;"
        "heavy = {'torch', 'jax', 'distributed', 'grpc', 'jupyter_server'} & set(sys.modules);"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
