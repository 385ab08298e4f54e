"""The vault folder and its bookkeeping files: the manifest, its checksums, the verify cache.

`VaultFolder` reads the manifest on demand, holds the folder's lock while a bookkeeping file
is rewritten, and records entries (hashing their files and seeding the verify cache). It
does not check entries: `aiprod_studio.vault.verify` does, and `aiprod_studio.vault.store.Vault`
adds the check the engine runs before each load.

The verify cache (`models/.verify-state.json`, machine-local, never part of a bundle) maps
each file to the stat key it had when it was last hashed and that hash, and each entry to its
last check's verdict.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypedDict

from aiprod_studio.errors import BadInput, IntegrityError
from aiprod_studio.files import atomic
from aiprod_studio.vault.manifest import (
    MANIFEST_NAME,
    STATE_NAME,
    Entry,
    FileRecord,
    Manifest,
    check_kind,
    check_name,
    check_weight_file,
    entry_digest,
    hash_with_stat,
    now,
    read_manifest,
    write_manifest,
)

log = logging.getLogger(__name__)


# The cache is read back from a file: any key of its records may be missing (`total=False`).
class FileCheck(TypedDict, total=False):
    """A file's last hash, and the stat key it had then (size, mtime_ns, ctime_ns, inode, device)."""

    stat: list[int]
    sha256: str
    checked: str


class EntryCheck(TypedDict, total=False):
    """An entry's last check: `ok` or `failed`, how (`quick`, `deep`, `record`), for which digest."""

    status: str
    mode: str
    checked: str
    digest: str
    problems: list[str]


class VerifyState(TypedDict):
    version: int
    files: dict[str, FileCheck]
    entries: dict[str, EntryCheck]


class VaultFolder:
    """The vault folder. Cheap to construct; reads the manifest on demand."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def state_path(self) -> Path:
        """The verify stat cache and last results (machine-local, not part of any bundle)."""
        return self.root / STATE_NAME

    # -- reading -------------------------------------------------------------------------
    def manifest(self) -> Manifest:
        return read_manifest(self.manifest_path)

    def entries(self, kind: str | None = None) -> list[Entry]:
        return [e for e in self.manifest().entries if kind is None or e.kind == kind]

    def get(self, name: str, kind: str | None = None, field: str = "model") -> Entry:
        for e in self.entries(kind):
            if e.name == name:
                return e
        known = ", ".join(e.name for e in self.entries(kind)) or "none"
        what = f"{kind} " if kind else ""
        raise BadInput(f"{field} {name!r} is not a {what}entry of the vault {self.root} (known: {known})", field=field)

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

    def hash_tree(
        self, rel_path: str, on_bytes: Callable[[int], None] | None = None, cancel: threading.Event | None = None
    ) -> tuple[dict[str, FileRecord], dict[str, list[int]]]:
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

    def record(
        self,
        name: str,
        kind: str,
        family: str,
        rel_path: str,
        files: dict[str, FileRecord] | None = None,
        stats: dict[str, list[int]] | None = None,
        **fields: Any,
    ) -> Entry:
        """Add (or replace) the entry `name` for the files at `rel_path`.

        The files are hashed here unless the caller already hashed them (`files`, and the
        stat keys it saw in `stats`, which seed the quick-verify cache). `fields` are the
        entry's other fields (source, license, description…).
        """
        checked_kind = check_kind(kind)
        try:
            check_name(name)
        except ValueError as exc:
            raise BadInput(str(exc), field="name") from None
        if files is None:
            files, stats = self.hash_tree(rel_path)
        entry = Entry(
            name=name,
            kind=checked_kind,
            family=family,
            path=Path(rel_path).as_posix(),
            files=files,
            added=now(),
            digest=entry_digest(files),
            **fields,
        )
        with self.locked():
            manifest = self.manifest()
            manifest.entries = [e for e in manifest.entries if e.name != name] + [entry]
            write_manifest(self.root, manifest)
        remember_hashes(self, entry, stats or {})
        log.info("vault: recorded %s (%s, %d files, %d bytes)", name, kind, len(files), entry.total_size)
        return entry


# -- the verify cache ----------------------------------------------------------------------------
def load_state(vault: VaultFolder) -> VerifyState:
    """The verify cache as it was last written (empty when there is none or it is unreadable)."""
    try:
        state = json.loads(vault.state_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"version": 1, "files": {}, "entries": {}}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable verify state %s: %s", vault.state_path, exc)
        return {"version": 1, "files": {}, "entries": {}}
    state.setdefault("files", {})
    state.setdefault("entries", {})
    return state  # type: ignore[no-any-return]  # the studio's own file: trusted to have this shape


def save_state(vault: VaultFolder, update: Callable[[VerifyState], None]) -> None:
    """Read-modify-write the verify cache under the vault lock; a read-only vault only logs."""
    try:
        with vault.locked():
            state = load_state(vault)
            update(state)
            atomic.write_text(vault.state_path, json.dumps(state, indent=1, sort_keys=True) + "\n")
    except OSError as exc:
        log.warning("cannot write verify state %s: %s", vault.state_path, exc)


def remember_hashes(vault: VaultFolder, entry: Entry, stats: dict[str, list[int]]) -> None:
    """Seed the stat cache with hashes just taken (at import or record time)."""

    def update(state: VerifyState) -> None:
        for rel, key in stats.items():
            state["files"][entry.vault_path(rel)] = {"stat": key, "sha256": entry.files[rel].sha256, "checked": now()}
        state["entries"][entry.name] = {
            "status": "ok",
            "mode": "record",
            "checked": now(),
            "digest": entry.digest,
            "problems": [],
        }

    save_state(vault, update)
