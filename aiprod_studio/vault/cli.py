"""The core's `vault` commands: list, verify, import, export, provision.

(`vault make-tiny` and `vault quantize` need tensors and live in the engine's CLI.)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiprod_studio.choices import MODEL_FAMILIES, VAULT_KINDS
from aiprod_studio.commands import Registry
from aiprod_studio.errors import BadInput
from aiprod_studio.generations import VARIANTS
from aiprod_studio.settings import Settings

if TYPE_CHECKING:  # (each command imports the vault's modules when it runs)
    from aiprod_studio.vault.manifest import Entry
    from aiprod_studio.vault.results import VerifyProgress


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n} B"


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else many or word + 's'}"


def progress_printer(args: argparse.Namespace, label: str) -> Callable[[VerifyProgress], None] | None:
    """A progress callback that draws one line on a terminal's stderr (nothing otherwise)."""
    if getattr(args, "json", False) or not sys.stderr.isatty():
        return None

    def show(p: VerifyProgress) -> None:
        eta = f"ETA {p.eta_s:,.0f}s" if p.eta_s is not None else ""
        line = (
            f"\r{label}: {p.fraction:6.1%}  {human_bytes(p.done_bytes)} / {human_bytes(p.total_bytes)}  "
            f"{human_bytes(p.bytes_per_s)}/s  {eta}   "
        )
        print(line, end="\n" if p.done_bytes >= p.total_bytes else "", file=sys.stderr, flush=True)

    return show


def _entry_json(e: Entry) -> dict[str, Any]:
    return e.model_dump(mode="json") | {"total_size": e.total_size}


def _generation(vault: Any, e: Entry) -> str | None:
    """A pipeline's LTX-2 generation read from its configs (`2.3`, `2.3-distilled`); a LoRA's as recorded."""
    from aiprod_studio.generations import detect

    if e.kind == "pipeline":
        found = detect(vault.entry_dir(e), e.variant)
        return found.tag if found else None
    return e.generation


def cmd_list(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from aiprod_studio.vault.store import Vault
    from aiprod_studio.vault.verify import last_results

    vault = Vault(settings.models_dir)
    entries = vault.entries(kind=args.kind)
    checks = last_results(vault)
    lines = [f"vault: {settings.models_dir}"]
    generations = {e.name: _generation(vault, e) for e in entries}
    for e in entries:
        tag = " [test model]" if e.test_model else ""
        if generations[e.name]:
            tag = f" LTX-{generations[e.name]}{tag}"
        status = checks.get(e.name, {}).get("status", "unchecked")
        lines.append(
            f"  {e.name:<28} {e.kind:<9} {e.family:<5} {human_bytes(e.total_size):>10}  {status:<9} "
            f"{e.digest[:12]}{tag}"
        )
    if not entries:
        lines.append("  (empty: run `aiprod-studio vault make-tiny`, or `vault provision` on a connected machine)")
    data = [_entry_json(e) | {"last_check": checks.get(e.name), "generation": generations[e.name]} for e in entries]
    return {"models_dir": str(settings.models_dir), "entries": data}, "\n".join(lines)


def cmd_verify(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from aiprod_studio.vault.store import Vault
    from aiprod_studio.vault.verify import verify

    if args.threads is not None and args.threads < 1:
        raise BadInput(f"threads must be at least 1, got {args.threads}", field="threads")
    report = verify(
        Vault(settings.models_dir),
        args.names or None,
        deep=args.deep,
        threads=args.threads,
        progress=progress_printer(args, "verify"),
    )
    lines = []
    for e in report.entries:
        lines.append(
            f"{'ok    ' if e.ok else 'FAILED'}  {e.name}  ({e.files} files, {human_bytes(e.size)}, "
            f"{e.hashed_files} hashed)"
        )
        lines.extend(f"          {p}" for p in e.problems)
    lines.extend(f"FAILED  {p}" for p in report.unrecorded)
    rate = report.hashed_bytes / report.seconds if report.seconds > 0 else 0.0
    lines.append(
        f"{report.mode} verify of {plural(len(report.entries), 'entry', 'entries')} in {report.seconds:.2f}s "
        f"({human_bytes(report.hashed_bytes)} hashed, {human_bytes(rate)}/s): "
        + ("all ok" if report.ok else plural(len(report.failures()), "problem"))
    )
    return report.to_json() | ({} if report.ok else {"_exit": 3}), "\n".join(lines)


def cmd_import(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from aiprod_studio.vault.manifest import Source
    from aiprod_studio.vault.store import Vault
    from aiprod_studio.vault.transfer import import_path

    fields: dict[str, Any] = {}
    if args.source_repo or args.source_revision:
        if not (args.source_repo and args.source_revision and len(args.source_revision) == 40):
            raise BadInput(
                f"--source-repo needs --source-revision with the full 40-hex commit, got {args.source_revision!r}",
                field="source_revision",
            )
        fields["source"] = Source(repo=args.source_repo, revision=args.source_revision.lower())
    if args.license:
        fields["license"] = args.license
    entry = import_path(
        Vault(settings.models_dir),
        args.path,
        args.name,
        kind=args.kind,
        family=args.family,
        link=args.link,
        progress=progress_printer(args, "import"),
        **fields,
    )
    how = "hard-linked" if args.link else "copied"
    return _entry_json(entry), (
        f"imported {entry.name} ({how}): {len(entry.files)} files, "
        f"{human_bytes(entry.total_size)}, digest {entry.digest[:12]} → "
        f"{settings.models_dir / entry.path}"
    )


def cmd_export(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from aiprod_studio.vault.store import Vault
    from aiprod_studio.vault.transfer import export_bundle

    vault = Vault(settings.models_dir)
    dest = export_bundle(vault, args.name, args.to, progress=progress_printer(args, "export"))
    entry = vault.get(args.name, field="name")
    return (
        {"name": entry.name, "bundle": str(dest), "digest": entry.digest, "total_size": entry.total_size},
        f"exported {entry.name} ({human_bytes(entry.total_size)}) → {dest}\n"
        f"check it anywhere with: cd {dest} && sha256sum -c CHECKSUMS.sha256",
    )


def cmd_provision(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any], str]:
    from aiprod_studio.vault.provision import HubClient, find_token, provision
    from aiprod_studio.vault.store import Vault

    token = find_token(args.token_file)  # --token-file, else AIPROD_HF_TOKEN, else HF_TOKEN; sent to the hub only
    entry = provision(
        Vault(settings.ensure_dirs().models_dir),
        args.repo,
        revision=args.revision,
        name=args.name,
        allow=args.allow,
        kind=args.kind,
        family=args.family,
        license=args.license,
        hub=HubClient(),
        progress=progress_printer(args, "check"),
        variant=args.variant,
        token=token,
    )
    assert entry.source is not None
    return _entry_json(entry), (
        f"provisioned {entry.name}{f' ({entry.variant})' if entry.variant else ''} from "
        f"{entry.source.repo}@{entry.source.revision}: "
        f"{len(entry.files)} files, {human_bytes(entry.total_size)}, license {entry.license}"
    )


def register(reg: Registry) -> None:
    p = reg.subcommand("vault", "list", "list the vault's entries and their last check", cmd_list)
    p.add_argument("--kind", choices=VAULT_KINDS)

    p = reg.subcommand(
        "vault", "verify", "check entries against the manifest (exit 3 naming each bad file)", cmd_verify
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="entries to check (default: the whole vault)")
    p.add_argument("--deep", action="store_true", help="re-hash every file (default: quick, re-hash changed files)")
    p.add_argument("--threads", type=int, help="files hashed at once in deep mode (default: up to 4)")

    p = reg.subcommand(
        "vault",
        "import",
        "copy (or hard-link) a model folder, a weights file or a bundle into the vault, hashing every byte",
        cmd_import,
    )
    p.add_argument("path", help="a diffusers pipeline folder, one .safetensors file, or an exported bundle")
    p.add_argument("--name", help="the entry's name (required unless PATH is a bundle)")
    p.add_argument("--kind", choices=VAULT_KINDS, help="default: pipeline (or the bundle's)")
    p.add_argument("--family", choices=MODEL_FAMILIES, help="default: ltx2 (or the bundle's)")
    p.add_argument("--license", help="the model's license, for the sovereignty report")
    p.add_argument("--link", action="store_true", help="hard-link instead of copying (same filesystem only)")
    p.add_argument("--source-repo", help="where it came from (e.g. Lightricks/LTX-2)")
    p.add_argument("--source-revision", help="the 40-hex commit it was downloaded at")

    p = reg.subcommand("vault", "export", "write a self-verifying bundle of one entry (for a USB drive)", cmd_export)
    p.add_argument("name", help="the entry to export")
    p.add_argument("--to", required=True, help="folder the bundle <NAME>/ is written into")

    p = reg.subcommand(
        "vault",
        "provision",
        "download a model at a pinned commit into the vault "
        "(the only networked command; run it on a connected machine)",
        cmd_provision,
    )
    p.add_argument("repo", help="a Hugging Face repo id, or a name from models/catalog.json")
    p.add_argument("--revision", help="branch, tag or 40-hex commit (resolved to a commit and recorded)")
    p.add_argument("--name", help="the entry's name (default: the catalogue name or the repo's last part)")
    p.add_argument("--allow", nargs="+", metavar="PATTERN", help="only files matching these glob patterns")
    p.add_argument("--kind", choices=VAULT_KINDS)
    p.add_argument("--family", choices=MODEL_FAMILIES)
    p.add_argument("--license", help="override the license read from the model card")
    p.add_argument("--variant", choices=VARIANTS, help="a distilled model (default: the catalogue's)")
    p.add_argument(
        "--token-file",
        metavar="PATH",
        help="a file (mode 600) holding only the access token for a gated or private repo "
        "(default: AIPROD_HF_TOKEN, then HF_TOKEN); it is sent to the hub and never stored",
    )
