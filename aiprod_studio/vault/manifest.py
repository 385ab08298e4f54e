"""The manifest: what the vault holds, file by file, and how a file is checked.

`models/MANIFEST.json` lists every entry (name, kind, family, path, source, license) with
per-file sha256 and size; `models/CHECKSUMS.sha256` mirrors it in `sha256sum` format, so
`sha256sum -c CHECKSUMS.sha256` run inside `models/` verifies the vault without the studio.
Both are written atomically (`write_manifest`). Weights are safetensors only: a file is
judged by its content, never by its name (`check_weight_file`).

This is the bottom of the vault: it knows files and hashes, not the folder's locks, caches
or checks (`folder`, `verify`, `staging`, `store` build on it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import struct
import threading
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aiprod_studio.choices import VAULT_KINDS, StoredQuantization, VaultKind
from aiprod_studio.errors import BadInput, Cancelled, IntegrityError
from aiprod_studio.files import atomic

MANIFEST_NAME = "MANIFEST.json"
CHECKSUMS_NAME = "CHECKSUMS.sha256"
STATE_NAME = ".verify-state.json"
HASH_CHUNK = 8 * 1024 * 1024
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".gguf")
# the folder of each kind of entry inside the vault
KIND_DIRS: dict[VaultKind, str] = {
    "pipeline": "pipelines",
    "lora": "loras",
    "qa": "qa",
    "scenarist": "scenarists",
    "upsampler": "upsamplers",
}


def check_relpath(rel: str, what: str = "path") -> str:
    """A vault-relative POSIX path that cannot leave the vault: no `..`, no absolute, no backslash."""
    parts = rel.split("/")
    if (
        not rel
        or rel.startswith("/")
        or "\\" in rel
        or any(p in ("", ".", "..") for p in parts)
        or (len(rel) > 1 and rel[1] == ":")
        or "\x00" in rel
    ):
        raise ValueError(f"{what} {rel!r} is not a plain relative path inside the vault")
    return rel


class FileRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repo: str
    revision: str = Field(pattern=r"^[0-9a-f]{40}$")


class ImportedFile(BaseModel):
    """The single-file checkpoint an entry was converted from (`vault import-checkpoint`)."""

    model_config = ConfigDict(extra="forbid")
    file: str  # the source file's name (not its path: nothing about the machine it came from)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    like: str  # the entry whose configuration (and other components) it was converted with
    components: list[str] = Field(default_factory=list)  # the components taken from the file


class Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: VaultKind
    family: str
    path: str  # relative to the vault root, POSIX separators
    source: Source | None = None
    license: str = "unknown"
    files: dict[str, FileRecord] = Field(default_factory=dict)
    added: str = ""
    digest: str = ""
    derived_from: str | None = None
    quantization: StoredQuantization | None = None  # set on a saved quantized copy
    test_model: bool = False
    description: str = ""
    defaults: dict[str, Any] = Field(default_factory=dict)
    variant: str | None = None  # "distilled" for a few-step distilled model (from the catalog or the import)
    generation: str | None = None  # a LoRA: the model generation it was trained for ("2.0", "2.3", "2.5")
    imported_from: ImportedFile | None = None

    @field_validator("name")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        check_name(v)
        return v

    @field_validator("path")
    @classmethod
    def _safe_path(cls, v: str) -> str:
        return check_relpath(v, "entry path")

    @field_validator("files")
    @classmethod
    def _safe_files(cls, v: dict[str, FileRecord]) -> dict[str, FileRecord]:
        for rel in v:
            check_relpath(rel, "file path")
        return v

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files.values())

    @property
    def single_file(self) -> bool:
        """True for an entry that is one file (a LoRA, a QA model) rather than a folder."""
        return len(self.files) == 1 and next(iter(self.files)) == PurePosixPath(self.path).name

    def vault_path(self, rel: str) -> str:
        """The vault-relative path of one of the entry's files."""
        return self.path if self.single_file and rel == PurePosixPath(self.path).name else f"{self.path}/{rel}"


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = 1
    entries: list[Entry] = Field(default_factory=list)


def check_kind(kind: str) -> VaultKind:
    for known in VAULT_KINDS:
        if kind == known:
            return known
    raise BadInput(f"kind must be one of {', '.join(VAULT_KINDS)}, got {kind!r}", field="kind")


def check_name(name: str) -> str:
    """An entry name is a plain folder name: letters, digits, `.-_+`, not hidden, ≤ 100 chars."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}", name) or ".." in name:
        raise ValueError(f"name must be a plain name (letters, digits, . _ + -), got {name!r}")
    return name


# -- hashing and file checks ---------------------------------------------------------------
def stat_key(st: os.stat_result) -> list[int]:
    """What must stay equal for a file's last hash to still hold (the verify stat cache)."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def sha256_file(
    path: Path,
    chunk: int = HASH_CHUNK,
    on_bytes: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
) -> str:
    """Stream a file through SHA-256 in large chunks (hashlib releases the GIL while hashing).

    `on_bytes(n)` is told of each chunk; a set `cancel` event stops it with `Cancelled`.
    """
    h = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
            if on_bytes is not None:
                on_bytes(n)
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"hashing {path} was cancelled")
    return h.hexdigest()


def hash_with_stat(
    path: Path, on_bytes: Callable[[int], None] | None = None, cancel: threading.Event | None = None
) -> tuple[str, list[int] | None]:
    """(sha256, stat key) — the key is None when the file changed while it was being hashed."""
    before = stat_key(path.stat())
    digest = sha256_file(path, on_bytes=on_bytes, cancel=cancel)
    after = stat_key(path.stat())
    return digest, (after if after == before else None)


def entry_digest(files: dict[str, FileRecord]) -> str:
    """One hash for a whole entry: sha256 over its sorted `sha256sum` lines."""
    lines = "".join(f"{files[p].sha256}  {p}\n" for p in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def check_safetensors(path: Path) -> None:
    """Refuse anything that is not a well-formed safetensors file, by content.

    Reads only the header: 8-byte little-endian length, a JSON header of at most
    100 MB, and every tensor's offsets inside the file. A pickle renamed
    `.safetensors` fails here and is never unpickled.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise IntegrityError(f"{path}: not a safetensors file (only {len(head)} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_SAFETENSORS_HEADER or n + 8 > size:
            raise IntegrityError(f"{path}: not a safetensors file (header length {n} does not fit a {size}-byte file)")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise IntegrityError(f"{path}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise IntegrityError(f"{path}: not a safetensors file (header is not an object)")
    data_len = size - 8 - n
    for key, info in header.items():
        if key == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and 0 <= offsets[0] <= offsets[1] <= data_len):
            raise IntegrityError(
                f"{path}: tensor {key!r} has offsets {offsets} outside the file's {data_len} data bytes"
            )


def check_weight_file(path: Path) -> None:
    """Weights must be safetensors, judged by content.

    A `.safetensors` file must parse as one; any other file is refused if its name says
    it is another weight format, or if its first bytes are a pickle stream or a zip
    archive (what `torch.save` writes), whatever its name.
    """
    if path.suffix == ".safetensors":
        check_safetensors(path)
        return
    if path.suffix in WEIGHT_SUFFIXES:
        raise IntegrityError(f"{path}: only safetensors weights are accepted, not {path.suffix}")
    with open(path, "rb") as f:
        head = f.read(4)
    if (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5) or head == b"PK\x03\x04":
        raise IntegrityError(
            f"{path}: looks like a pickle or torch.save archive; only safetensors weights are accepted"
        )


def now() -> str:
    """The time of a record or a check, as the manifest and the verify cache write it."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# -- the files -------------------------------------------------------------------------------
def read_manifest(path: Path) -> Manifest:
    """The manifest at `path` (an empty one when there is none); `IntegrityError` if unreadable."""
    if not path.exists():
        return Manifest()
    try:
        return Manifest.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise IntegrityError(f"{path}: unreadable manifest: {exc}") from None


def write_manifest(root: Path, manifest: Manifest) -> None:
    """Write `root`'s MANIFEST.json and its CHECKSUMS.sha256 mirror, each atomically.

    The caller holds the folder's lock where other writers may be about (`VaultFolder.locked`).
    """
    manifest.entries.sort(key=lambda e: e.name)
    atomic.write_text(root / MANIFEST_NAME, manifest.model_dump_json(indent=2, exclude_none=False) + "\n")
    lines = [f"{e.files[rel].sha256}  {e.vault_path(rel)}\n" for e in manifest.entries for rel in sorted(e.files)]
    atomic.write_text(root / CHECKSUMS_NAME, "".join(lines))
