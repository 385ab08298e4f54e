"""Converting an original single-file LTX-2 checkpoint's components, checked key by key.

The file's keys are grouped by component (`PARTS`), renamed as diffusers' single-file converters
rename them (plus the names they lack for later generations), and compared, names and shapes,
with the `like` pipeline's files, all from safetensors headers, before any tensor is read
(`plan_import`). `convert_part` then converts one component from its own tensors through
diffusers' single-file loader and checks the model it returns. `single_file` builds the entry.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from aiprod_studio.errors import BadInput, Cancelled, IntegrityError


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
