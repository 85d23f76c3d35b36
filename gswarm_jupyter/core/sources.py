"""Where a model's weights come from: `builtin://`, `file://` (only under the model roots: a file,
or a folder holding a Hugging Face model directory), `http(s)://`, and `pkg://<distribution>/<path>`
(a file or folder an installed Python distribution ships, as its RECORD lists it), as API.md
section 4 fixes them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal
from urllib.parse import unquote, urlsplit

from .errors import Forbidden, InvalidRequest, NotFound
from .redact import redact_url

SourceKind = Literal["builtin", "file", "http", "pkg"]
SCHEMES: dict[str, SourceKind] = {
    "builtin": "builtin",
    "file": "file",
    "http": "http",
    "https": "http",
    "pkg": "pkg",
}


@dataclass(frozen=True, slots=True)
class Source:
    kind: SourceKind
    url: str  # as given, credentials included: only in an unfinished task's payload, never shown
    path: str | None = None  # file://: the resolved path, checked against the roots
    base: str | None = None  # file://: the model root it lies under (where its links may lead)

    def params(self) -> dict[str, str | None]:
        """What a worker op needs (plain data, picklable)."""
        return {"kind": self.kind, "url": self.url, "path": self.path, "base": self.base}


def parse_source(url: str, roots: list[str], field: str = "source_url") -> Source:
    """Classify `url`; an unknown scheme is `InvalidRequest`, a file outside the roots `Forbidden`."""
    scheme = urlsplit(url).scheme.lower()
    kind = SCHEMES.get(scheme)
    if kind is None:
        raise InvalidRequest(
            f"unknown {field} scheme {scheme + '://' if scheme else url!r}: use builtin://, "
            "file://, http://, https:// or pkg://",
            {"field": field, "allowed": sorted(SCHEMES)},
        )
    if kind == "http" and not urlsplit(url).hostname:
        raise InvalidRequest(f"{field} {redact_url(url)!r} has no host", {"field": field})
    if kind == "file":
        path = resolve_under_roots(file_path(url, field), roots, field, folders=True)
        return Source("file", url, str(path), str(root_of(path, roots)))
    if kind == "pkg":
        return Source("pkg", url, str(package_path(url, field)))
    return Source(kind, url)


def root_of(resolved: Path, roots: Sequence[str | os.PathLike[str]]) -> Path:
    """The innermost of `roots` (resolved) that holds the resolved path `resolved`."""
    allowed = [Path(os.path.expanduser(r)).resolve() for r in roots]
    held = [root for root in allowed if resolved == root or resolved.is_relative_to(root)]
    return max(held, key=lambda root: len(root.parts))


def package_path(url: str, field: str = "source_url") -> Path:
    """Where the file or folder of a `pkg://<distribution>/<path>` URL is installed here. The
    path must be one the distribution's RECORD lists (a file, or a folder of listed files);
    `NotFound` for an unknown distribution or path."""
    from importlib import metadata

    parts = urlsplit(url)
    dist_name, inner = parts.netloc, unquote(parts.path).strip("/")
    pure = PurePosixPath(inner)
    if not dist_name or not inner or pure.is_absolute() or ".." in pure.parts:
        raise InvalidRequest(
            f"{field}: expected pkg://<distribution>/<path inside it>, got {url!r}",
            {"field": field},
        )
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise NotFound(f"no installed distribution {dist_name!r}",
                       {"field": field, "distribution": dist_name}) from None
    prefix = pure.as_posix()
    listed = [f for f in dist.files or [] if f.as_posix() == prefix
              or f.as_posix().startswith(prefix + "/")]
    if not listed:
        raise NotFound(f"distribution {dist_name!r} ships no {prefix!r}",
                       {"field": field, "distribution": dist_name, "path": prefix})
    path = Path(str(dist.locate_file(prefix))).resolve()
    if not path.exists():
        raise NotFound(f"{prefix!r} of {dist_name!r} is not installed here",
                       {"field": field, "distribution": dist_name, "path": prefix})
    return path


def file_path(url: str, field: str = "source_url") -> str:
    """The path of a `file://` URL (`file:///a/b`, or `file://localhost/a/b`)."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise InvalidRequest(f"file URL {redact_url(url)!r} names a host", {"field": field})
    return unquote(parts.path)


def resolve_under_roots(
    path: str, roots: Sequence[str | os.PathLike[str]], field: str = "source_url",
    folders: bool = False,
) -> Path:
    """`path` with symlinks and `..` resolved, if it lies under one of `roots`; else `Forbidden`.
    A path under a root that does not exist is `NotFound`. Errors echo `path` as the client sent
    it, never what it resolves to (which would tell where the roots and links lead). With
    `folders`, a folder is allowed too (a Hugging Face model directory)."""
    resolved = Path(os.path.expanduser(path)).resolve()
    allowed = [Path(os.path.expanduser(r)).resolve() for r in roots]
    if not any(resolved == root or resolved.is_relative_to(root) for root in allowed):
        raise Forbidden(f"{path!r} is outside the allowed roots", {"field": field, "path": path})
    if not resolved.is_file() and not (folders and resolved.is_dir()):
        raise NotFound(f"no file at {path!r}", {"field": field, "path": path})
    return resolved
