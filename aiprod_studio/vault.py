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
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aiprod_studio import atomic
from aiprod_studio.errors import BadInput, IntegrityError

log = logging.getLogger(__name__)

MANIFEST_NAME = "MANIFEST.json"
CHECKSUMS_NAME = "CHECKSUMS.sha256"
KINDS = ("pipeline", "lora", "qa", "scenarist")
FAMILIES = ("ltx2", "ltx", "clip", "llm")
KIND_DIRS = {"pipeline": "pipelines", "lora": "loras", "qa": "qa", "scenarist": "scenarists"}
HASH_CHUNK = 8 * 1024 * 1024
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".gguf")


class FileRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sha256: str
    size: int


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repo: str
    revision: str


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
    test_model: bool = False
    description: str = ""
    defaults: dict[str, Any] = Field(default_factory=dict)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files.values())


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = 1
    entries: list[Entry] = Field(default_factory=list)


# -- hashing and file checks ---------------------------------------------------------------
def sha256_file(path: Path, chunk: int = HASH_CHUNK) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


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
    """Weights must be safetensors; any other weight format is refused."""
    if path.suffix == ".safetensors":
        check_safetensors(path)
    elif path.suffix in WEIGHT_SUFFIXES:
        raise IntegrityError(f"{path}: only safetensors weights are accepted, not {path.suffix}")


def _now() -> str:
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

    def get(self, name: str, kind: str | None = None) -> Entry:
        for e in self.entries(kind):
            if e.name == name:
                return e
        known = ", ".join(e.name for e in self.entries(kind)) or "none"
        what = f"{kind} " if kind else ""
        raise BadInput(f"model {name!r} is not a {what}entry of the vault {self.root} (known: {known})", field="model")

    def entry_dir(self, entry: Entry) -> Path:
        return self.root / entry.path

    # -- checking ------------------------------------------------------------------------
    def quick_check(self, entry: Entry) -> list[str]:
        """Problems found by comparing each recorded file's presence and size (no hashing)."""
        base = self.entry_dir(entry)
        problems = []
        for rel, rec in sorted(entry.files.items()):
            p = base / rel
            if not p.is_file():
                problems.append(f"missing file {entry.path}/{rel}")
            elif (size := p.stat().st_size) != rec.size:
                problems.append(f"size mismatch {entry.path}/{rel}: {size} bytes, manifest says {rec.size}")
        return problems

    def require_ok(self, entry: Entry) -> None:
        problems = self.quick_check(entry)
        if problems:
            raise IntegrityError(f"vault entry {entry.name!r} failed its check: " + "; ".join(problems))

    # -- writing -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
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
                lines.append(f"{e.files[rel].sha256}  {e.path}/{rel}\n")
        atomic.write_text(self.checksums_path, "".join(lines))

    def hash_tree(self, rel_path: str) -> dict[str, FileRecord]:
        """Hash every file below `rel_path` (a folder or one file), refusing unsafe weights."""
        base = self.root / rel_path
        if base.is_file():
            check_weight_file(base)
            return {base.name: FileRecord(sha256=sha256_file(base), size=base.stat().st_size)}
        files: dict[str, FileRecord] = {}
        for p in sorted(base.rglob("*")):
            if p.is_symlink():
                raise IntegrityError(f"{p}: symlinks are not allowed in the vault")
            if p.is_file():
                check_weight_file(p)
                files[p.relative_to(base).as_posix()] = FileRecord(sha256=sha256_file(p), size=p.stat().st_size)
        if not files:
            raise BadInput(f"{base} holds no files", field="path")
        return files

    def import_folder(self, source: Path | str, name: str, kind: str = "pipeline", family: str = "ltx2",
                      **fields: Any) -> Entry:
        """Copy a model folder (or one weights file) into the vault and record it.

        The copy goes to a hidden temp name first and is renamed into place only after
        every file was hashed and checked, so an interrupted import leaves no half entry.
        """
        src = Path(source).expanduser().resolve()
        if not src.exists():
            raise BadInput(f"path {str(source)!r} does not exist", field="path")
        if not name or "/" in name or name.startswith("."):
            raise BadInput(f"name must be a plain folder name, got {name!r}", field="name")
        if kind not in KINDS:
            raise BadInput(f"kind must be one of {', '.join(KINDS)}, got {kind!r}", field="kind")
        if kind == "pipeline" and src.is_dir() and not (src / "model_index.json").is_file():
            raise BadInput(f"{src} is not a diffusers pipeline folder (no model_index.json)", field="path")
        if any(e.name == name for e in self.entries()):
            raise BadInput(f"name {name!r} is already an entry of the vault", field="name")
        rel = f"{KIND_DIRS[kind]}/{name}" + (src.suffix if src.is_file() else "")
        target = self.root / rel
        if target.exists():
            raise BadInput(f"{target} already exists", field="name")
        tmp = target.with_name(f".{target.name}.importing")
        target.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
        try:
            if src.is_dir():
                for p in src.rglob("*"):
                    if p.is_symlink() and not p.resolve().is_relative_to(src):
                        raise IntegrityError(f"{p}: symlink leaves the folder being imported")
                shutil.copytree(src, tmp, symlinks=False)
            else:
                shutil.copy2(src, tmp)
            self.hash_tree(tmp.relative_to(self.root).as_posix())  # refuse unsafe weights before anything is registered
            os.replace(tmp, target)
        except BaseException:
            if tmp.exists():
                shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
            raise
        return self.record(name, kind, family, rel, **fields)

    def record(self, name: str, kind: str, family: str, rel_path: str, **fields: Any) -> Entry:
        """Hash the files at `rel_path` and add (or replace) the entry `name`."""
        if kind not in KINDS:
            raise BadInput(f"kind must be one of {', '.join(KINDS)}, got {kind!r}", field="kind")
        files = self.hash_tree(rel_path)
        entry = Entry(name=name, kind=kind, family=family, path=Path(rel_path).as_posix(), files=files,
                      added=_now(), digest=entry_digest(files), **fields)
        with self._locked():
            manifest = self.manifest()
            manifest.entries = [e for e in manifest.entries if e.name != name] + [entry]
            self._write(manifest)
        log.info("vault: recorded %s (%s, %d files, %d bytes)", name, kind, len(files), entry.total_size)
        return entry
