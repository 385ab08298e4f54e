"""Original single-file LTX-2 checkpoints into diffusers-format vault entries (`vault import-checkpoint`).

Creators have LTX-2.x models as one `.safetensors` file in the Lightricks / ComfyUI layout: the
transformer under `model.diffusion_model.`, in a combined file also the video VAE (`vae.`) and the
audio VAE (`audio_vae.`), besides parts diffusers' converters drop (text connectors inside the
transformer prefix, `vocoder.`, `text_embedding_projection.`). The components the file holds are
converted with diffusers' single-file loaders, configured by an LTX-2 pipeline entry (`like`),
which gives every other component.

Nothing is converted before the file's key names and shapes, as diffusers' converters rename
them, equal the `like` entry's (both read from safetensors headers): `from_single_file` only warns
on unused keys and leaves missing weights uninitialised. Each component is converted from its own
tensors only (memory stays at one component) and checked again once loaded. The entry is built
under the vault's import staging names (`aiprod_studio.vault.staging`): a failure, a cancel or a
kill leaves no entry, and nothing that the next import or the studio's start does not clear.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiprod_studio.errors import BadInput, IntegrityError
from aiprod_studio.files import atomic
from aiprod_studio.generations import DEFAULTS, VARIANTS, detect
from aiprod_studio.vault import staging
from aiprod_studio.vault.cli import human_bytes
from aiprod_studio.vault.folder import remember_hashes
from aiprod_studio.vault.manifest import (
    KIND_DIRS,
    Entry,
    FileRecord,
    ImportedFile,
    check_name,
    check_safetensors,
    check_weight_file,
    sha256_file,
    stat_key,
    write_manifest,
)
from aiprod_studio.vault.results import VerifyProgress
from aiprod_studio.vault.store import Vault
from aiprod_studio.vault.transfer import Meter, copy_with_hash
from engine.models.single_file_convert import convert_part, plan_import

log = logging.getLogger(__name__)


@dataclass
class Imported:
    entry: Entry
    not_converted: dict[str, int]
    seconds: float


def _link_or_copy(src: Path, dst: Path) -> str | None:
    """Hard-link `src` to `dst`; where that fails (another filesystem), copy it: its sha256 then."""
    try:
        os.link(src, dst)
        return None
    except OSError:
        return copy_with_hash(src, dst)


def _forget(vault: Vault, entry: Entry) -> None:
    """Drop an entry being replaced: from the manifest first, then its files."""
    with vault.locked():
        manifest = vault.manifest()
        manifest.entries = [e for e in manifest.entries if e.name != entry.name]
        write_manifest(vault.root, manifest)
    staging.remove_path(vault.root / entry.path)


def _defaults(like: Entry, variant: str | None) -> dict[str, Any]:
    """The like entry's defaults; for another variant, without those a variant decides (where a
    generation's base and distilled recommendations differ: steps, guidance, sigmas…), so the
    recommendations for the imported variant apply."""
    out = dict(like.defaults)
    if variant == like.variant:
        return out
    advanced: set[str] = set()
    for (version, distilled), table in DEFAULTS.items():
        other = DEFAULTS.get((version, not distilled), table)
        for k in table.keys() - {"advanced"} - {k for k in table if table[k] == other.get(k)}:
            out.pop(k, None)
        both = table["advanced"].keys() | other["advanced"].keys()
        advanced |= {k for k in both if table["advanced"].get(k) != other["advanced"].get(k)}
    if isinstance(out.get("advanced"), dict):
        out["advanced"] = {k: v for k, v in out["advanced"].items() if k not in advanced}
    return out


def check_request(
    vault: Vault, file: Path | str, like: str, name: str | None, variant: str | None, replace: bool
) -> tuple[Path, Entry, str]:
    """The file (a regular file, safetensors by content), the like entry, the name; BadInput naming the field."""
    src = Path(file).expanduser()
    if not src.is_file():
        what = "does not exist" if not src.exists() else "is not a regular file"
        raise BadInput(f"file {str(file)!r} {what}", field="file")
    try:
        check_safetensors(src)  # by content: a pickle named .safetensors stops here, never unpickled
    except IntegrityError as exc:
        raise BadInput(f"file {exc}", field="file") from None
    entry = vault.get(like, field="like")
    if entry.kind != "pipeline" or entry.family != "ltx2" or detect(vault.entry_dir(entry)) is None:
        raise BadInput(f"like {like!r} is a {entry.kind} of family {entry.family}, not an LTX-2 pipeline", field="like")
    if entry.quantization:
        raise BadInput(
            f"like {like!r} is a {entry.quantization} copy; use its source {entry.derived_from}", field="like"
        )
    if variant not in (None, *VARIANTS):
        raise BadInput(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}", field="variant")
    name = name or src.stem
    try:
        check_name(name)
    except ValueError as exc:
        raise BadInput(f"{exc} (give the new entry's name)", field="name") from None
    if name == like:
        raise BadInput(f"name {name!r} is the like entry itself; choose another name", field="name")
    if not replace:
        vault.check_new_name(name)
    return src, entry, name


def import_checkpoint(
    vault: Vault,
    file: Path | str,
    like: str,
    name: str | None = None,
    variant: str | None = None,
    replace: bool = False,
    progress: Callable[[VerifyProgress], None] | None = None,
    cancel: threading.Event | None = None,
    on_step: Callable[[str], None] | None = None,
) -> Imported:
    """Convert the original single-file checkpoint `file` into the pipeline entry `name` (default:
    the file's name), configured by and completed from the LTX-2 pipeline entry `like`."""
    # (one function on purpose: the numbered steps share one lock, one staging folder and one journal)
    started = time.perf_counter()
    step = on_step or (lambda text: log.info("%s", text))
    # 1. The request, and the key check on headers only (nothing is loaded or written before).
    src, like_entry, name = check_request(vault, file, like, name, variant, replace)
    like_dir = vault.entry_dir(like_entry)
    plan = plan_import(src, like_dir, like)
    vault.require_ok(like_entry)  # its files become the new entry's
    rel = f"{KIND_DIRS['pipeline']}/{name}"
    target = vault.root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    linked: list[str] = []
    with staging.import_lock(target):
        staging.resolve(vault, target)  # what a killed import of this name left
        existing = next((e for e in vault.entries() if e.name == name), None)
        if existing is None and (target.exists() or target.is_symlink()):
            raise BadInput(f"{target} already exists but is not in the manifest; move it away first", field="name")
        if existing is not None and not replace:
            raise BadInput(f"name {name!r} is already an entry of the vault (--replace to replace it)", field="name")
        tmp = staging.staging_path(target)
        try:
            # 2. The source's sha256, for the record (the longest step on a real checkpoint).
            size = src.stat().st_size
            before = stat_key(src.stat())
            step(f"hashing {src.name} ({human_bytes(size)})")
            meter = Meter(size, progress, 1, cancel)
            digest = sha256_file(src, on_bytes=meter.add, cancel=cancel)
            meter.files_done = 1
            meter.emit()

            # 3. Every other file from the like entry: hard links where the filesystem allows, else copies.
            records: dict[str, FileRecord] = {}
            tmp.mkdir()
            for rel_file, record in sorted(like_entry.files.items()):
                top = rel_file.split("/")[0]
                if top in plan.parts and rel_file != f"{top}/config.json":
                    continue
                (tmp / rel_file).parent.mkdir(parents=True, exist_ok=True)
                copied = _link_or_copy(like_dir / rel_file, tmp / rel_file)
                if copied is None:
                    linked.append(rel_file)
                elif copied != record.sha256:
                    raise IntegrityError(f"{like_entry.vault_path(rel_file)} does not match the manifest while copied")
                records[rel_file] = record

            # 4. Convert each component, one at a time; its configuration stays the like entry's file.
            #    (saved in a folder of its own: save_pretrained rewrites config.json in place, which
            #    would write through the hard link into the like entry's)
            for part in plan.parts:
                step(f"converting the {part} ({len(plan.parts[part])} tensors)")
                convert_part(plan, part, tmp / f".{part}.converting", cancel)
                (tmp / part).mkdir(exist_ok=True)
                for p in sorted((tmp / f".{part}.converting").iterdir()):
                    if p.name != "config.json":
                        os.replace(p, tmp / part / p.name)
                shutil.rmtree(tmp / f".{part}.converting")
            if stat_key(src.stat()) != before:
                raise IntegrityError(f"file {src} changed while it was imported; nothing was imported")

            # 5. Hash what was written, refusing anything but safetensors weights.
            written = sorted(p for part in plan.parts for p in (tmp / part).iterdir() if p.name != "config.json")
            step(f"hashing the converted files ({human_bytes(sum(p.stat().st_size for p in written))})")
            meter = Meter(sum(p.stat().st_size for p in written), progress, len(written), cancel)
            for p in written:
                check_weight_file(p)
                records[p.relative_to(tmp).as_posix()] = FileRecord(
                    sha256=sha256_file(p, on_bytes=meter.add, cancel=cancel), size=p.stat().st_size
                )
                meter.files_done += 1
            meter.emit()
            stats = {r: stat_key((tmp / r).stat()) for r in records}
            atomic.fsync_tree(tmp)

            # 6. Note the pending record, put it in place (dropping the entry it replaces), record it.
            fields: dict[str, Any] = {
                "license": like_entry.license,
                "defaults": _defaults(like_entry, variant or like_entry.variant),
                "variant": variant or like_entry.variant,
                "description": f"converted from the single-file checkpoint {src.name} with the configuration of "
                f"{like_entry.name}",
                "imported_from": ImportedFile(
                    file=src.name, sha256=digest, size=size, like=like_entry.name, components=list(plan.parts)
                ),
            }
            pending = Entry(name=name, kind="pipeline", family=like_entry.family, path=rel, files=records, **fields)
            if existing is not None:
                _forget(vault, existing)
            staging.write_journal(target, pending, stats, str(src.resolve()))
            os.replace(tmp, target)
            atomic.fsync_dir(target.parent)
            entry = vault.record(name, "pipeline", like_entry.family, rel, files=records, stats=stats, **fields)
        except BaseException:
            try:
                staging.resolve(vault, target, roll_forward=False)
            except Exception:  # noqa: BLE001 - the original error matters more; the next run retries
                log.warning("could not undo the failed import of %s", name, exc_info=True)
            raise
        finally:
            if linked:  # linking moved the like entry's files' ctime: their hashes still hold, tell the stat cache
                remember_hashes(vault, like_entry, {r: stat_key((like_dir / r).stat()) for r in linked})
        staging.clear_journal(target)
    seconds = time.perf_counter() - started
    log.info("imported %s from %s (%s) in %.1fs", name, src, ", ".join(plan.parts), seconds)
    return Imported(entry, plan.not_converted, seconds)
