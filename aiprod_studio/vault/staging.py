"""Import staging in the vault: the import lock, the pending-record journal, and crash recovery.

An import into `<kind folder>/<target>` works beside its target, under hidden names:

    .<target>.import.lock    held (exclusive `flock`) for the whole import; the kernel drops the
                             lock when the process dies, even by SIGKILL
    .<target>.importing      the copy being written (a file or a folder)
    .<target>.import.json    the pending record (everything the manifest entry needs, hashes
                             included): written atomically just before the copy is renamed to
                             <target>, deleted once the manifest names the entry

A killed import leaves some of these behind. `recover_staging(vault)` clears them (the studio
runs it on start, and every import runs the same step for its own target first):

- a staging copy is removed (its journal too: the rename never happened);
- a journal whose entry the manifest already names is removed;
- a journal whose target is in place and still matches it (same files, same sizes, safe
  weights) is finished: the entry is recorded from the journal, since every byte was hashed
  while it was copied — nothing is copied again;
- anything else a journal owns is rolled back (the target it renamed into place is removed).

Leftovers whose lock is held belong to an import still running and are left alone. A file or
folder under a real name with no journal is not the studio's to delete: verify reports it.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiprod_studio.errors import BadInput, StudioError
from aiprod_studio.files import atomic, locks
from aiprod_studio.vault.folder import VaultFolder
from aiprod_studio.vault.manifest import KIND_DIRS, Entry, check_weight_file, stat_key

log = logging.getLogger(__name__)

STAGING_SUFFIX = ".importing"
JOURNAL_SUFFIX = ".import.json"
LOCK_SUFFIX = ".import.lock"
JOURNAL_VERSION = 1
# Hidden names of an import's target T: .T.importing, .T.import.json, .T.import.lock, and the
# temp file atomic.write_text uses while writing the journal (..T.import.json.tmp-PID).
_LEFTOVER = re.compile(r"^\.(?P<target>[A-Za-z0-9][^/]*?)(?P<what>\.importing|\.import\.json|\.import\.lock)$")
_JOURNAL_TMP = re.compile(r"^\.\.(?P<target>[A-Za-z0-9][^/]*?)\.import\.json\.tmp-\d+$")
# Entry fields the journal's entry shares with the import's request (the rest is bookkeeping).
BOOKKEEPING = {"files", "added", "digest"}


def staging_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{STAGING_SUFFIX}")


def journal_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{JOURNAL_SUFFIX}")


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{LOCK_SUFFIX}")


@dataclass
class RecoveryReport:
    """What `recover_staging` did; every path is vault-relative."""

    removed: list[str] = field(default_factory=list)  # staging copies, journals, stale locks
    finished: list[str] = field(default_factory=list)  # entries recorded from their journal
    rolled_back: list[str] = field(default_factory=list)  # targets a journal owned, removed
    busy: list[str] = field(default_factory=list)  # targets whose import is running: left alone
    errors: list[str] = field(default_factory=list)  # leftovers that could not be cleared

    @property
    def changed(self) -> bool:
        return bool(self.removed or self.finished or self.rolled_back)

    def to_json(self) -> dict[str, list[str]]:
        return {
            "removed": self.removed,
            "finished": self.finished,
            "rolled_back": self.rolled_back,
            "busy": self.busy,
            "errors": self.errors,
        }


@dataclass
class Finished:
    """An entry recorded from the journal of an interrupted import, and where that import read from."""

    entry: Entry
    source: str


# -- the lock --------------------------------------------------------------------------------------
def _release(lock: Path, fd: int) -> None:
    """Remove the lock file while still holding it (a waiter then sees it gone and retries), then unlock."""
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
    finally:
        os.close(fd)


def _running(lock: Path) -> bool:
    """Whether an import holds `lock` right now (read-only probe: never creates the file)."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


@contextlib.contextmanager
def import_lock(target: Path, wait_s: float = 2.0) -> Iterator[None]:
    """Hold the import lock of `target` for the block; refuse if another import holds it past `wait_s`."""
    lock = lock_path(target)
    fd = locks.take(lock, wait_s)
    if fd is None:
        raise BadInput(f"an import into {target} is already running; wait for it to finish", field="name")
    try:
        yield
    finally:
        _release(lock, fd)


# -- the journal -------------------------------------------------------------------------------------
def write_journal(target: Path, entry: Entry, stats: dict[str, list[int]], source: str) -> None:
    """Durably note the entry about to be recorded, before its copy is renamed to `target`."""
    data = {"version": JOURNAL_VERSION, "source": source, "entry": entry.model_dump(mode="json"), "stats": stats}
    atomic.write_text(journal_path(target), json.dumps(data, indent=1) + "\n")


def clear_journal(target: Path) -> None:
    """The manifest names the entry now: its journal has served."""
    with contextlib.suppress(FileNotFoundError):
        journal_path(target).unlink()


def _read_journal(vault: VaultFolder, target: Path) -> tuple[Entry, dict[str, list[int]], str] | None:
    path = journal_path(target)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entry = Entry.model_validate(data["entry"])
        stats = {str(k): list(v) for k, v in dict(data.get("stats") or {}).items()}
        source = str(data.get("source", ""))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable import journal %s: %s", path, exc)
        return None
    if vault.root / entry.path != target:
        log.warning("ignoring import journal %s: it names %s, not %s", path, entry.path, target.name)
        return None
    return entry, stats, source


def _matches(target: Path, entry: Entry) -> bool:
    """The renamed copy is still what the journal hashed: same files, same sizes, safe weights."""
    try:
        if target.is_symlink():
            return False
        if entry.single_file:
            found = {target.name: target} if target.is_file() else {}
        elif target.is_dir():
            found = {}
            for p in target.rglob("*"):
                if p.is_symlink():
                    return False
                if p.is_file():
                    found[p.relative_to(target).as_posix()] = p
        else:
            return False
        if set(found) != set(entry.files):
            return False
        for rel, p in found.items():
            if p.stat().st_size != entry.files[rel].size:
                return False
            check_weight_file(p)
    except (OSError, StudioError):
        return False
    return True


def remove_path(p: Path) -> None:
    """Remove a file or a folder tree (a symlink itself, never what it points to); absent is fine."""
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


# -- recovery ----------------------------------------------------------------------------------------
def resolve(
    vault: VaultFolder, target: Path, roll_forward: bool = True, report: RecoveryReport | None = None
) -> Finished | None:
    """Clear what an import of `target` left behind. The caller holds the target's import lock.

    `roll_forward=False` (an import undoing its own failure) never records: a journal whose
    entry is not in the manifest rolls back. Returns the entry finished from a journal, if any.
    """
    report = report if report is not None else RecoveryReport()

    def rel(p: Path) -> str:
        return p.relative_to(vault.root).as_posix()

    finished = None
    done_before = len(report.removed) + len(report.rolled_back)
    journal = _read_journal(vault, target)
    staging = staging_path(target)
    renamed = True
    # 1. A staging copy: the import never reached its rename (nor, then, the target).
    if staging.exists() or staging.is_symlink():
        remove_path(staging)
        report.removed.append(rel(staging))
        renamed = False
    # 2. A journal after the rename: finish the record, or undo the rename.
    if journal is not None and renamed:
        entry, stats, source = journal
        recorded = next((e for e in vault.entries() if e.name == entry.name), None)
        if recorded is not None and recorded.path == entry.path:
            pass  # the import completed; only its journal was left
        elif target.exists() or target.is_symlink():
            if roll_forward and recorded is None and _matches(target, entry):
                # stat keys seed the verify cache only where the file is untouched since it was hashed
                still = {
                    r: k
                    for r, k in stats.items()
                    if r in entry.files and stat_key((vault.root / entry.vault_path(r)).stat()) == k
                }
                extra = entry.model_dump(exclude={"name", "kind", "family", "path"} | BOOKKEEPING)
                new = vault.record(
                    entry.name, entry.kind, entry.family, entry.path, files=entry.files, stats=still, **extra
                )
                report.finished.append(entry.name)
                finished = Finished(new, source)
                log.info("finished the interrupted import of %s from its journal", entry.name)
            else:
                remove_path(target)
                report.rolled_back.append(rel(target))
                log.warning("rolled back the interrupted import of %s: removed %s", entry.name, target)
    # 3. The journal itself, and any half-written one.
    for p in [journal_path(target), *target.parent.glob(f"..{glob.escape(target.name)}{JOURNAL_SUFFIX}.tmp-*")]:
        if p.exists():
            p.unlink()
            report.removed.append(rel(p))
    if len(report.removed) + len(report.rolled_back) > done_before:
        atomic.fsync_dir(target.parent)
    return finished


def _groups(vault: VaultFolder) -> dict[Path, dict[str, list[str]]]:
    """Per target with hidden import names beside it: those names, by what they are (a suffix)."""
    found: dict[Path, dict[str, list[str]]] = {}
    for folder in sorted(set(KIND_DIRS.values())):
        d = vault.root / folder
        try:
            names = sorted(e.name for e in os.scandir(d) if e.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            if m := _LEFTOVER.match(name):
                target, what = m.group("target"), m.group("what")
            elif m := _JOURNAL_TMP.match(name):
                target, what = m.group("target"), JOURNAL_SUFFIX
            else:
                continue
            found.setdefault(d / target, {}).setdefault(what, []).append(name)
    return found


def recover_staging(vault: VaultFolder) -> RecoveryReport:
    """Clear what killed imports left in the vault (see the module doc). Idempotent; a cheap
    scan of the kind folders when there is nothing to do; never touches a running import."""
    report = RecoveryReport()
    for target, present in sorted(_groups(vault).items()):
        rel = target.relative_to(vault.root).as_posix()
        try:
            fd = locks.take(lock_path(target), wait_s=0.0)
            if fd is None:
                report.busy.append(rel)
                continue
            try:
                resolve(vault, target, roll_forward=True, report=report)
            finally:
                _release(lock_path(target), fd)
            if LOCK_SUFFIX in present:
                report.removed.append(lock_path(target).relative_to(vault.root).as_posix())
        except (OSError, StudioError) as exc:
            log.warning("could not clear the import leftovers of %s: %s", rel, exc)
            report.errors.append(f"{rel}: {exc}")
    if report.changed:
        log.info("vault recovery: %s", report.to_json())
    return report


def stale_leftovers(vault: VaultFolder) -> list[tuple[str, str]]:
    """(vault-relative path, what it is) for each leftover of an import that is no longer running.

    Read-only (for verify): nothing is created, locked for long, or removed.
    """
    fix = "starting the studio or re-running the import clears it"
    out = []
    for target, present in sorted(_groups(vault).items()):
        if _running(lock_path(target)):
            continue
        folder = target.parent.relative_to(vault.root).as_posix()
        for name in present.get(STAGING_SUFFIX, []):
            p = target.parent / name
            with contextlib.suppress(OSError):
                size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
                out.append(
                    (
                        f"{folder}/{name}",
                        f"partial copy left by an interrupted import of {target.name} ({size} bytes); {fix}",
                    )
                )
        for name in present.get(JOURNAL_SUFFIX, []):
            out.append(
                (
                    f"{folder}/{name}",
                    f"pending record of an import of {target.name} that stopped before it finished; {fix}",
                )
            )
        if set(present) == {LOCK_SUFFIX}:
            out.append((f"{folder}/{present[LOCK_SUFFIX][0]}", f"lock file of an interrupted import; {fix}"))
    return out
