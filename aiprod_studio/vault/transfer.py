"""Moving models in and out of the vault: import (copy or hard-link) and self-verifying bundles.

An import copies every file to a hidden temp name inside the vault while hashing it,
checks weights by content, notes the pending record in a journal, renames the finished
folder into place and then records it in the manifest. An import that fails leaves no
entry and no folder; one that is killed leaves hidden leftovers that the next import of
the same target, or the studio's start, clears or finishes (`aiprod_studio.vault.staging`).

`export` writes a *bundle* for an air-gapped transfer (a USB drive): a folder that is
itself a one-entry vault,

    <name>/MANIFEST.json       the entry (path "files"), with source, license and hashes
    <name>/CHECKSUMS.sha256    `cd <name> && sha256sum -c CHECKSUMS.sha256` checks it anywhere
    <name>/files/…             the entry's files

Importing a bundle re-hashes every file against the bundle's manifest before anything is
registered. Paths in a bundle never leave it: absolute paths, `..` and symlinks are refused.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiprod_studio.choices import DEFAULT_FAMILY, DEFAULT_KIND
from aiprod_studio.errors import BadInput, Cancelled, IntegrityError
from aiprod_studio.files import atomic
from aiprod_studio.files.folders import writable_folder
from aiprod_studio.vault.manifest import (
    CHECKSUMS_NAME,
    HASH_CHUNK,
    KIND_DIRS,
    MANIFEST_NAME,
    Entry,
    FileRecord,
    Manifest,
    check_kind,
    check_name,
    check_weight_file,
    entry_digest,
    hash_with_stat,
    stat_key,
    write_manifest,
)
from aiprod_studio.vault.results import VerifyProgress
from aiprod_studio.vault.staging import (
    BOOKKEEPING,
    clear_journal,
    import_lock,
    remove_path,
    resolve,
    staging_path,
    write_journal,
)
from aiprod_studio.vault.store import Vault

log = logging.getLogger(__name__)

BUNDLE_FILES = "files"
# What an exported bundle carries over besides the files themselves.
CARRIED_FIELDS = (
    "kind",
    "family",
    "source",
    "license",
    "derived_from",
    "quantization",
    "test_model",
    "description",
    "defaults",
)


class Meter:
    """Counts bytes and reports rate and ETA at most every `every` seconds."""

    def __init__(
        self,
        total: int,
        progress: Callable[[VerifyProgress], None] | None,
        files_total: int,
        cancel: threading.Event | None,
        every: float = 0.25,
    ):
        self.total, self.progress, self.files_total, self.cancel, self.every = (
            total,
            progress,
            files_total,
            cancel,
            every,
        )
        self.done = 0
        self.files_done = 0
        self.started = time.perf_counter()
        self._last = 0.0

    def add(self, n: int) -> None:
        self.done += n
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("transfer cancelled")
        now = time.perf_counter()
        if self.progress is not None and (now - self._last >= self.every or self.done >= self.total):
            self._last = now
            self.emit()

    def emit(self) -> None:
        if self.progress is None:
            return
        elapsed = time.perf_counter() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else None
        self.progress(VerifyProgress(self.done, self.total, rate, eta, self.files_done, self.files_total))


def copy_with_hash(src: Path, dst: Path, meter: Meter | None = None) -> str:
    """Copy `src` to `dst` in large chunks, hashing on the way; fsync before returning."""
    h = hashlib.sha256()
    buf = bytearray(HASH_CHUNK)
    view = memoryview(buf)
    with open(src, "rb", buffering=0) as fin, open(dst, "wb") as fout:
        while n := fin.readinto(buf):
            h.update(view[:n])
            fout.write(view[:n])
            if meter is not None:
                meter.add(n)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dst)
    return h.hexdigest()


def is_bundle(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST_NAME).is_file() and (path / BUNDLE_FILES).is_dir()


def _read_bundle(path: Path) -> Entry:
    """The bundle's single entry, with every path proven to stay inside the bundle."""
    try:
        manifest = Manifest.model_validate_json((path / MANIFEST_NAME).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise IntegrityError(f"{path / MANIFEST_NAME}: not a valid bundle manifest: {exc}") from None
    if len(manifest.entries) != 1:
        raise IntegrityError(f"{path}: a bundle holds exactly one entry, this one lists {len(manifest.entries)}")
    entry = manifest.entries[0]
    if entry.path != BUNDLE_FILES and not (
        entry.single_file and entry.path == f"{BUNDLE_FILES}/{next(iter(entry.files))}"
    ):
        raise IntegrityError(f"{path}: bundle entry path {entry.path!r} is not {BUNDLE_FILES!r}")
    root = path.resolve()
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                raise IntegrityError(f"{p}: bundles may not contain symlinks")
    on_disk = {p.relative_to(path / BUNDLE_FILES).as_posix() for p in (path / BUNDLE_FILES).rglob("*") if p.is_file()}
    listed = {entry.vault_path(r)[len(BUNDLE_FILES) + 1 :] for r in entry.files}
    for rel in listed:
        if not (path / BUNDLE_FILES / rel).resolve().is_relative_to(root):
            raise IntegrityError(f"{path}: bundle path {rel!r} leaves the bundle")
    if on_disk != listed:
        missing, extra = sorted(listed - on_disk), sorted(on_disk - listed)
        raise IntegrityError(
            f"{path}: bundle files do not match its manifest (missing: {missing or 'none'}, "
            f"not listed: {extra or 'none'})"
        )
    if entry.digest and entry.digest != entry_digest(entry.files):
        raise IntegrityError(f"{path}: the bundle's entry digest does not match its file list")
    return entry


def _plain_files(src: Path) -> list[tuple[str, Path]]:
    """(entry-relative path, source file) for a folder or one file being imported."""
    if src.is_file():
        return [(src.name, src)]
    root = src.resolve()
    out = []
    for p in sorted(src.rglob("*")):
        if p.is_symlink() and not p.resolve().is_relative_to(root):
            raise IntegrityError(f"{p}: symlink leaves the folder being imported")
        if p.is_file() and not p.name.startswith(".") and ".cache" not in p.relative_to(src).parts:
            out.append((p.relative_to(src).as_posix(), p))
    if not out:
        raise BadInput(f"{src} holds no files", field="path")
    return out


def import_path(
    vault: Vault,
    source: Path | str,
    name: str | None = None,
    kind: str | None = None,
    family: str | None = None,
    link: bool = False,
    progress: Callable[[VerifyProgress], None] | None = None,
    cancel: threading.Event | None = None,
    **fields: Any,
) -> Entry:
    """Bring a diffusers folder, one weights file (LoRA, QA model) or an exported bundle into the vault.

    `link=True` hard-links instead of copying (same filesystem only; the vault then shares
    the bytes with the source, and verify catches any later edit of either).
    """
    # (one function on purpose: the import's numbered steps share one lock, one staging folder and one journal)
    # 1. What is being imported, under which name.
    src = Path(source).expanduser()
    if not src.exists():
        raise BadInput(f"path {str(source)!r} does not exist", field="path")
    bundle = _read_bundle(src) if is_bundle(src) else None
    if bundle is not None:
        carried = {k: getattr(bundle, k) for k in CARRIED_FIELDS}
        kind = kind or carried.pop("kind")
        family = family or carried.pop("family")
        carried.pop("kind", None)
        carried.pop("family", None)
        fields = {**carried, **{k: v for k, v in fields.items() if v is not None and v != "unknown"}}
        name = name or bundle.name
        files = [(rel, src / bundle.vault_path(rel)) for rel in sorted(bundle.files)]
    else:
        kind = kind or DEFAULT_KIND
        family = family or DEFAULT_FAMILY
        files = []
    if not name:
        raise BadInput("name is required for a folder or file import (--name)", field="name")
    try:
        check_name(name)
    except ValueError as exc:
        raise BadInput(str(exc), field="name") from None
    kind = check_kind(kind)
    if bundle is None:
        if kind == "pipeline" and not (src.is_dir() and (src / "model_index.json").is_file()):
            raise BadInput(f"{src} is not a diffusers pipeline folder (no model_index.json)", field="path")
        files = _plain_files(src)
    single = bundle.single_file if bundle is not None else src.is_file()
    rel_target = f"{KIND_DIRS[kind]}/{name}" + (Path(files[0][0]).suffix if single else "")
    target = vault.root / rel_target
    try:
        pending = Entry(name=name, kind=kind, family=family, path=rel_target, **fields)
    except ValueError as exc:
        raise BadInput(f"cannot import {name!r}: {exc}") from None
    source_id = str(src.resolve())

    # 2. Refuse unsafe weights before a byte is copied (checked again on the copy).
    for _, p in files:
        check_weight_file(p)

    # 3. Hold the target's import lock to the end (a second import of it is refused), and first
    #    clear what a killed import of it left: a re-run of the same import finishes its record.
    target.parent.mkdir(parents=True, exist_ok=True)
    with import_lock(target):
        finished = resolve(vault, target)
        if (
            finished is not None
            and finished.source == source_id
            and finished.entry.model_dump(exclude=BOOKKEEPING) == pending.model_dump(exclude=BOOKKEEPING)
        ):
            log.info("the interrupted import of %s from %s was finished from its journal", name, src)
            return finished.entry
        vault.check_new_name(name)
        if target.exists() or target.is_symlink():
            raise BadInput(f"{target} already exists but is not in the manifest; move it away first", field="name")

        # 4. Copy (or link) into a hidden temp name, hashing every byte on the way.
        tmp = staging_path(target)
        meter = Meter(sum(p.stat().st_size for _, p in files), progress, len(files), cancel)
        records: dict[str, FileRecord] = {}
        stats: dict[str, list[int]] = {}
        try:
            if not single:
                tmp.mkdir()
            for rel, p in files:
                dst = tmp if single else tmp / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                if link:
                    try:
                        os.link(p, dst)
                    except OSError as exc:
                        if exc.errno == errno.EXDEV:
                            raise BadInput(
                                f"--link needs the source on the vault's filesystem; {p} is not (copy without --link)",
                                field="link",
                            ) from None
                        raise
                    digest, key = hash_with_stat(dst, on_bytes=meter.add, cancel=cancel)
                else:
                    digest = copy_with_hash(p, dst, meter)
                    key = stat_key(dst.stat())
                check_weight_file(dst)
                records[rel] = FileRecord(sha256=digest, size=dst.stat().st_size)
                if key is not None:
                    stats[rel] = key
                meter.files_done += 1
                if bundle is not None and (
                    bundle.files[rel].sha256 != digest or bundle.files[rel].size != records[rel].size
                ):
                    raise IntegrityError(
                        f"bundle file {bundle.vault_path(rel)} does not match the bundle's manifest "
                        f"(sha256 {digest}, expected {bundle.files[rel].sha256}); nothing was "
                        "imported"
                    )
            meter.emit()
            if single:  # a one-file entry keeps its file name as the key
                records = {target.name: records.popitem()[1]}
                stats = {target.name: stats.popitem()[1]} if stats else {}
                atomic.fsync_dir(tmp.parent)
            else:
                atomic.fsync_tree(tmp)

            # 5. Note the pending record, rename into place, record; a crash in between is
            #    finished (or undone) by the next import of this target or the studio's start.
            write_journal(target, pending.model_copy(update={"files": records}), stats, source_id)
            os.replace(tmp, target)
            atomic.fsync_dir(target.parent)
            if single and stats:  # renaming a file changes its ctime: the quick check's key is read again
                stats = {target.name: stat_key(target.stat())}
            entry = vault.record(name, kind, family, rel_target, files=records, stats=stats, **fields)
        except BaseException:
            try:
                resolve(vault, target, roll_forward=False)
            except Exception:  # noqa: BLE001 - the original error matters more; the next run retries
                log.warning("could not undo the failed import of %s", name, exc_info=True)
            raise
        clear_journal(target)
    log.info("imported %s from %s (%s, %d bytes)", name, src, "hard-linked" if link else "copied", entry.total_size)
    return entry


def export_bundle(
    vault: Vault,
    name: str,
    to: Path | str,
    progress: Callable[[VerifyProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Write `<to>/<name>/`, a self-verifying bundle of one entry; the source is checked while copied."""
    entry = vault.get(name, field="name")
    dest_root = writable_folder(to, "to")
    dest = dest_root / name
    if dest.exists():
        raise BadInput(f"{dest} already exists; choose another folder", field="to")
    tmp = dest_root / f".{name}.exporting"
    remove_path(tmp)
    meter = Meter(entry.total_size, progress, len(entry.files), cancel)
    bundle_path = f"{BUNDLE_FILES}/{next(iter(entry.files))}" if entry.single_file else BUNDLE_FILES
    exported = entry.model_copy(update={"path": bundle_path})
    try:
        for rel, rec in sorted(entry.files.items()):
            dst = tmp / exported.vault_path(rel)
            dst.parent.mkdir(parents=True, exist_ok=True)
            digest = copy_with_hash(vault.file_path(entry, rel), dst, meter)
            if digest != rec.sha256:
                raise IntegrityError(
                    f"{entry.vault_path(rel)} does not match the manifest (sha256 {digest}); "
                    "the vault copy is damaged, nothing was exported"
                )
            meter.files_done += 1
        meter.emit()
        write_manifest(tmp, Manifest(entries=[exported]))
        (tmp / "README.txt").write_text(
            f"AIPROD Studio model bundle: {name}\n\n"
            f"Check it anywhere:   sha256sum -c {CHECKSUMS_NAME}\n"
            f"Bring it in:         aiprod-studio vault import {name}\n",
            encoding="utf-8",
        )
        atomic.fsync_tree(tmp)
        os.replace(tmp, dest)
    except BaseException:
        remove_path(tmp)
        raise
    log.info("exported %s to %s (%d bytes)", name, dest, entry.total_size)
    return dest
