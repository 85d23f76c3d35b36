"""Where a model's weights come from: `builtin://`, `file://` (only under the model roots) and
`http(s)://`, as API.md section 4 fixes them."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from .errors import Forbidden, InvalidRequest, NotFound
from .redact import redact_url

SourceKind = Literal["builtin", "file", "http"]
SCHEMES: dict[str, SourceKind] = {
    "builtin": "builtin",
    "file": "file",
    "http": "http",
    "https": "http",
}


@dataclass(frozen=True, slots=True)
class Source:
    kind: SourceKind
    url: str  # as given, credentials included: only in an unfinished task's payload, never shown
    path: str | None = None  # file://: the resolved path, checked against the roots

    def params(self) -> dict[str, str | None]:
        """What a worker op needs (plain data, picklable)."""
        return {"kind": self.kind, "url": self.url, "path": self.path}


def parse_source(url: str, roots: list[str], field: str = "source_url") -> Source:
    """Classify `url`; an unknown scheme is `InvalidRequest`, a file outside the roots `Forbidden`."""
    scheme = urlsplit(url).scheme.lower()
    kind = SCHEMES.get(scheme)
    if kind is None:
        raise InvalidRequest(
            f"unknown {field} scheme {scheme + '://' if scheme else url!r}: use builtin://, "
            "file://, http:// or https://",
            {"field": field, "allowed": sorted(SCHEMES)},
        )
    if kind == "http" and not urlsplit(url).hostname:
        raise InvalidRequest(f"{field} {redact_url(url)!r} has no host", {"field": field})
    if kind == "file":
        return Source("file", url, str(resolve_under_roots(file_path(url, field), roots, field)))
    return Source(kind, url)


def file_path(url: str, field: str = "source_url") -> str:
    """The path of a `file://` URL (`file:///a/b`, or `file://localhost/a/b`)."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise InvalidRequest(f"file URL {redact_url(url)!r} names a host", {"field": field})
    return unquote(parts.path)


def resolve_under_roots(
    path: str, roots: Sequence[str | os.PathLike[str]], field: str = "source_url"
) -> Path:
    """`path` with symlinks and `..` resolved, if it lies under one of `roots`; else `Forbidden`.
    A path under a root that does not exist is `NotFound`. Errors echo `path` as the client sent
    it, never what it resolves to (which would tell where the roots and links lead)."""
    resolved = Path(os.path.expanduser(path)).resolve()
    allowed = [Path(os.path.expanduser(r)).resolve() for r in roots]
    if not any(resolved == root or resolved.is_relative_to(root) for root in allowed):
        raise Forbidden(f"{path!r} is outside the allowed roots", {"field": field, "path": path})
    if not resolved.is_file():
        raise NotFound(f"no file at {path!r}", {"field": field, "path": path})
    return resolved
