"""What a vault check finds and reports: problems, per-entry results, the report, its progress.

`verify` fills them in; the CLI, the UI and the API read them; transfers report their
progress in the same terms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# What a check can find, each with the words a report uses for it.
PROBLEM_LABELS = {
    "missing": "missing file",
    "size": "size mismatch",
    "hash": "hash mismatch",
    "unsafe": "unsafe weights",
    "unreadable": "unreadable file",
    "extra": "unrecorded extra file",
    "symlink": "symlink",
    "staging": "import leftover",
}


@dataclass
class Problem:
    kind: str  # a key of PROBLEM_LABELS
    path: str  # vault-relative
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        # "file", not "path": API clients treat any object with a "path" key as a file to download
        return {"kind": self.kind, "file": self.path, "detail": self.detail}

    def __str__(self) -> str:
        return f"{PROBLEM_LABELS[self.kind]} {self.path}" + (f": {self.detail}" if self.detail else "")


@dataclass
class EntryResult:
    name: str
    files: int
    size: int
    problems: list[Problem] = field(default_factory=list)
    hashed_files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class VerifyReport:
    mode: str
    entries: list[EntryResult]
    unrecorded: list[Problem]  # items under the kind folders that no entry owns, import leftovers
    seconds: float
    hashed_bytes: int

    @property
    def ok(self) -> bool:
        return all(e.ok for e in self.entries) and not self.unrecorded

    def failures(self) -> list[str]:
        out = [f"{e.name}: {p}" for e in self.entries for p in e.problems]
        return out + [str(p) for p in self.unrecorded]

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "ok": self.ok,
            "seconds": round(self.seconds, 4),
            "hashed_bytes": self.hashed_bytes,
            "entries": [
                {
                    "name": e.name,
                    "status": "ok" if e.ok else "failed",
                    "files": e.files,
                    "size": e.size,
                    "hashed_files": e.hashed_files,
                    "problems": [p.to_json() for p in e.problems],
                }
                for e in self.entries
            ],
            "unrecorded": [p.to_json() for p in self.unrecorded],
        }


@dataclass
class VerifyProgress:
    done_bytes: int
    total_bytes: int
    bytes_per_s: float
    eta_s: float | None
    files_done: int
    files_total: int

    @property
    def fraction(self) -> float:
        return self.done_bytes / self.total_bytes if self.total_bytes else 1.0
