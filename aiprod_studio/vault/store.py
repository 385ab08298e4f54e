"""The model vault as the engine uses it: a vault folder whose entries are checked before use.

The modules below, from the ground up: `manifest` (what the vault holds, file by file, and how a
file is hashed and judged), `folder` (the folder, its lock, its bookkeeping files, recording),
`staging` (imports in progress and their recovery), `results` and `verify` (checking entries
against the manifest). `Vault` adds to the folder the gate every load goes through: `require_ok`.
Above it: `transfer` (import, export), `provision`, `report`, `cli`.
"""

from __future__ import annotations

from aiprod_studio.errors import IntegrityError
from aiprod_studio.vault.folder import VaultFolder
from aiprod_studio.vault.manifest import Entry
from aiprod_studio.vault.verify import verify


class Vault(VaultFolder):
    """The vault folder, with the quick check the engine runs before it loads an entry."""

    def quick_check(self, entry: Entry) -> list[str]:
        """Problems of one entry by the quick verify (stat cache; changed files are re-hashed)."""
        return [str(p) for p in verify(self, [entry.name], record_unchanged=False).entries[0].problems]

    def require_ok(self, entry: Entry) -> None:
        """Refuse an entry whose files do not match the manifest; the error names each file."""
        problems = self.quick_check(entry)
        if problems:
            raise IntegrityError(
                f"vault entry {entry.name!r} failed its check: "
                + "; ".join(problems)
                + " (see `aiprod-studio vault verify --deep`)"
            )
