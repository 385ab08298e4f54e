"""Loading diffusers pipelines from the vault, quantized as asked, warm through the device lease.

A pipeline is loaded only from a vault entry whose files pass the manifest check, only
from local files (`local_files_only=True`, safetensors only, no remote code), and with
the pipeline class its family names — never whatever class a config file asks for.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING

from aiprod_studio.errors import BadInput, IntegrityError
from aiprod_studio.vault.manifest import Entry
from aiprod_studio.vault.store import Vault
from engine.device.lease import DeviceLease
from engine.device.plan import DevicePlan
from engine.models.quantize import quantize_transformer
from engine.models.quantized import QMAP_NAME, load_quantized_transformer

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline as Pipeline

log = logging.getLogger(__name__)

FAMILY_PIPELINES = {"ltx2": "LTX2Pipeline", "ltx": "LTXPipeline"}


def load_pipeline(
    vault: Vault, entry: Entry, plan: DevicePlan, quantization: str = "none", offload: str = "none"
) -> Pipeline:
    """Load a vault pipeline entry on `plan.device` in `plan.dtype`, quantized and offloaded as asked.

    `offload="model"` keeps each component on the CPU until it runs; `"group"` streams each
    component's blocks to the GPU one group ahead of the one computing (CUDA streams overlap
    the copy with the work); `"sequential"` moves weights layer by layer (least memory,
    slowest). All only mean something on CUDA.
    """
    import diffusers

    # 1. The entry must be a pipeline of a family we know, and pass its manifest check.
    if entry.kind != "pipeline":
        raise BadInput(f"model {entry.name!r} is a {entry.kind}, not a pipeline", field="model")
    class_name = FAMILY_PIPELINES.get(entry.family)
    if class_name is None:
        raise BadInput(
            f"model {entry.name!r} has family {entry.family!r}; known: {', '.join(FAMILY_PIPELINES)}", field="model"
        )
    vault.require_ok(entry)
    folder = vault.entry_dir(entry)
    index = json.loads((folder / "model_index.json").read_text())
    if index.get("_class_name") != class_name:
        raise IntegrityError(
            f"{folder}/model_index.json names {index.get('_class_name')!r}, "
            f"but family {entry.family!r} needs {class_name}"
        )

    if entry.quantization and quantization not in ("none", entry.quantization):
        raise BadInput(
            f"model {entry.name!r} is stored quantized as {entry.quantization}; choose quantization "
            f"none or {entry.quantization}, got {quantization!r}",
            field="quantization",
        )

    # 2. Load from local files only, safetensors only, quietly (progress goes through our events).
    diffusers.utils.logging.disable_progress_bar()
    started = time.perf_counter()
    pipeline_cls = getattr(diffusers, class_name)
    components = {}
    for optional in ("prompt_enhancer", "processor"):  # LTX-2.5's enhancer (~10 GB) is not used to render
        if isinstance(index.get(optional), list) and index[optional][0]:
            components[optional] = None
    if entry.quantization:  # a saved quantized copy: rebuilt as stored, never quantized again
        components["transformer"] = load_quantized_transformer(folder / "transformer", plan.dtype)
    pipe = pipeline_cls.from_pretrained(
        folder, local_files_only=True, use_safetensors=True, dtype=plan.dtype, **components
    )
    pipe.set_progress_bar_config(disable=True)
    pipe._aiprod_folder = folder  # where parts loaded on demand live (the diffusion decoder)

    # 3. Quantize the transformer (on the CPU, before it moves), then place everything.
    if not entry.quantization:
        quantize_transformer(pipe.transformer, quantization)
    if plan.device.type == "cuda" and offload == "model":
        pipe.enable_model_cpu_offload(device=plan.device)
    elif plan.device.type == "cuda" and offload == "group":
        import torch

        pipe.enable_group_offload(
            onload_device=plan.device,
            offload_device=torch.device("cpu"),
            offload_type="block_level",
            num_blocks_per_group=1,
            use_stream=True,
        )
    elif plan.device.type == "cuda" and offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=plan.device)
    else:
        pipe.to(plan.device)
    log.info("loaded %s (%s, %s) in %.2fs", entry.name, plan.label, quantization, time.perf_counter() - started)
    return pipe


def stored_copy(vault: Vault, entry: Entry, quantization: str, plan: DevicePlan) -> Entry:
    """The vault's copy of `entry` stored quantized as `quantization` for this device's dtype, when it
    has one that passes its check (loaded as stored: no quantizing at every start, no
    full-precision transformer in RAM), else `entry` itself."""
    if entry.quantization or quantization == "none":
        return entry
    dtype = str(plan.dtype).removeprefix("torch.")
    for copy in vault.entries(kind="pipeline"):
        if copy.quantization != quantization or copy.derived_from != f"{entry.name}@{entry.digest}":
            continue
        try:
            qmap = json.loads((vault.entry_dir(copy) / "transformer" / QMAP_NAME).read_text())
            if qmap.get("dtype") == dtype:
                vault.require_ok(copy)
                return copy
        except (OSError, ValueError, IntegrityError) as exc:
            log.warning("not using the quantized copy %s: %s", copy.name, exc)
    return entry


def warm_pipeline(lease: DeviceLease, vault: Vault, entry: Entry, quantization: str, offload: str = "none") -> Pipeline:
    """The lease's warm pipeline for this entry and settings, loaded if another one is warm."""
    plan = lease.plan
    key = (entry.name, entry.digest, str(plan.device), str(plan.dtype), quantization, offload)
    return lease.warm(
        key, lambda: load_pipeline(vault, entry, plan, quantization, offload), still_ok=lambda: vault.require_ok(entry)
    )  # a warm one too is refused once its files fail


def own_pipeline(lease: DeviceLease, vault: Vault, entry: Entry, quantization: str = "none") -> Pipeline:
    """A pipeline the caller may take apart (training drops its encoders): the warm one is freed first."""
    return lease.own(lambda: load_pipeline(vault, entry, lease.plan, quantization))
