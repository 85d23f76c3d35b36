"""Hugging Face model directories as one stored copy, and the archives they arrive in.

A model directory (config.json, safetensors weights in one file or shards with their index,
tokenizer.json, sentence-transformers' modules.json and pooling config) is stored as one
uncompressed tar, "packed": its JSON and text files and its top-level safetensors files in name
order, with fixed headers (mtime 0, mode 0644, no owner), plus `gswarm.json` naming the model type
it is served as. The same files always pack to the same bytes, so the checksum measures every file
and every tier (disk, dram, GPUs) moves, copies and compares the model as one byte string, with
the copy engine's atomicity; tensors are views into it (a tar keeps each file's bytes in one
piece). Other files (pickled weights, ONNX exports, READMEs) are left out: they are never served.

A directory is read once, completely, before it is packed (every tensor's name and shape checked),
so a copy that exists is a model that loads. Archives (.zip, .tar, .tar.gz, ...) are unpacked into
a staging folder first: every member must be a regular file or folder inside it (absolute names,
`..`, links and devices are refused), the model is the archive's top or its one folder, and the
staging folder goes however the unpacking ends. Every refusal is `INVALID_REQUEST`.
"""

from __future__ import annotations

import io
import json
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from ...core.errors import InvalidRequest

FORMAT = "huggingface"
SUFFIX = ".tar"
META = "gswarm.json"  # {"model_type", "num_labels"?}: what the packed model is served as
WEIGHTS = ".safetensors"
TEXTS = (".json", ".txt")
MAX_DEPTH = 2  # text files of module folders (1_Pooling/config.json); weights at the top only
_FIELD = {"field": "source_url"}
_TAR_MAGIC = b"ustar"


# -- packing ------------------------------------------------------------------------------------


def packable(root: Path, base: Path | None = None) -> list[tuple[str, Path]]:
    """(name in the pack, file) of what a directory's copy keeps, in name order. A link that
    leads out of `base` (default: the directory) is refused; a model root as `base` lets a
    Hugging Face cache snapshot's links into its blobs through."""
    base = (base or root).resolve()
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        name = rel.as_posix()
        weights = path.suffix == WEIGHTS and len(rel.parts) == 1
        texts = path.suffix in TEXTS and len(rel.parts) <= MAX_DEPTH and name != META
        if not (weights or texts):
            continue
        if not path.resolve().is_relative_to(base):
            raise InvalidRequest(f"model directory: {name} links out of the allowed folder",
                                 _FIELD)
        out.append((name, path))
    return out


def size_of(root: Path, base: Path | None = None) -> int:
    """Bytes of the files a directory's copy keeps (headers aside)."""
    return sum(path.stat().st_size for _, path in packable(root, base))


def pack(root: Path, out: Path, model_type: str | None = None,
         num_labels: int | None = None, base: Path | None = None) -> None:
    """Check the model directory at `root` (read whole) and write its packed copy to `out`
    (links may lead anywhere under `base`, default `root`)."""
    from ...backends.hf_model import check_dir

    if not (root / "config.json").is_file():
        raise InvalidRequest("model directory: expected config.json, got none", _FIELD)
    spec = check_dir(root, model_type, num_labels).spec
    meta: dict[str, Any] = {"model_type": spec.model_type}
    if spec.model_type == "classifier":
        meta["num_labels"] = len(spec.labels)
    files = packable(root, base)
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
        _add(tar, META, json.dumps(meta, sort_keys=True).encode())
        for name, path in files:
            _add(tar, name, path.read_bytes())


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


# -- reading a packed copy ----------------------------------------------------------------------


def is_packed(head: bytes) -> bool:
    """Whether the first 512 bytes are a tar header (a packed model)."""
    return head[257:262] == _TAR_MAGIC


def members(buffer: Any) -> dict[str, tuple[int, int]]:
    """name -> (offset, size) of each file's bytes in a packed copy (ValueError if it is none)."""
    try:
        with tarfile.open(fileobj=_Reader(buffer), mode="r:") as tar:
            return {m.name: (m.offset_data, m.size) for m in tar.getmembers() if m.isfile()}
    except tarfile.TarError as exc:
        raise ValueError(f"format: not a packed model directory ({exc})") from None


def texts(buffer: Any, index: dict[str, tuple[int, int]]) -> dict[str, str]:
    """The packed copy's text files (JSON, vocabularies), name -> text."""
    view = memoryview(buffer).cast("B")
    out = {}
    for name, (offset, size) in index.items():
        if name.endswith(TEXTS):
            try:
                out[name] = bytes(view[offset : offset + size]).decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"format: {name} is not UTF-8 text") from None
    return out


class _Reader(io.RawIOBase):
    """A read-only file over a buffer (numpy bytes), so tarfile indexes it without a copy."""

    def __init__(self, buffer: Any) -> None:
        self._view = memoryview(buffer).cast("B")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = max(0, min(len(b), len(self._view) - self._pos))
        b[:n] = self._view[self._pos : self._pos + n]
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


# -- archives -----------------------------------------------------------------------------------


def archive_kind(path: Path) -> str | None:
    """`zip` or `tar` (compressed or not) for an archive of a model directory; None for anything
    else (a TorchScript file is a zip too, told apart by its data.pkl)."""
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")) or is_packed(head):
        return "tar"
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError):
            return None
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return None
        return "zip"
    return None


def unpack(archive: Path, dest: Path, limit: int | None = None) -> Path:
    """Unpack `archive` into the empty folder `dest` (at most `limit` bytes of files); answers the
    model's folder in it (the top, or its one folder, holding config.json)."""
    kind = archive_kind(archive)
    try:
        if kind == "zip":
            _unzip(archive, dest, limit)
        elif kind == "tar":
            _untar(archive, dest, limit)
        else:
            raise InvalidRequest("archive: expected a .zip or .tar(.gz) archive", _FIELD)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise InvalidRequest(
            f"archive: not a readable zip or tar archive ({type(exc).__name__}: {exc})", _FIELD
        ) from None
    if (dest / "config.json").is_file():
        return dest
    entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and (entries[0] / "config.json").is_file():
        return entries[0]
    raise InvalidRequest(
        "archive: expected config.json at its top or in its one folder, got none", _FIELD
    )


def _member_path(dest: Path, name: str) -> Path:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise InvalidRequest(f"archive: member {name!r} escapes the archive",
                             {**_FIELD, "member": name})
    return dest.joinpath(*[p for p in path.parts if p not in ("", ".")])


def _count(total: int, limit: int | None) -> int:
    if limit is not None and total > limit:
        raise InvalidRequest(f"archive: unpacks to more than {limit} bytes", {**_FIELD,
                             "limit": limit})
    return total


def _untar(archive: Path, dest: Path, limit: int | None) -> None:
    total = 0
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            target = _member_path(dest, member.name)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if not member.isfile():
                raise InvalidRequest(
                    f"archive: member {member.name!r} is a link or device, not a file",
                    {**_FIELD, "member": member.name})
            total = _count(total + member.size, limit)
            source = tar.extractfile(member)
            assert source is not None
            target.parent.mkdir(parents=True, exist_ok=True)
            with source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)


def _unzip(archive: Path, dest: Path, limit: int | None) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _member_path(dest, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise InvalidRequest(
                    f"archive: member {info.filename!r} is a link, not a file",
                    {**_FIELD, "member": info.filename})
        _count(sum(info.file_size for info in infos), limit)
        for info in infos:
            target = _member_path(dest, info.filename)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
