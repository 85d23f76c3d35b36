"""Model weights straight from a source address, for the sources a node can make by itself:
`builtin://` (weights from the seed) and safetensors checkpoint files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..core.errors import Forbidden, InvalidRequest, NotFound, NotImplementedFeature

Weights = tuple[str, dict[str, Any], dict[str, Any]]  # (arch, config, params)


def describe_source(source_url: str, model_roots: list[str]) -> tuple[str, dict[str, Any]]:
    """(arch, normalised config) of a source, checked without making its weights."""
    from gswarm_kernels import parse_builtin_url, read_checkpoint_metadata

    scheme = urlsplit(source_url).scheme
    if scheme == "builtin":
        try:
            spec = parse_builtin_url(source_url)
        except ValueError as exc:
            raise InvalidRequest(f"model_path: {exc}", {"field": "model_path"}) from None
        return spec.arch, spec.config
    if scheme in ("", "file"):
        path = checked_path(source_url, model_roots)
        try:
            meta = read_checkpoint_metadata(path)
        except Exception as exc:  # safetensors raises its own error type for a foreign file
            raise InvalidRequest(
                f"model_path: not a readable checkpoint: {exc}", {"field": "model_path"}
            ) from None
        return str(meta["arch"]), dict(meta["config"])
    if scheme in ("http", "https"):
        raise NotImplementedFeature(
            "http(s) sources are downloaded by the model store; register the model there first",
            {"field": "model_path"},
        )
    raise InvalidRequest(
        f"model_path: unknown scheme {scheme!r}: expected builtin://, file:// or a path",
        {"field": "model_path"},
    )


def checked_path(source_url: str, model_roots: list[str]) -> str:
    """The local path of a `file://` address or plain path, which must lie under a model root."""
    parts = urlsplit(source_url)
    raw = unquote(parts.path) if parts.scheme == "file" else source_url
    path = Path(raw).expanduser().resolve()
    for root in model_roots:
        if path.is_relative_to(Path(root).expanduser().resolve()):
            if not path.is_file():
                raise NotFound(f"no checkpoint file at {path}", {"field": "model_path"})
            return os.fspath(path)
    raise Forbidden(f"{path} is outside the allowed model roots", {"field": "model_path"})


def load_source(source_url: str) -> Weights:
    """(arch, config, params) made from the source on this node."""
    from gswarm_kernels import init_params, parse_builtin_url, read_checkpoint

    if source_url.startswith("builtin://"):
        spec = parse_builtin_url(source_url)
        return spec.arch, spec.config, init_params(spec.arch, spec.config, spec.seed)
    parts = urlsplit(source_url)
    path = unquote(parts.path) if parts.scheme == "file" else source_url
    checkpoint = read_checkpoint(path)
    return checkpoint.arch, checkpoint.config, checkpoint.params


def param_bytes(arch: str, config: dict[str, Any]) -> int:
    """float32 bytes of the model's parameters (what a loaded copy holds)."""
    from math import prod

    from gswarm_kernels import param_shapes

    return 4 * sum(prod(shape) for shape in param_shapes(arch, config).values())
