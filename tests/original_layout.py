"""Single-file LTX-2 checkpoints in the original (Lightricks / ComfyUI) key layout, made from a
diffusers-format pipeline folder: the inverse of diffusers' single-file key mapping
(`diffusers.loaders.single_file_utils.convert_ltx2_*_to_diffusers`).

Imported by the tests that need such a file (`from original_layout import …`). Each
`*_key` function maps one diffusers key to its original name; `write_checkpoint` writes a
file the way the released checkpoints are laid out: the transformer under
`model.diffusion_model.`, the video VAE under `vae.`, the audio VAE under `audio_vae.`, and
the parts diffusers' converters drop (text connectors inside the transformer prefix, the
VAE's extra statistics, `vocoder.*`, `text_embedding_projection.*`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

# diffusers name → original name, applied in this order to every transformer key
_TRANSFORMER_RENAMES = (
    ("av_cross_attn_video_scale_shift", "av_ca_video_scale_shift_adaln_single"),
    ("av_cross_attn_video_a2v_gate", "av_ca_a2v_gate_adaln_single"),
    ("av_cross_attn_audio_scale_shift", "av_ca_audio_scale_shift_adaln_single"),
    ("av_cross_attn_audio_v2a_gate", "av_ca_v2a_gate_adaln_single"),
    ("video_a2v_cross_attn_scale_shift_table", "scale_shift_table_a2v_ca_video"),
    ("audio_a2v_cross_attn_scale_shift_table", "scale_shift_table_a2v_ca_audio"),
    ("norm_q", "q_norm"),
    ("norm_k", "k_norm"),
    ("proj_in", "patchify_proj"),  # audio_proj_in → audio_patchify_proj as well
)


def transformer_key(key: str) -> str:
    if key.startswith("time_embed."):
        key = "adaln_single." + key.removeprefix("time_embed.")
    elif key.startswith("audio_time_embed."):
        key = "audio_adaln_single." + key.removeprefix("audio_time_embed.")
    for new, old in _TRANSFORMER_RENAMES:
        key = key.replace(new, old)
    return "model.diffusion_model." + key


_STATISTICS = (
    ("latents_mean", "per_channel_statistics.mean-of-means"),
    ("latents_std", "per_channel_statistics.std-of-means"),
)


def vae_key(key: str, encoder_levels: int) -> str:
    """The original video VAE interleaves each level's blocks and its resampler in one list:
    encoder `down_blocks.2i` is level i, `2i+1` its downsampler, `2n` the mid block; decoder
    `up_blocks.0` is the mid block, `2i+1` level i's upsampler, `2i+2` level i."""
    for new, old in _STATISTICS:
        if key == new:
            return f"vae.{old}"
    key = key.replace("resnets", "res_blocks")
    if key.startswith("encoder.mid_block."):
        key = f"encoder.down_blocks.{2 * encoder_levels}." + key.removeprefix("encoder.mid_block.")
    elif key.startswith("decoder.mid_block."):
        key = "decoder.up_blocks.0." + key.removeprefix("decoder.mid_block.")
    elif m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.(.*)", key):
        key = f"encoder.down_blocks.{2 * int(m[1]) + 1}.{m[2]}"
    elif m := re.match(r"encoder\.down_blocks\.(\d+)\.(.*)", key):
        key = f"encoder.down_blocks.{2 * int(m[1])}.{m[2]}"
    elif m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.(.*)", key):
        key = f"decoder.up_blocks.{2 * int(m[1]) + 1}.{m[2]}"
    elif m := re.match(r"decoder\.up_blocks\.(\d+)\.(.*)", key):
        key = f"decoder.up_blocks.{2 * int(m[1]) + 2}.{m[2]}"
    return f"vae.{key}"


def audio_vae_key(key: str) -> str:
    for new, old in _STATISTICS:
        if key == new:
            return f"audio_vae.{old}"
    return f"audio_vae.{key}"


def key_maps(folder: Path) -> dict[str, Callable[[str], str]]:
    """Per component of the diffusers pipeline in `folder`: its key → original key."""
    levels = len(json.loads((folder / "vae" / "config.json").read_text())["block_out_channels"])
    return {"transformer": transformer_key, "vae": lambda k: vae_key(k, levels), "audio_vae": audio_vae_key}


def diffusers_tensors(folder: Path, component: str) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for path in sorted((folder / component).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            out.update({k: f.get_tensor(k) for k in f.keys()})  # noqa: SIM118 - safe_open is not a dict
    return out


def original_state_dict(folder: Path, components: tuple[str, ...], extras: bool = True) -> dict[str, torch.Tensor]:
    """The tensors of `components` of the diffusers pipeline in `folder`, under their original names,
    with (`extras`) what a released combined file carries besides and the converters drop."""
    maps = key_maps(folder)
    out: dict[str, torch.Tensor] = {}
    for component in components:
        for key, tensor in diffusers_tensors(folder, component).items():
            out[maps[component](key)] = tensor
    if extras:
        if "transformer" in components:
            for i in range(2):  # the text connectors live inside the transformer's prefix
                out[f"model.diffusion_model.video_embeddings_connector.transformer_1d_blocks.{i}.attn1.to_q.weight"] = (
                    torch.full((4, 4), float(i))
                )
                out[f"model.diffusion_model.audio_embeddings_connector.learnable_registers.{i}"] = torch.ones(3)
        if "vae" in components:
            out["vae.per_channel_statistics.channel"] = torch.arange(8, dtype=torch.float32)
            out["vae.per_channel_statistics.mean-of-stds"] = torch.ones(8)
        out["vocoder.ups.0.weight"] = torch.zeros(2, 2, 3)
        out["text_embedding_projection.aggregate_embed.weight"] = torch.zeros(4, 6)
    return out


def write_checkpoint(
    folder: Path, path: Path, components: tuple[str, ...] = ("transformer",), extras: bool = True
) -> Path:
    """Write `components` of the pipeline in `folder` as one original-layout checkpoint at `path`."""
    tensors = {k: v.contiguous() for k, v in original_state_dict(folder, components, extras).items()}
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path
