"""The published LTX-2.0 and Gemma 3 12B configurations for `fullsize.py`, and their builders.

The configurations are restated from their cited sources with the published parameter counts
they are checked against. The builders make each model on the `meta` device (free: the
published size can be counted without memory) and materialise it with random weights one unit
at a time straight on the device, quantized there when asked.
"""

from __future__ import annotations

from typing import Any

# LTX-2.0 transformer as published: `get_ltx2_transformer_config("2.0")["diffusers_config"]` in
# huggingface/diffusers scripts/convert_ltx2_to_diffusers.py (commit 8d8a65621412d66ba493717f8c4574a1af46732d).
LTX2_TRANSFORMER_CONFIG: dict[str, Any] = {
    "in_channels": 128,
    "out_channels": 128,
    "patch_size": 1,
    "patch_size_t": 1,
    "num_attention_heads": 32,
    "attention_head_dim": 128,
    "cross_attention_dim": 4096,
    "vae_scale_factors": (8, 32, 32),
    "pos_embed_max_pos": 20,
    "base_height": 2048,
    "base_width": 2048,
    "audio_in_channels": 128,
    "audio_out_channels": 128,
    "audio_patch_size": 1,
    "audio_patch_size_t": 1,
    "audio_num_attention_heads": 32,
    "audio_attention_head_dim": 64,
    "audio_cross_attention_dim": 2048,
    "audio_scale_factor": 4,
    "audio_pos_embed_max_pos": 20,
    "audio_sampling_rate": 16000,
    "audio_hop_length": 160,
    "num_layers": 48,
    "activation_fn": "gelu-approximate",
    "qk_norm": "rms_norm_across_heads",
    "norm_elementwise_affine": False,
    "norm_eps": 1e-6,
    "caption_channels": 3840,
    "attention_bias": True,
    "attention_out_bias": True,
    "rope_theta": 10000.0,
    "rope_double_precision": True,
    "causal_offset": 1,
    "timestep_scale_multiplier": 1000,
    "cross_attn_timestep_scale_multiplier": 1000,
    "rope_type": "split",
}

# LTX-2.0 text connectors: `get_ltx2_connectors_config("2.0")` in the same file and commit.
LTX2_CONNECTORS_CONFIG: dict[str, Any] = {
    "caption_channels": 3840,
    "text_proj_in_factor": 49,
    "video_connector_num_attention_heads": 30,
    "video_connector_attention_head_dim": 128,
    "video_connector_num_layers": 2,
    "video_connector_num_learnable_registers": 128,
    "audio_connector_num_attention_heads": 30,
    "audio_connector_attention_head_dim": 128,
    "audio_connector_num_layers": 2,
    "audio_connector_num_learnable_registers": 128,
    "connector_rope_base_seq_len": 4096,
    "rope_theta": 10000.0,
    "rope_double_precision": True,
    "causal_temporal_positioning": False,
    "rope_type": "split",
}

# Gemma 3 12B (the converter's text encoder, google/gemma-3-12b-it-qat-q4_0-unquantized): its config.json
# as restated in ostris/ai-toolkit extensions_built_in/diffusion_models/ltx2/ltx2.py (Gemma3Config(**{...})).
GEMMA3_12B_CONFIG: dict[str, Any] = {
    "boi_token_index": 255999,
    "eoi_token_index": 256000,
    "image_token_index": 262144,
    "mm_tokens_per_image": 256,
    "text_config": {
        "head_dim": 256,
        "hidden_activation": "gelu_pytorch_tanh",
        "hidden_size": 3840,
        "intermediate_size": 15360,
        "max_position_embeddings": 131072,
        "num_attention_heads": 16,
        "num_hidden_layers": 48,
        "num_key_value_heads": 8,
        "query_pre_attn_scalar": 256,
        "rms_norm_eps": 1e-06,
        "rope_local_base_freq": 10000,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
        "rope_theta": 1000000,
        "sliding_window": 1024,
        "vocab_size": 262208,
    },
    "vision_config": {
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_size": 1152,
        "image_size": 896,
        "intermediate_size": 4304,
        "layer_norm_eps": 1e-06,
        "num_attention_heads": 16,
        "num_channels": 3,
        "num_hidden_layers": 27,
        "patch_size": 14,
        "vision_use_head": False,
    },
}

# Published sizes. LTX-2.0 is the "19b" model of Lightricks/LTX-2 README.md (LTX-2-19b-* LoRAs). Gemma 3 12B
# (vision + text): 12,187,079,280 parameters in keras-team/keras-hub keras_hub/src/models/gemma3/gemma3_presets.py
# ("gemma3_instruct_12b"), whose vocabulary has 262,144 tokens; the Hugging Face config has 64 more (x 3840).
PUBLISHED_TRANSFORMER_PARAMS = 19_000_000_000
PUBLISHED_GEMMA_PARAMS = 12_187_079_280 + 64 * 3840

VAE_SPATIAL, VAE_TEMPORAL = 32, 8  # LTX-2 video VAE compression (latent channels = in_channels = 128)
# the pipeline's audio defaults (LTX-2 audio VAE): 16 kHz, hop 160, 4x temporal, 8 channels x 64/4 mel bins
AUDIO_SAMPLING_RATE, AUDIO_HOP_LENGTH, AUDIO_VAE_TEMPORAL = 16000, 160, 4
AUDIO_LATENT_CHANNELS, AUDIO_MEL_BINS, AUDIO_VAE_MEL = 8, 64, 4


def scaled_configs(scale: int, layers: int, text_layers: int) -> tuple[dict, dict, dict]:
    """The published configs at 1/`scale` width (head_dim / scale, same head counts) and the given depths."""
    t = dict(LTX2_TRANSFORMER_CONFIG, num_layers=layers)
    for key in ("attention_head_dim", "audio_attention_head_dim", "cross_attention_dim"):
        t[key] = LTX2_TRANSFORMER_CONFIG[key] // scale
    t["audio_cross_attention_dim"] = LTX2_TRANSFORMER_CONFIG["audio_cross_attention_dim"] // scale
    t["caption_channels"] = LTX2_TRANSFORMER_CONFIG["caption_channels"] // scale
    text = dict(GEMMA3_12B_CONFIG["text_config"], num_hidden_layers=text_layers)
    for key in ("head_dim", "hidden_size", "intermediate_size", "query_pre_attn_scalar"):
        text[key] = GEMMA3_12B_CONFIG["text_config"][key] // scale
    vision = dict(GEMMA3_12B_CONFIG["vision_config"])
    for key in ("hidden_size", "intermediate_size"):
        vision[key] = GEMMA3_12B_CONFIG["vision_config"][key] // scale
    gemma = dict(GEMMA3_12B_CONFIG, text_config=text, vision_config=vision)
    c = dict(LTX2_CONNECTORS_CONFIG, caption_channels=text["hidden_size"], text_proj_in_factor=text_layers + 1)
    for key in ("video_connector_attention_head_dim", "audio_connector_attention_head_dim"):
        c[key] = LTX2_CONNECTORS_CONFIG[key] // scale
    return t, gemma, c


def count_params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def meta_transformer(config: dict, dtype):
    import torch
    from diffusers import LTX2VideoTransformer3DModel

    with torch.device("meta"):
        model = LTX2VideoTransformer3DModel.from_config(config)
    # nn.Module's own cast: diffusers' `to` warns about an (empty) keep-in-float32 list
    return torch.nn.Module.to(model, dtype)


def meta_text_encoder(gemma_config: dict, connectors_config: dict, dtype):
    import torch
    from diffusers.pipelines.ltx2 import LTX2TextConnectors
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    with torch.device("meta"):
        gemma = Gemma3ForConditionalGeneration(Gemma3Config(**gemma_config)).to(dtype)
        connectors = LTX2TextConnectors.from_config(connectors_config)
    return gemma, torch.nn.Module.to(connectors, dtype)


def random_init_(module, prefix: str = "", recurse: bool = True) -> None:
    """Small random weights in place: N(0, 0.02) matrices, zero biases, unit norm scales."""
    import torch

    with torch.no_grad():
        for name, p in module.named_parameters(prefix=prefix, recurse=recurse):
            if name.endswith("bias"):
                p.zero_()
            elif "norm" in name:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02)


def qtype(quantization: str):
    from optimum.quanto import qfloat8, qint8

    return {"fp8": qfloat8, "int8": qint8}[quantization]


def materialise_transformer(model, device, quantization: str, park) -> None:
    """Give a meta-device transformer real random weights on `device` one unit (block) at a time.

    A unit is quantized there when asked (only one unit's full-precision weights ever exist on
    the device), then moved to `park` (the CPU, for offloaded profiles).
    """
    import torch
    from optimum.quanto import freeze, quantize

    # 1. The model's own parameters (output scale/shift tables) first; they stay with the root module.
    model.to_empty(device=device, recurse=False)
    random_init_(model, recurse=False)
    # 2. Then every child, and each transformer block on its own.
    units = [n for n, _ in model.named_children() if n != "transformer_blocks"]
    units += [f"transformer_blocks.{i}" for i in range(len(model.transformer_blocks))]
    for name in units:
        unit = model.get_submodule(name)
        unit.to_empty(device=device)
        random_init_(unit)
        if quantization != "none":
            quantize(model, weights=qtype(quantization), include=[name, f"{name}.*"])
            unit = model.get_submodule(name)  # a Linear child is replaced by its quantized twin
            freeze(unit)
        if park != device:
            unit.to(park)
    if park != device:
        model.to(park)  # the root's own tables; the units are there already
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def materialise_text_encoder(gemma, connectors, device) -> None:
    """Random weights for Gemma (its own initialiser: buffers such as RoPE frequencies too) and the connectors."""
    import torch

    gemma.to_empty(device=device)
    with torch.no_grad():
        for m in gemma.modules():
            gemma._init_weights(m)
        for name, buf in gemma.named_buffers():
            if name.endswith("position_ids"):
                buf.copy_(torch.arange(buf.shape[-1], device=device).expand_as(buf))
    connectors.to_empty(device=device)
    random_init_(connectors)
