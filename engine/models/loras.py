"""LoRAs at render time: resolve them in the vault, refuse the wrong base, apply several at once.

A LoRA is a vault entry of kind `lora` (one safetensors file in diffusers' `transformer.`
key naming, or ComfyUI's `diffusion_model.` naming, which diffusers converts). Its base
model is known from the entry (`derived_from = "<model>@<digest>"`, set by training) or
from the file's `aiprod.base_digest` metadata; a LoRA made for another base is refused
before anything renders. The warm pipeline keeps loaded adapters; each render activates
exactly its own set with `set_adapters`, so strength 0 gives the base render bit for bit.
"""

from __future__ import annotations

import json
import logging
import re
import warnings
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from aiprod_studio.errors import BadInput, IntegrityError
from aiprod_studio.generations import detect
from aiprod_studio.recipe import LoraRef
from aiprod_studio.validation import format_validation_error
from aiprod_studio.vault.manifest import Entry
from aiprod_studio.vault.store import Vault

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline as Pipeline

log = logging.getLogger(__name__)

BASE_DIGEST_KEY = "aiprod.base_digest"
GENERATION_KEY = "aiprod.generation"  # the LTX-2 generation a LoRA was trained on ("2.0", "2.3", "2.5")


def parse_lora_spec(spec: Any) -> LoraRef:
    """`NAME`, `NAME:STRENGTH`, a dict or a LoraRef → LoraRef (strength −2…2, default 1)."""
    if isinstance(spec, LoraRef):
        return spec
    if isinstance(spec, dict):
        try:
            return LoraRef.model_validate(spec)
        except ValidationError as exc:
            raise BadInput(
                f"loras: {format_validation_error(exc)} (a LoRA is 'name', 'name:strength' or {{\"name\", \"scale\"}})",
                field="loras",
            ) from None
    name, _, strength = str(spec).strip().partition(":")
    try:
        scale = float(strength) if strength else 1.0
    except ValueError:
        raise BadInput(f"loras: strength must be a number, got {strength!r} in {spec!r}", field="loras") from None
    if not -2.0 <= scale <= 2.0:
        raise BadInput(f"loras: strength must be between -2 and 2, got {scale} for {name!r}", field="loras")
    return LoraRef(name=name, scale=scale)


def file_metadata(vault: Vault, entry: Entry) -> dict[str, str]:
    """The LoRA file's safetensors metadata (its header only)."""
    from safetensors import safe_open

    with safe_open(str(vault.file_path(entry, next(iter(entry.files)))), "np") as f:
        return dict(f.metadata() or {})


def base_digest(vault: Vault, entry: Entry) -> str | None:
    """The digest of the model a LoRA was made for, if it is known."""
    if entry.derived_from and "@" in entry.derived_from:
        return entry.derived_from.rsplit("@", 1)[1]
    return file_metadata(vault, entry).get(BASE_DIGEST_KEY)


def lora_generation(vault: Vault, entry: Entry) -> str | None:
    """The LTX-2 generation a LoRA was trained on, when the entry or its file says."""
    return entry.generation or file_metadata(vault, entry).get(GENERATION_KEY) or None


def model_digests(model: Entry) -> set[str]:
    """A model and, for a quantized copy, the model it was made from: both accept its LoRAs."""
    digests = {model.digest}
    if model.derived_from and "@" in model.derived_from:
        digests.add(model.derived_from.rsplit("@", 1)[1])
    return digests


def resolve(vault: Vault, model: Entry, specs: list[Any]) -> list[LoraRef]:
    """Vault LoRAs for `model`, with their digests; refuses unknown ones and ones for another base."""
    out: list[LoraRef] = []
    model_generation = detect(vault.entry_dir(model), model.variant) if specs else None
    for spec in specs or []:
        ref = parse_lora_spec(spec)
        entry = vault.get(ref.name, kind="lora", field="loras")
        vault.require_ok(entry)  # the file is checked before its header is read: a tampered one is named as such
        if ref.sha256 and ref.sha256 != entry.digest:
            raise BadInput(
                f"loras: {ref.name!r} has changed since this recipe was made (digest "
                f"{entry.digest[:12]}, the recipe says {ref.sha256[:12]})",
                field="loras",
            )
        trained_on = lora_generation(vault, entry)
        if trained_on and model_generation and trained_on != model_generation.version:
            raise BadInput(
                f"loras: {ref.name!r} was trained on LTX-{trained_on}, but model {model.name!r} is "
                f"{model_generation.label}: layer shapes differ between generations, so it cannot load; "
                f"choose a LoRA trained on LTX-{model_generation.version}",
                field="loras",
            )
        base = base_digest(vault, entry)
        if base is not None and base not in model_digests(model):
            made_for = entry.derived_from.rsplit("@", 1)[0] if entry.derived_from else f"digest {base[:12]}"
            raise BadInput(
                f"loras: {ref.name!r} was made for {made_for}, not for model {model.name!r}; choose a "
                "LoRA trained on this model",
                field="loras",
            )
        if any(r.name == ref.name for r in out):
            raise BadInput(f"loras: {ref.name!r} is listed twice", field="loras")
        out.append(ref.model_copy(update={"sha256": entry.digest}))
    return out


def adapter_name(name: str) -> str:
    return "lora_" + re.sub(r"\W", "_", name)


def injected_modules(transformer: Any, adapter: str) -> int:
    return sum(1 for m in transformer.modules() if hasattr(m, "lora_A") and adapter in getattr(m, "lora_A", {}))


def apply(pipe: Pipeline, vault: Vault, loras: list[LoraRef]) -> None:
    """Make exactly `loras` active on the pipeline (loading those not loaded yet)."""
    loaded: dict[str, str] = getattr(pipe, "_aiprod_loras", {})  # adapter name → LoRA digest
    wanted = {adapter_name(r.name): r for r in loras}
    for adapter, digest in list(loaded.items()):
        if adapter not in wanted or wanted[adapter].sha256 != digest:
            pipe.delete_adapters([adapter])
            del loaded[adapter]
    for adapter, ref in wanted.items():
        if adapter in loaded:
            continue
        entry = vault.get(ref.name, kind="lora", field="loras")
        vault.require_ok(entry)
        path = vault.file_path(entry, next(iter(entry.files)))
        try:
            with warnings.catch_warnings():  # several adapters on one model is what we want
                warnings.filterwarnings("ignore", message="Already found a `peft_config`")
                pipe.load_lora_weights(str(path), adapter_name=adapter)
        except (ValueError, RuntimeError, KeyError) as exc:
            raise BadInput(f"loras: {ref.name!r} does not fit this model: {str(exc)[:300]}", field="loras") from None
        if injected_modules(pipe.transformer, adapter) == 0:  # diffusers only warns when no key matched
            pipe.delete_adapters([adapter])
            raise IntegrityError(f"loras: {ref.name!r} matched no layer of the model (wrong key names?)")
        loaded[adapter] = ref.sha256
    pipe._aiprod_loras = loaded
    if wanted:
        pipe.enable_lora()
        pipe.set_adapters(list(wanted), [r.scale for r in wanted.values()])
    elif loaded:
        pipe.disable_lora()
    log.info("active LoRAs: %s", json.dumps({r.name: r.scale for r in loras}))
