"""Quantized copies in the vault: quantize a pipeline's transformer once, save it, load it as is.

`vault quantize NAME --to int8|fp8 --name NEW` loads the transformer, quantizes its weights
with optimum-quanto, and saves quanto's serialization (the quantized state dict as
safetensors plus the quantization map) as a new vault entry. The other components are
hard-linked from the source entry where the filesystem allows (else copied), so a
quantized copy of LTX-2 costs only its transformer on disk. Loading the copy rebuilds
the module skeleton on the meta device and `requantize`s it from the saved tensors: no
full-precision weights are materialised and nothing is quantized again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from aiprod_studio.choices import STORED_QUANTIZATIONS
from aiprod_studio.errors import BadInput, IntegrityError
from aiprod_studio.vault.folder import remember_hashes
from aiprod_studio.vault.manifest import KIND_DIRS, Entry, stat_key
from aiprod_studio.vault.store import Vault
from engine.models.quantize import quantize_transformer, weight_bytes

log = logging.getLogger(__name__)

QMAP_NAME = "quanto_qmap.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
TRANSFORMER_CLASSES = ("LTX2VideoTransformer3DModel", "LTXVideoTransformer3DModel")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _transformer_class(folder: Path) -> Any:
    import diffusers

    config = json.loads((folder / "config.json").read_text())
    name = config.get("_class_name")
    if name not in TRANSFORMER_CLASSES:
        raise IntegrityError(
            f"{folder}/config.json names {name!r}; a quantized copy needs one of {TRANSFORMER_CLASSES}"
        )
    return getattr(diffusers, name), config


def save_quantized(vault: Vault, name: str, to: str, new_name: str, dtype: str | None = None) -> Entry:
    """Write a quantized copy of the pipeline entry `name` as the new entry `new_name`."""
    from optimum.quanto import quantization_map
    from safetensors.torch import save_file

    # 1. Check the request and the source entry (which must pass its own check).
    if to not in STORED_QUANTIZATIONS:
        raise BadInput(f"to must be int8 or fp8, got {to!r}", field="to")
    entry = vault.get(name, kind="pipeline", field="name")
    if entry.quantization:
        raise BadInput(
            f"{name!r} is already a {entry.quantization} copy; quantize its source {entry.derived_from!r} instead",
            field="name",
        )
    vault.check_new_name(new_name, field="new_name")
    dtype = dtype or ("bfloat16" if torch.cuda.is_available() else "float32")
    if dtype not in DTYPES:
        raise BadInput(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}", field="dtype")
    vault.require_ok(entry)
    source = vault.entry_dir(entry)
    rel = f"{KIND_DIRS['pipeline']}/{new_name}"
    target = vault.root / rel
    if target.exists():
        raise BadInput(f"{target} already exists but is not in the manifest; move it away first", field="new_name")
    tmp = target.with_name(f".{new_name}.quantizing")
    shutil.rmtree(tmp, ignore_errors=True)
    started = time.perf_counter()
    try:
        # 2. Everything but the transformer's weights: hard links (or copies) of the source files.
        linked: dict[str, list[int]] = {}
        for rel_file in sorted(entry.files):
            if rel_file.startswith("transformer/") and rel_file != "transformer/config.json":
                continue
            dst = tmp / rel_file
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source / rel_file, dst)
                linked[rel_file] = stat_key((source / rel_file).stat())
            except OSError:
                shutil.copy2(source / rel_file, dst)

        # 3. Quantize the transformer once and save quanto's serialization.
        cls, _config = _transformer_class(source / "transformer")
        transformer = cls.from_pretrained(
            source / "transformer", local_files_only=True, use_safetensors=True, torch_dtype=DTYPES[dtype]
        )
        before = weight_bytes(transformer)
        quantize_transformer(transformer, to)
        state = {k: v.contiguous() for k, v in transformer.state_dict().items()}
        qmap = quantization_map(transformer)
        save_file(
            state,
            str(tmp / "transformer" / WEIGHTS_NAME),
            metadata={"format": "pt", "quantization": to, "dtype": dtype, "derived_from": entry.digest},
        )
        (tmp / "transformer" / QMAP_NAME).write_text(
            json.dumps({"quantization": to, "dtype": dtype, "map": qmap}, indent=1, sort_keys=True)
        )
        after = weight_bytes(transformer)
        del transformer, state
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # 4. Linking moved the source files' ctime: their hashes still hold, tell the stat cache.
    remember_hashes(vault, entry, {r: stat_key((source / r).stat()) for r in linked})
    new = vault.record(
        new_name,
        "pipeline",
        entry.family,
        rel,
        source=entry.source,
        license=entry.license,
        derived_from=f"{entry.name}@{entry.digest}",
        quantization=to,
        test_model=entry.test_model,
        defaults=entry.defaults,
        variant=entry.variant,
        description=f"{entry.name} with its transformer stored quantized ({to}, {dtype})",
    )
    log.info(
        "quantized %s → %s (%s): transformer %d → %d bytes in %.1fs",
        name,
        new_name,
        to,
        before,
        after,
        time.perf_counter() - started,
    )
    return new


def load_quantized_transformer(folder: Path, dtype: torch.dtype) -> torch.nn.Module:
    """Rebuild a saved quantized transformer without quantizing or materialising full weights."""
    from optimum.quanto import requantize
    from safetensors.torch import load_file

    meta = json.loads((folder / QMAP_NAME).read_text())
    saved = DTYPES.get(meta.get("dtype", ""), None)
    if saved is not None and saved != dtype:
        raise BadInput(
            f"this copy was quantized for {meta['dtype']} but the device runs {str(dtype)[6:]}: "
            f"make a copy for this device with `vault quantize --dtype {str(dtype)[6:]}`",
            field="model",
        )
    cls, config = _transformer_class(folder)
    with torch.device("meta"):
        model = cls.from_config(config)
    requantize(model, load_file(str(folder / WEIGHTS_NAME)), meta["map"], device=torch.device("cpu"))
    model.eval()
    return model
