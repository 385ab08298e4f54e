"""The model vault: the offline model folder and its SHA-256 manifest.

`models/MANIFEST.json` lists every entry with per-file sha256 and size;
`models/CHECKSUMS.sha256` mirrors it in `sha256sum` format, so `sha256sum -c
CHECKSUMS.sha256` run inside `models/` verifies the vault without the studio. Both are
written atomically (temp file, fsync, `os.replace`) under an exclusive file lock.
Weights are safetensors only: a file is judged by its content, never by its name.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import re
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aiprod_studio.files import atomic
from aiprod_studio.errors import BadInput, Cancelled, IntegrityError

log = logging.getLogger(__name__)

MANIFEST_NAME = "MANIFEST.json"
CHECKSUMS_NAME = "CHECKSUMS.sha256"
STATE_NAME = ".verify-state.json"
KINDS = ("pipeline", "lora", "qa", "scenarist")
FAMILIES = ("ltx2", "ltx", "clip", "llm")
KIND_DIRS = {"pipeline": "pipelines", "lora": "loras", "qa": "qa", "scenarist": "scenarists"}
HASH_CHUNK = 8 * 1024 * 1024
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".gguf")


def check_relpath(rel: str, what: str = "path") -> str:
    """A vault-relative POSIX path that cannot leave the vault: no `..`, no absolute, no backslash."""
    parts = rel.split("/")
    if (not rel or rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts)
            or (len(rel) > 1 and rel[1] == ":") or "\x00" in rel):
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


class Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    kind: Literal["pipeline", "lora", "qa", "scenarist"]
    family: str
    path: str  # relative to the vault root, POSIX separators
    source: Source | None = None
    license: str = "unknown"
    files: dict[str, FileRecord] = Field(default_factory=dict)
    added: str = ""
    digest: str = ""
    derived_from: str | None = None
    quantization: str | None = None  # "int8" / "fp8" for a saved quantized copy
    test_model: bool = False
    description: str = ""
    defaults: dict[str, Any] = Field(default_factory=dict)

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


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise BadInput(f"kind must be one of {', '.join(KINDS)}, got {kind!r}", field="kind")
    return kind


def check_name(name: str) -> str:
    """An entry name is a plain folder name: letters, digits, `.-_+`, not hidden, ≤ 100 chars."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}", name) or ".." in name:
        raise ValueError(f"name must be a plain name (letters, digits, . _ + -), got {name!r}")
    return name


# -- hashing and file checks ---------------------------------------------------------------
def stat_key(st: os.stat_result) -> list[int]:
    """What must stay equal for a file's last hash to still hold (the verify stat cache)."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def sha256_file(path: Path, chunk: int = HASH_CHUNK, on_bytes: Callable[[int], None] | None = None,
                cancel: threading.Event | None = None) -> str:
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


def hash_with_stat(path: Path, **kwargs: Any) -> tuple[str, list[int] | None]:
    """(sha256, stat key) — the key is None when the file changed while it was being hashed."""
    before = stat_key(path.stat())
    digest = sha256_file(path, **kwargs)
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
            raise IntegrityError(f"{path}: tensor {key!r} has offsets {offsets} outside the file's {data_len} data bytes")


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
        raise IntegrityError(f"{path}: looks like a pickle or torch.save archive; only safetensors weights "
                             "are accepted")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class Vault:
    """The vault folder. Cheap to construct; reads the manifest on demand."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def checksums_path(self) -> Path:
        return self.root / CHECKSUMS_NAME

    @property
    def state_path(self) -> Path:
        """The verify stat cache and last results (machine-local, not part of any bundle)."""
        return self.root / STATE_NAME

    # -- reading -------------------------------------------------------------------------
    def manifest(self) -> Manifest:
        if not self.manifest_path.exists():
            return Manifest()
        try:
            return Manifest.model_validate_json(self.manifest_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise IntegrityError(f"{self.manifest_path}: unreadable manifest: {exc}") from None

    def entries(self, kind: str | None = None) -> list[Entry]:
        return [e for e in self.manifest().entries if kind is None or e.kind == kind]

    def get(self, name: str, kind: str | None = None, field: str = "model") -> Entry:
        for e in self.entries(kind):
            if e.name == name:
                return e
        known = ", ".join(e.name for e in self.entries(kind)) or "none"
        what = f"{kind} " if kind else ""
        raise BadInput(f"{field} {name!r} is not a {what}entry of the vault {self.root} (known: {known})",
                       field=field)

    def check_new_name(self, name: str, field: str = "name") -> str:
        """A name a new entry may take: plain, and not already in the manifest."""
        try:
            check_name(name)
        except ValueError as exc:
            raise BadInput(str(exc).replace("name", field, 1), field=field) from None
        if any(e.name == name for e in self.entries()):
            raise BadInput(f"{field} {name!r} is already an entry of the vault", field=field)
        return name

    def entry_dir(self, entry: Entry) -> Path:
        return self.root / entry.path

    def file_path(self, entry: Entry, rel: str) -> Path:
        return self.root / entry.vault_path(rel)

    # -- checking ------------------------------------------------------------------------
    def quick_check(self, entry: Entry) -> list[str]:
        """Problems of one entry by the quick verify (stat cache; changed files are re-hashed)."""
        from aiprod_studio.vault.verify import verify

        return [str(p) for p in verify(self, [entry.name], record_unchanged=False).entries[0].problems]

    def require_ok(self, entry: Entry) -> None:
        """Refuse an entry whose files do not match the manifest; the error names each file."""
        problems = self.quick_check(entry)
        if problems:
            raise IntegrityError(f"vault entry {entry.name!r} failed its check: " + "; ".join(problems)
                                 + " (see `aiprod-studio vault verify --deep`)")

    # -- writing -------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive lock over the vault's bookkeeping files (manifest, checksums, state)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".manifest.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, manifest: Manifest) -> None:
        manifest.entries.sort(key=lambda e: e.name)
        atomic.write_text(self.manifest_path, manifest.model_dump_json(indent=2, exclude_none=False) + "\n")
        lines = []
        for e in manifest.entries:
            for rel in sorted(e.files):
                lines.append(f"{e.files[rel].sha256}  {e.vault_path(rel)}\n")
        atomic.write_text(self.checksums_path, "".join(lines))

    def hash_tree(self, rel_path: str, on_bytes: Callable[[int], None] | None = None,
                  cancel: threading.Event | None = None) -> tuple[dict[str, FileRecord], dict[str, list[int]]]:
        """Hash every file below `rel_path` (a folder or one file), refusing unsafe weights.

        Returns the file records and, for the stat cache, each file's stat key.
        """
        base = self.root / rel_path
        if base.is_symlink():
            raise IntegrityError(f"{base}: symlinks are not allowed in the vault")
        paths = [base] if base.is_file() else sorted(base.rglob("*"))
        files: dict[str, FileRecord] = {}
        stats: dict[str, list[int]] = {}
        for p in paths:
            if p.is_symlink():
                raise IntegrityError(f"{p}: symlinks are not allowed in the vault")
            if p.is_file():
                check_weight_file(p)
                rel = p.name if p == base else p.relative_to(base).as_posix()
                digest, key = hash_with_stat(p, on_bytes=on_bytes, cancel=cancel)
                files[rel] = FileRecord(sha256=digest, size=p.stat().st_size)
                if key is not None:
                    stats[rel] = key
        if not files:
            raise BadInput(f"{base} holds no files", field="path")
        return files, stats

    def record(self, name: str, kind: str, family: str, rel_path: str, files: dict[str, FileRecord] | None = None,
               stats: dict[str, list[int]] | None = None, **fields: Any) -> Entry:
        """Add (or replace) the entry `name` for the files at `rel_path`.

        The files are hashed here unless the caller already hashed them (`files`, and the
        stat keys it saw in `stats`, which seed the quick-verify cache).
        """
        check_kind(kind)
        try:
            check_name(name)
        except ValueError as exc:
            raise BadInput(str(exc), field="name") from None
        if files is None:
            files, stats = self.hash_tree(rel_path)
        entry = Entry(name=name, kind=kind, family=family, path=Path(rel_path).as_posix(), files=files,
                      added=now(), digest=entry_digest(files), **fields)
        with self.locked():
            manifest = self.manifest()
            manifest.entries = [e for e in manifest.entries if e.name != name] + [entry]
            self._write(manifest)
        from aiprod_studio.vault.verify import remember_hashes

        remember_hashes(self, entry, stats or {})
        log.info("vault: recorded %s (%s, %d files, %d bytes)", name, kind, len(files), entry.total_size)
        return entry
