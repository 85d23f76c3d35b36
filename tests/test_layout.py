"""The dependency rule of DESIGN.md (and docs/architecture.md), checked on every module: arrows
point inward, between packages and between the cluster's wings."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gswarm_jupyter"
KERNELS = ROOT / "kernels" / "gswarm_kernels"

# For each package: the gswarm_jupyter packages it may import. Third-party imports are checked
# where the rule names them (core: stdlib + pydantic only; client/magics/widgets: no server side).
MAY_IMPORT = {
    "core": set(),
    "backends": {"core"},
    "cluster": {"core", "backends"},
    "profiler": {"core", "backends"},
    "server": {"core", "cluster", "profiler"},
    "client": {"core"},
    "magics": {"client", "core"},
    "widgets": {"client", "core"},
}
# Inside cluster/: the wings it may import (runtime is the ground; tenancy/ holds the ledgers that
# storage and serving enforce where they place bytes and run batches).
WINGS = {
    "runtime": set(),
    "tenancy": {"runtime"},
    "storage": {"runtime", "tenancy"},
    "serving": {"runtime", "storage", "tenancy"},
    "training": {"runtime", "storage", "tenancy"},
}
CORE_THIRD_PARTY = {"pydantic", "pydantic_core", "typing_extensions"}
NEVER_IN_FRONT = {"tornado", "jupyter_server", "distributed", "dask", "grpc", "torch", "jax"}


def imports(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved within gswarm_jupyter)."""
    tree = ast.parse(path.read_text(), str(path))
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                found.add(".".join([*base, node.module] if node.module else base))
            else:
                found.add(node.module or "")
    return found


def modules(package: str) -> list[Path]:
    return sorted((PACKAGE / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_each_package_imports_only_what_the_rule_allows(package):
    allowed = MAY_IMPORT[package] | {package}
    stdlib = sys.stdlib_module_names
    for path in modules(package):
        if "_proto" in path.parts:  # generated stubs
            continue
        for name in imports(path):
            top, _, rest = name.partition(".")
            if top == "gswarm_jupyter":
                inner = rest.split(".")[0]
                if inner and inner not in {"__init__", "_version", "testing"}:
                    assert inner in allowed, f"{path.relative_to(ROOT)} imports {name}"
            elif package == "core":
                assert top in stdlib or top in CORE_THIRD_PARTY or top == "", (
                    f"{path.relative_to(ROOT)} imports {name}: core takes stdlib and pydantic only"
                )
            elif package in {"client", "magics", "widgets"}:
                assert top not in NEVER_IN_FRONT or (package == "client" and top == "tornado"), (
                    f"{path.relative_to(ROOT)} imports {name}"
                )
            # Only backends/ reaches the kernels; cluster/ and profiler/ go through it.
            assert top != "gswarm_kernels" or package == "backends", (
                f"{path.relative_to(ROOT)} imports {name}"
            )


def test_cluster_is_in_wings_whose_arrows_point_inward():
    cluster = PACKAGE / "cluster"
    assert {p.name for p in cluster.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(
        WINGS
    )
    assert [p.name for p in cluster.glob("*.py")] == ["__init__.py"]
    for wing, allowed in WINGS.items():
        for path in sorted((cluster / wing).rglob("*.py")):
            for name in imports(path):
                parts = name.split(".")
                if parts[:2] == ["gswarm_jupyter", "cluster"] and len(parts) > 2:
                    assert parts[2] in allowed | {wing}, f"{path.relative_to(ROOT)} imports {name}"


def test_kernels_never_import_gswarm_jupyter():
    for path in sorted(KERNELS.rglob("*.py")):
        assert not any(n.startswith("gswarm_jupyter") for n in imports(path)), path


def test_importing_the_package_is_light():
    code = (
        "import sys, gswarm_jupyter, gswarm_jupyter.client, gswarm_jupyter.core.errors;"
        "heavy = {'torch', 'jax', 'distributed', 'grpc', 'jupyter_server'} & set(sys.modules);"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
