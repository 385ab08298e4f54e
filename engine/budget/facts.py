"""What a pipeline weighs and how big its work gets, read from its files without loading it.

The memory model (`engine/budget/estimate.py`) needs, per component, the number of weights and
the bytes they take as stored (a quantized copy's transformer is stored in 8 bits), and from
the configs the widths that size the work: the transformer's hidden width and depth, the text
encoder's width and depth, the VAE's compression and its decoder's channels. Every number
comes from a safetensors header (the first bytes of the file: shapes and dtypes, no tensor is
read) or a `config.json`, so a 60 GB pipeline is measured in milliseconds.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiprod_studio.errors import BadInput
from engine.models.limits import ModelGrid, read_grid

# Bytes per element of the safetensors dtypes a pipeline may hold.
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
DTYPE_BYTES.update({"F8_E4M3": 1, "F8_E5M2": 1})
MAX_HEADER = 100 * 2**20  # a header bigger than this is not a safetensors header
COMPONENTS = ("transformer", "text_encoder", "connectors", "vae", "audio_vae", "vocoder")


@dataclass(frozen=True)
class Component:
    """One component's weights: how many, the bytes as stored, the blocks it runs in turn."""

    params: int
    stored_bytes: int
    blocks: int = 1  # transformer layers (what block-level offload streams one at a time)


@dataclass(frozen=True)
class ModelFacts:
    """The numbers of one pipeline that decide its memory."""

    name: str
    components: dict[str, Component]
    grid: ModelGrid
    stored_quantization: str | None = None  # the transformer is stored in 8 bits (a vault copy)
    video_width: int = 0  # transformer hidden size (heads × head dim)
    audio_width: int = 0
    latent_channels: int = 0
    audio_tokens_per_s: float = 25.0  # audio latent frames per second of video
    text_width: int = 0  # text encoder hidden size
    text_layers: int = 0  # its depth: LTX-2 keeps every layer's hidden states
    vae_levels: list[tuple[int, int, bool]] = field(default_factory=list)  # decoder (channels, scale, temporal)
    vae_patch: int = 1  # the decoder's last level is at pixels / patch²

    def weight(self, name: str) -> Component:
        return self.components.get(name, Component(0, 0))


def header_sizes(path: Path) -> tuple[int, int]:
    """(elements, bytes) of every tensor in a safetensors file, from its header alone."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(8)
            (length,) = struct.unpack("<Q", raw) if len(raw) == 8 else (0,)
            if not 2 <= length <= MAX_HEADER:
                raise ValueError(f"header length {length}")
            header = json.loads(fh.read(length))
    except (OSError, ValueError, struct.error) as exc:
        raise BadInput(f"{path} is not a readable safetensors file: {exc}", field="model") from None
    elements = stored = 0
    for key, info in header.items():
        if key == "__metadata__" or not isinstance(info, dict):
            continue
        count = math.prod(int(d) for d in info.get("shape", ()))
        elements += count
        stored += count * DTYPE_BYTES.get(str(info.get("dtype")), 4)
    return elements, stored


def _config(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / "config.json").read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInput(f"{folder}/config.json is not a readable config: {exc}", field="model") from None
    return data if isinstance(data, dict) else {}


def _decoder_levels(vae: dict[str, Any]) -> list[tuple[int, int, bool]]:
    """The decoder's levels from the deepest: (channels, spatial upscale to the next, temporal too)."""
    channels = list(vae.get("decoder_block_out_channels") or vae.get("block_out_channels") or (128,))
    scaling = list(vae.get("decoder_spatio_temporal_scaling") or vae.get("spatio_temporal_scaling") or ())
    channels.reverse()
    scaling.reverse()
    return [(int(c), 2, bool(scaling[i]) if i < len(scaling) else True) for i, c in enumerate(channels)]


def read_facts(folder: Path, name: str, family: str = "ltx2", stored_quantization: str | None = None) -> ModelFacts:
    """The facts of a diffusers pipeline folder (a vault entry's files)."""
    folder = Path(folder)
    components = {}
    for part in COMPONENTS:
        files = sorted((folder / part).glob("*.safetensors")) if (folder / part).is_dir() else []
        sizes = [header_sizes(f) for f in files]
        components[part] = Component(sum(s[0] for s in sizes), sum(s[1] for s in sizes))
    tr, vae = _config(folder / "transformer"), _config(folder / "vae")
    text = _config(folder / "text_encoder")
    text = text.get("text_config", text)  # Gemma 3 nests its language model's config
    layers = int(tr.get("num_layers", 1) or 1)
    components["transformer"] = Component(
        components["transformer"].params, components["transformer"].stored_bytes, blocks=layers
    )
    text_layers = int(text.get("num_hidden_layers", 1) or 1)
    components["text_encoder"] = Component(
        components["text_encoder"].params, components["text_encoder"].stored_bytes, blocks=text_layers
    )
    rate = float(tr.get("audio_sampling_rate", 16000)) / float(tr.get("audio_hop_length", 160))
    return ModelFacts(
        name=name,
        components=components,
        grid=read_grid(folder, family),
        stored_quantization=stored_quantization,
        video_width=int(tr.get("num_attention_heads", 32)) * int(tr.get("attention_head_dim", 128)),
        audio_width=int(tr.get("audio_num_attention_heads", 32)) * int(tr.get("audio_attention_head_dim", 64)),
        latent_channels=int(tr.get("in_channels", 128)),
        audio_tokens_per_s=rate / float(tr.get("audio_scale_factor", 4)),
        text_width=int(text.get("hidden_size", 0) or 0),
        text_layers=text_layers,
        vae_levels=_decoder_levels(vae),
        vae_patch=int(vae.get("patch_size", 1) or 1),
    )


def published_ltx2() -> ModelFacts:
    """LTX-2.0 at its published size, for planning without its files (the catalog's minimums, tests).

    Transformer 19 B weights in 48 blocks of width 4096 (32 heads × 128), audio width 2048;
    Gemma 3 12B (48 layers, width 3840); the video VAE (128 latent channels, 32× spatial and
    8× temporal compression, patch 4, decoder channels 256/512/1024) — as the diffusers-format
    release `Lightricks/LTX-2` lays them out. Byte counts are bf16.
    """
    from engine.models.limits import ModelGrid

    def bf16(params: float, blocks: int = 1) -> Component:
        return Component(int(params), int(params) * 2, blocks)

    return ModelFacts(
        name="ltx-2 (published size)",
        components={
            "transformer": bf16(19.0e9, 48),
            "text_encoder": bf16(12.2e9, 48),
            "connectors": bf16(1.5e9, 2),
            "vae": bf16(0.42e9, 4),
            "audio_vae": bf16(0.1e9),
            "vocoder": bf16(0.05e9),
        },
        grid=ModelGrid(family="ltx2", spatial=32, temporal=8, patch=1, patch_t=1),
        video_width=4096,
        audio_width=2048,
        latent_channels=128,
        text_width=3840,
        text_layers=48,
        vae_levels=[(1024, 2, True), (512, 2, True), (256, 2, True)],
        vae_patch=4,
    )


# LTX-2.3 and LTX-2.5 as published, for the catalog's memory needs (`benchmarks/catalog_memory.py`).
#
# Known — counted, not rounded: each component built on the meta device (no memory) by diffusers
# 0.42.1's own classes from the configurations that diffusers' LTX-2 converter restates for each
# version (`get_ltx2_transformer_config`, `…_connectors_config`, `…_video_vae_config`,
# `…_audio_vae_config`, `…_vocoder_config` for "2.3" and "2.5"), then `sum(p.numel())`:
#   transformer 2.3  18,988,838,144  (48 blocks, video 32×128 = 4096 wide, audio 32×64 = 2048;
#                                     gated attention, prompt modulation, no caption projection)
#   transformer 2.5  18,987,859,200  (2.3 less the video feed-forward biases, plus a keyframe embedding)
#   connectors       3,172,227,584   (8 + 8 blocks and the per-modality projections of the 49 stacked
#                                     text states; with them the transformer is the published "22B")
#   video VAE          726,105,969   (the 2.3 VAE, unchanged in 2.5: decoder 1024/512/512/256 channels,
#                                     patch 4, 32× spatial and 8× temporal compression)
#   audio VAE           53,248,146   (as in 2.0)
#   vocoder            128,537,448   (LTX2VocoderWithBWE: 16 kHz vocoder + bandwidth extension to 48 kHz)
# Gemma 3 12B (2.3's text encoder) is LTX-2.0's: 48 layers, 3840 wide, the same 12.2 B as `published_ltx2`.
#
# Estimated: Gemma 4 12B (2.5's text encoder, `Gemma4UnifiedForConditionalGeneration`) is taken from
# its model card as restated publicly (11.95 B weights, 48 layers, 3840 wide; transformers 5.23's
# Gemma 4 configs default a 12B backbone to 3840 wide); diffusers derives 2.5's connectors from that
# width and depth, so they are 2.3's if those are right. The optional parts of 2.5 (the duration
# head, 1.9 M; the diffusion decoder, 0.42 B; the Gemma 4 E2B prompt enhancer) are not loaded by a
# plain render and are left out, as the memory model leaves them out. Byte counts are bf16.
LTX23_TRANSFORMER_PARAMS = 18_988_838_144
LTX25_TRANSFORMER_PARAMS = 18_987_859_200
LTX23_CONNECTORS_PARAMS = 3_172_227_584
LTX23_VAE_PARAMS = 726_105_969
LTX2_AUDIO_VAE_PARAMS = 53_248_146
LTX23_VOCODER_PARAMS = 128_537_448
GEMMA3_12B_PARAMS = 12_200_000_000  # as `published_ltx2` counts it
GEMMA4_12B_PARAMS = 11_950_000_000  # estimated (model card)


def _published_ltx2x(name: str, transformer: int, text_encoder: int) -> ModelFacts:
    """An LTX-2.3-layout pipeline (2.3 or 2.5) at its published size."""
    from engine.models.limits import ModelGrid

    def bf16(params: int, blocks: int = 1) -> Component:
        return Component(params, params * 2, blocks)

    return ModelFacts(
        name=name,
        components={
            "transformer": bf16(transformer, 48),
            "text_encoder": bf16(text_encoder, 48),
            "connectors": bf16(LTX23_CONNECTORS_PARAMS, 8),
            "vae": bf16(LTX23_VAE_PARAMS, 5),  # mid block + 4 up blocks, as `published_ltx2` counts blocks
            "audio_vae": bf16(LTX2_AUDIO_VAE_PARAMS),
            "vocoder": bf16(LTX23_VOCODER_PARAMS),
        },
        grid=ModelGrid(family="ltx2", spatial=32, temporal=8, patch=1, patch_t=1),
        video_width=4096,
        audio_width=2048,
        latent_channels=128,
        text_width=3840,
        text_layers=48,
        # what `read_facts` makes of the 2.3 VAE config (decoder_block_out_channels 256/512/512/1024)
        vae_levels=[(1024, 2, True), (512, 2, True), (512, 2, True), (256, 2, True)],
        vae_patch=4,
    )


def published_ltx23() -> ModelFacts:
    """LTX-2.3 (and its distilled variant: the same weights) at its published size, Gemma 3 12B."""
    return _published_ltx2x("ltx-2.3 (published size)", LTX23_TRANSFORMER_PARAMS, GEMMA3_12B_PARAMS)


def published_ltx25() -> ModelFacts:
    """LTX-2.5 at its published size, Gemma 4 12B (its size estimated, see above)."""
    return _published_ltx2x("ltx-2.5 (published size)", LTX25_TRANSFORMER_PARAMS, GEMMA4_12B_PARAMS)


# The published facts of each generation, by the version `aiprod_studio.generations` reads from configs.
PUBLISHED = {"2.0": published_ltx2, "2.3": published_ltx23, "2.5": published_ltx25}
