"""Checking the vault against its manifest: quick (stat cache) and deep (re-hash everything).

Every deep hash is remembered in `models/.verify-state.json` together with the file's
stat key (size, mtime_ns, ctime_ns, inode, device). The quick check stats every file
and re-hashes only those whose stat key moved since their last hash, so an unchanged
50 GB vault is checked in milliseconds and a file edited in place is still caught. A
hash mismatch found once stays recorded against that stat key, so the engine keeps
refusing the entry until the file is replaced. The deep check re-hashes every file,
several at a time in threads, reports bytes/s and ETA, and can be cancelled.

Problems reported per entry: missing file, size mismatch, hash mismatch, unsafe weights
(not safetensors by content), unrecorded extra file, symlink (and whether it leaves the
vault). A whole-vault check also lists what no entry owns: stray items in the kind folders,
and the hidden leftovers of an import that was killed (`staging`; see `aiprod_studio.vault.staging`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiprod_studio.errors import BadInput, Cancelled, IntegrityError
from aiprod_studio.vault.folder import EntryCheck, FileCheck, VaultFolder, VerifyState, load_state, save_state
from aiprod_studio.vault.manifest import KIND_DIRS, Entry, check_weight_file, hash_with_stat, now, stat_key
from aiprod_studio.vault.results import EntryResult, Problem, VerifyProgress, VerifyReport
from aiprod_studio.vault.staging import stale_leftovers

log = logging.getLogger(__name__)


# -- the last results ----------------------------------------------------------------------------
def last_results(vault: VaultFolder) -> dict[str, EntryCheck]:
    """Per entry name: status, mode, checked (ISO time), problems, as of the last check.

    A result recorded for other files than the entry has now (another digest) is dropped.
    """
    state = load_state(vault)
    digests = {e.name: e.digest for e in vault.entries()}
    return {n: r for n, r in state["entries"].items() if digests.get(n) == r.get("digest")}


# -- walking -------------------------------------------------------------------------------------
def _walk_extras(vault: VaultFolder, entry: Entry) -> list[Problem]:
    """Files under the entry's folder that the manifest does not list, and any symlink."""
    problems: list[Problem] = []
    base = vault.entry_dir(entry)
    root = vault.root.resolve()
    if base.is_symlink():
        return [Problem("symlink", entry.path, _link_detail(base, root))]
    if entry.single_file or not base.is_dir():
        return problems
    for dirpath, dirnames, filenames in os.walk(base):
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(base).as_posix()
            if p.is_symlink():
                problems.append(Problem("symlink", f"{entry.path}/{rel}", _link_detail(p, root)))
            elif name in filenames and rel not in entry.files:
                problems.append(
                    Problem("extra", f"{entry.path}/{rel}", f"{p.stat().st_size} bytes, not in the manifest")
                )
        dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]
    return problems


def _link_detail(p: Path, root: Path) -> str:
    target = os.readlink(p)
    leaves = not p.resolve().is_relative_to(root)
    return f"points to {target}" + (" (leaves the vault)" if leaves else "")


def _unrecorded(vault: VaultFolder, entries: list[Entry]) -> list[Problem]:
    """Top-level items of the kind folders that no entry owns, and leftovers of killed imports.

    Other hidden names (temp names of work in progress) are not reported.
    """
    owned = {e.path for e in entries}
    found = []
    for folder in sorted(set(KIND_DIRS.values())):
        d = vault.root / folder
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            rel = f"{folder}/{p.name}"
            if p.name.startswith(".") or rel in owned:
                continue
            kind = "symlink" if p.is_symlink() else "extra"
            detail = _link_detail(p, vault.root.resolve()) if p.is_symlink() else "not an entry of the manifest"
            found.append(Problem(kind, rel, detail))
    return found + [Problem("staging", rel, detail) for rel, detail in stale_leftovers(vault)]


# -- the check -----------------------------------------------------------------------------------
@dataclass
class _Job:
    """One file to hash, and what hashing it found."""

    entry: str
    rel: str  # entry-relative
    vpath: str  # vault-relative
    path: Path
    size: int
    expected: str
    result: tuple[str, list[int] | None] | None = None
    error: Problem | None = None


def verify(
    vault: VaultFolder,
    names: list[str] | None = None,
    deep: bool = False,
    threads: int | None = None,
    progress: Callable[[VerifyProgress], None] | None = None,
    cancel: threading.Event | None = None,
    progress_every: float = 0.25,
    record_unchanged: bool = True,
) -> VerifyReport:
    """Check entries (all, or those named) against the manifest and record the results.

    `record_unchanged=False` (the engine's check before each load) writes the state file
    only when something was learned or a verdict changed.
    """
    started = time.perf_counter()
    all_entries = vault.entries()
    entries = _chosen(vault, all_entries, names)
    state = load_state(vault)
    results = {e.name: EntryResult(e.name, len(e.files), e.total_size) for e in entries}
    # 1. Stat every recorded file; the cache settles those whose stat key has not moved.
    jobs = _to_hash(vault, entries, results, state["files"], deep)
    # 2. Hash the others, several files at once, largest first.
    files_done, cancelled = _hash_all(jobs, deep, threads, progress, cancel, progress_every)
    # 3. Record what was learned (also for completed files of a cancelled run), then report.
    learned, hashed = _judge(jobs, results)
    unrecorded = [] if names else _unrecorded(vault, all_entries)
    mode = "deep" if deep else "quick"
    _record(vault, state, results, {e.name: e.digest for e in entries}, learned, mode, not cancelled, record_unchanged)
    if cancelled:
        raise Cancelled(f"verify cancelled after {files_done} of {len(jobs)} files")
    report = VerifyReport(mode, [results[e.name] for e in entries], unrecorded, time.perf_counter() - started, hashed)
    log.info(
        "verify (%s): %d entries, %d files hashed, %s",
        mode,
        len(entries),
        len(jobs),
        "ok" if report.ok else f"{len(report.failures())} problems",
    )
    return report


def _chosen(vault: VaultFolder, all_entries: list[Entry], names: list[str] | None) -> list[Entry]:
    """The entries named (each once, in the order given), or all of them; an unknown name is refused."""
    if not names:
        return all_entries
    by_name = {e.name: e for e in all_entries}
    for n in names:
        if n not in by_name:
            known = ", ".join(by_name) or "none"
            raise BadInput(f"name {n!r} is not an entry of the vault {vault.root} (known: {known})", field="name")
    return [by_name[n] for n in dict.fromkeys(names)]


def _to_hash(
    vault: VaultFolder, entries: list[Entry], results: dict[str, EntryResult], cache: dict[str, FileCheck], deep: bool
) -> list[_Job]:
    """The files that need hashing; what a stat alone proves wrong goes straight into `results`."""
    jobs: list[_Job] = []
    for e in entries:
        res = results[e.name]
        for rel, rec in sorted(e.files.items()):
            vpath = e.vault_path(rel)
            p = vault.root / vpath
            try:
                st = p.lstat()
            except FileNotFoundError:
                res.problems.append(Problem("missing", vpath, f"manifest says {rec.size} bytes"))
                continue
            if p.is_symlink():
                res.problems.append(Problem("symlink", vpath, _link_detail(p, vault.root.resolve())))
                continue
            if st.st_size != rec.size:
                res.problems.append(Problem("size", vpath, f"{st.st_size} bytes, manifest says {rec.size}"))
                continue
            cached = cache.get(vpath)
            if not deep and cached and cached.get("stat") == stat_key(st):
                if cached.get("sha256") != rec.sha256:
                    res.problems.append(
                        Problem(
                            "hash",
                            vpath,
                            f"sha256 {cached.get('sha256')}, manifest says "
                            f"{rec.sha256} (found {cached.get('checked', '?')})",
                        )
                    )
                continue
            jobs.append(_Job(e.name, rel, vpath, p, rec.size, rec.sha256))
        res.problems.extend(_walk_extras(vault, e))
    return jobs


def _hash_all(
    jobs: list[_Job],
    deep: bool,
    threads: int | None,
    progress: Callable[[VerifyProgress], None] | None,
    cancel: threading.Event | None,
    progress_every: float,
) -> tuple[int, bool]:
    """Hash the jobs' files in a thread pool, reporting progress; returns (files done, cancelled)."""
    jobs.sort(key=lambda j: -j.size)
    total = sum(j.size for j in jobs)
    done = [0]
    lock = threading.Lock()
    stop = cancel or threading.Event()

    def add(n: int) -> None:
        with lock:
            done[0] += n

    def run(job: _Job) -> None:
        try:
            if job.path.suffix == ".safetensors" or deep:
                check_weight_file(job.path)
            job.result = hash_with_stat(job.path, on_bytes=add, cancel=stop)
        except FileNotFoundError:
            job.error = Problem("missing", job.vpath, "vanished while being checked")
        except IntegrityError as exc:
            job.error = Problem("unsafe", job.vpath, str(exc).split(": ", 1)[-1])
        except OSError as exc:
            job.error = Problem("unreadable", job.vpath, exc.strerror or str(exc))

    if not jobs:
        return 0, False
    workers = max(1, min(threads or min(4, os.cpu_count() or 1), len(jobs)))
    files_done = 0
    cancelled = False
    hash_started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify") as pool:
        pending: set[Future[None]] = {pool.submit(run, j) for j in jobs}
        try:
            while pending:
                finished, pending = wait(pending, timeout=progress_every, return_when=FIRST_COMPLETED)
                files_done += len(finished)
                for f in finished:
                    if isinstance(error := f.exception(), Cancelled):
                        cancelled = True
                    elif error is not None:
                        raise error
                if progress is not None:
                    elapsed = time.perf_counter() - hash_started
                    rate = done[0] / elapsed if elapsed > 0 else 0.0
                    eta = (total - done[0]) / rate if rate > 0 else None
                    progress(VerifyProgress(done[0], total, rate, eta, files_done, len(jobs)))
        except BaseException:
            stop.set()
            raise
    return files_done, cancelled


def _judge(jobs: list[_Job], results: dict[str, EntryResult]) -> tuple[dict[str, FileCheck], int]:
    """Hash mismatches and read errors into `results`; returns (the cache's new lines, bytes hashed)."""
    hashed = 0
    learned: dict[str, FileCheck] = {}
    for j in jobs:
        res = results[j.entry]
        if j.error is not None:
            res.problems.append(j.error)
        elif j.result is not None:
            digest, key = j.result
            res.hashed_files += 1
            hashed += j.size
            if key is not None:
                learned[j.vpath] = {"stat": key, "sha256": digest, "checked": now()}
            if digest != j.expected:
                res.problems.append(Problem("hash", j.vpath, f"sha256 {digest}, manifest says {j.expected}"))
    return learned, hashed


def _record(
    vault: VaultFolder,
    state: VerifyState,
    results: dict[str, EntryResult],
    digests: dict[str, str],
    learned: dict[str, FileCheck],
    mode: str,
    verdicts_too: bool,
    record_unchanged: bool,
) -> None:
    """Write the new hashes (and, unless `verdicts_too` is False, the verdicts) to the verify cache.

    Unless `record_unchanged`, nothing is written when nothing was learned and no verdict moved.
    """
    verdicts = {n: ("ok" if r.ok else "failed", [str(p) for p in r.problems]) for n, r in results.items()}

    def same(name: str, verdict: tuple[str, list[str]]) -> bool:
        old: dict[str, Any] = dict(state["entries"].get(name) or {})
        return old.get("digest") == digests[name] and (old.get("status"), old.get("problems")) == verdict

    if not record_unchanged and not learned and all(same(n, v) for n, v in verdicts.items()):
        return

    def update(st: VerifyState) -> None:
        st["files"].update(learned)
        if verdicts_too:
            for name, (status, problems) in verdicts.items():
                st["entries"][name] = {
                    "status": status,
                    "mode": mode,
                    "checked": now(),
                    "digest": digests[name],
                    "problems": problems,
                }
        current = vault.entries()  # re-read under the lock: another process may have recorded meanwhile
        live = {e.vault_path(r) for e in current for r in e.files}
        names = {e.name for e in current}
        st["files"] = {k: v for k, v in st["files"].items() if k in live}
        st["entries"] = {k: v for k, v in st["entries"].items() if k in names}

    save_state(vault, update)
