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

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from aiprod_studio.errors import BadInput, Cancelled, IntegrityError
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

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Part:
    """A component an original checkpoint can hold: its key prefix, diffusers class and converter."""

    name: str
    prefix: str
    cls: str
    converter: str


PARTS = (
    Part(
        "transformer", "model.diffusion_model.", "LTX2VideoTransformer3DModel", "convert_ltx2_transformer_to_diffusers"
    ),
    Part("vae", "vae.", "AutoencoderKLLTX2Video", "convert_ltx2_vae_to_diffusers"),
    Part("audio_vae", "audio_vae.", "AutoencoderKLLTX2Audio", "convert_ltx2_audio_vae_to_diffusers"),
)
# LTX-2.3/2.5's video decoder has a fourth stage (`up_blocks.7`, its upsampler, and `up_blocks.8`) that
# diffusers 0.42.1's single-file map (written for 2.0's three) leaves unnamed; diffusers' own conversion
# script names them so (`LTX_2_3_VIDEO_VAE_RENAME_DICT`)
LATER_RENAMES = {
    "vae": {"decoder.up_blocks.7.": "decoder.up_blocks.3.upsamplers.0.", "decoder.up_blocks.8.": "decoder.up_blocks.3."}
}
# what released combined files carry besides, not converted (the `like` entry's own are used)
KEPT_FROM_LIKE = ("vocoder.", "text_embedding_projection.")
DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
SHOWN = 4  # keys named per kind of mismatch


@dataclass
class Plan:
    """What an import will convert, found from the headers alone."""

    source: Path
    like_dir: Path
    parts: dict[str, list[str]]  # component → the file's keys the converter keeps
    dtypes: dict[str, torch.dtype]
    expected: dict[str, dict[str, list[int]]]  # component → diffusers key → shape, from the like entry
    not_converted: dict[str, int] = field(default_factory=dict)  # group of the file's keys → how many


@dataclass
class Imported:
    entry: Entry
    not_converted: dict[str, int]
    seconds: float


def read_header(path: Path) -> dict[str, tuple[str, list[int]]]:
    """key → (dtype, shape) of every tensor of a safetensors file; reads the header only."""
    with safe_open(str(path), framework="pt") as f:
        return {k: (f.get_slice(k).get_dtype(), list(f.get_slice(k).get_shape())) for k in f.keys()}  # noqa: SIM118


def convert_keys(part: Part, state: dict[str, Any]) -> dict[str, Any]:
    """The component's state (or key → key) under diffusers' names: diffusers' converter, then the
    renames it lacks for later generations."""
    from diffusers.loaders import single_file_utils

    converted: dict[str, Any] = getattr(single_file_utils, part.converter)(dict(state))
    renames = LATER_RENAMES.get(part.name, {})
    out = {}
    for key, value in converted.items():
        old = next((o for o in renames if key.startswith(o)), None)
        out[renames[old] + key[len(old) :] if old else key] = value
    return out


def _few(keys: Any) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:SHOWN]) + (f", … ({len(keys)} in all)" if len(keys) > SHOWN else "")


def plan_import(source: Path, like_dir: Path, like: str) -> Plan:
    """Split the file's keys by component and check each against the `like` entry's (BadInput, field file)."""

    try:
        header = read_header(source)
    except SafetensorError as exc:
        raise BadInput(f"file {source.name} is not a readable safetensors file: {exc}", field="file") from None
    plan = Plan(source, like_dir, {}, {}, {})
    grouped: dict[str, list[str]] = {}
    for key in header:
        part = next((p for p in PARTS if key.startswith(p.prefix)), None)
        group = part.name if part else next((p.rstrip(".") for p in KEPT_FROM_LIKE if key.startswith(p)), "")
        grouped.setdefault(group, []).append(key)
    if "" in grouped:
        raise BadInput(
            f"file {source.name} holds keys outside the parts of an LTX-2 checkpoint "
            f"({', '.join([p.prefix for p in PARTS] + list(KEPT_FROM_LIKE))}): {_few(grouped[''])}",
            field="file",
        )
    found = [p for p in PARTS if p.name in grouped]
    if not found:
        raise BadInput(
            f"file {source.name} holds no LTX-2 component (no key starts with {', '.join(p.prefix for p in PARTS)})",
            field="file",
        )
    plan.not_converted = {g: len(keys) for g, keys in grouped.items() if g not in {p.name for p in PARTS}}
    index = json.loads((like_dir / "model_index.json").read_text(encoding="utf-8"))
    for part in found:
        files = sorted((like_dir / part.name).glob("*.safetensors"))
        if index.get(part.name) != ["diffusers", part.cls] or not files:
            raise BadInput(
                f"like {like!r} has no {part.name} of class {part.cls} to convert the file's with", field="like"
            )
        plan.expected[part.name] = {k: shape for f in files for k, (_, shape) in read_header(f).items()}
        # diffusers' converter, run on key names (each value is the original key it came from)
        converted: dict[str, str] = convert_keys(part, {k: k for k in grouped[part.name]})
        dropped = set(grouped[part.name]) - set(converted.values())
        if dropped:
            plan.not_converted[f"{part.name} (unused by diffusers)"] = len(dropped)
        expected = plan.expected[part.name]
        missing = set(expected) - set(converted)
        unexpected = {orig for new, orig in converted.items() if new not in expected}
        shapes = {
            f"{orig} {header[orig][1]} (expected {expected[new]})"
            for new, orig in converted.items()
            if new in expected and header[orig][1] != expected[new]
        }
        if missing or unexpected or shapes:
            problems = [
                f"{len(missing)} missing (diffusers names: {_few(missing)})" if missing else "",
                f"{len(unexpected)} unexpected ({_few(unexpected)})" if unexpected else "",
                f"{len(shapes)} of another shape ({_few(shapes)})" if shapes else "",
            ]
            raise BadInput(
                f"file {source.name}: its {part.name} does not match the {part.name} of {like!r}: "
                + "; ".join(p for p in problems if p),
                field="file",
            )
        plan.parts[part.name] = sorted(converted.values())
        floats = [header[k][0] for k in plan.parts[part.name] if header[k][0] not in ("I64", "I32", "BOOL")]
        dtype = max(sorted(set(floats)), key=floats.count, default="F32")  # the one most tensors are stored in
        if dtype not in DTYPES:
            raise BadInput(
                f"file {source.name}: its {part.name} is stored as {dtype}; only {', '.join(DTYPES)} checkpoints "
                "convert (import the full-precision file, then `vault quantize` it)",
                field="file",
            )
        plan.dtypes[part.name] = DTYPES[dtype]
    return plan


def convert_part(plan: Plan, name: str, dest: Path, cancel: threading.Event | None = None) -> None:
    """Convert one component from its own tensors with diffusers' single-file loader; save it to `dest`.

    `from_single_file` only warns on keys it does not use and leaves weights it did not get
    uninitialised (on the meta device), so the tensors read are checked before it runs and the
    model it returns is checked after: every weight set, under the configuration's names and shapes.
    """
    import diffusers
    from diffusers.loaders.single_file_model import FromOriginalModelMixin

    part = next(p for p in PARTS if p.name == name)
    expected = plan.expected[name]

    def check(shapes: dict[str, list[int]], when: str) -> None:
        unset = set(expected) - set(shapes)
        other = {k for k in shapes if k not in expected or shapes[k] != expected[k]}
        if unset or other:
            raise IntegrityError(
                f"{when} the {name} of {plan.source.name} would leave {len(unset)} weights unset ({_few(unset)}) "
                f"and {len(other)} unlike the configuration ({_few(other)}); nothing was imported"
            )

    with safe_open(str(plan.source), framework="pt") as f:
        state = {}
        for key in plan.parts[name]:
            if cancel is not None and cancel.is_set():
                raise Cancelled("import cancelled")
            state[key] = f.get_tensor(key)
    state = convert_keys(part, state)  # (already diffusers' names: the loader below converts nothing again)
    check({k: list(v.shape) for k, v in state.items()}, "converting")
    cls = getattr(diffusers, part.cls)
    # (diffusers 0.42.1 maps the audio VAE's keys, but its class lacks the single-file mixin)
    load = getattr(cls, "from_single_file", None) or partial(FromOriginalModelMixin.from_single_file.__func__, cls)
    model = load(
        state,
        config=str(plan.like_dir),
        subfolder=name,
        local_files_only=True,
        torch_dtype=None if plan.dtypes[name] == torch.float32 else plan.dtypes[name],  # (the model's own is float32)
    )
    del state
    loaded = model.state_dict()
    check({k: list(v.shape) for k, v in loaded.items() if not v.is_meta}, "after loading,")
    model.save_pretrained(dest, safe_serialization=True)
    del model, loaded


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
