"""Tiny LTX-2.3 and LTX-2.5 pipelines, built offline from configs like the LTX-2.0 tiny (`tiny.py`).

Each has every component its real generation ships in diffusers 0.42.1, at a size that saves to
about a megabyte and renders 17 frames at 64×64 with sound in well under a second on a CPU, so the
studio's generation-specific paths (prompt modulation, the bandwidth-extension vocoder, Gemma 4,
the duration head, the diffusion decoder) run on real files. The flags follow the configurations
diffusers' converter writes for the real models (`get_ltx2_*_config("2.3" | "2.5")` in
huggingface/diffusers scripts/convert_ltx2_to_diffusers.py, commit
7564fb016dabda0c943416190fc92398c50b1b20); only sizes are tiny.

- **2.3**: Gemma 3 (the 2.0 tiny's), transformer with prompt modulation (`cross_attn_mod`,
  `audio_cross_attn_mod`), gated attention, the perturbed-attention processor STG uses, no caption
  projection (the connectors project per modality instead), the 2.3-layout video VAE
  (`tiny_vae.py`) and the bandwidth-extension vocoder (16 kHz → 48 kHz).
- **2.5**: the same, with a Gemma 4 text encoder (`Gemma4UnifiedForConditionalGeneration`, text
  only), a bias-free video feed-forward, the keyframe position embedding, a `duration_head`, and a
  diffusion decoder saved in `diffusion_decoder/` for `LTX2VideoDiffusionDecodePipeline`. No
  `prompt_enhancer`/`processor`: the real ones are a separate Gemma 4 chat model and its
  multimodal processor, which a word-level tokenizer cannot stand in for.

Every component is seeded; two builds give byte-identical files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from aiprod_studio import offline

offline.enforce()

import torch  # noqa: E402

from engine.models import tiny, tiny_vae  # noqa: E402

TINY_NAMES = {"2.0": "aiprod-tiny-ltx2", "2.3": "aiprod-tiny-ltx23", "2.5": "aiprod-tiny-ltx25"}
GENERATIONS = tuple(TINY_NAMES)
DIFFUSION_DECODER = "diffusion_decoder"

# The transformer's widths: video 2 heads × 8, audio 2 heads × 4 (as the 2.0 tiny).
VIDEO_WIDTH = 16
AUDIO_WIDTH = 8
# What the duration head's random weights predict, about: exp(bias) seconds.
DURATION_S = 2.0


def tiny_defaults(generation: str) -> dict[str, Any]:
    """The render form's starting values for a tiny model of `generation`: the 2.0 tiny's sizes,
    with spatio-temporal guidance on block 1 for 2.3/2.5 (their recommended block 28 does not
    exist in a two-layer transformer)."""
    defaults = {**tiny.TINY_DEFAULTS, "advanced": dict(tiny.TINY_DEFAULTS["advanced"])}
    if generation != "2.0":
        defaults["advanced"]["spatio_temporal_guidance_blocks"] = [1]
    return defaults


def _check(generation: str) -> None:
    if generation not in TINY_NAMES:
        raise ValueError(f"generation must be one of {', '.join(GENERATIONS)}, got {generation!r}")


def build_gemma4(tokenizer, seed: int = 0):
    """A two-layer, text-only Gemma 4 (`gemma4_unified`) with the word-level tokenizer's vocabulary.

    Its hidden states (embeddings + 2 layers) feed the connectors exactly as Gemma 3's do. The
    full-attention layer's head size (`global_head_dim`, 512 in the real model) is set to the
    sliding layers' 8; no vision or audio tower."""
    from transformers import Gemma4UnifiedConfig, Gemma4UnifiedForConditionalGeneration

    torch.manual_seed(seed)
    config = Gemma4UnifiedConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": tiny.TEXT_HIDDEN,
            "intermediate_size": 64,
            "num_hidden_layers": tiny.TEXT_LAYERS,
            "layer_types": ["sliding_attention", "full_attention"],
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 8,
            "global_head_dim": 8,
            "max_position_embeddings": 256,
            "sliding_window": 64,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "bos_token_id": tokenizer.bos_token_id,
        },
        vision_config=None,
        audio_config=None,
    )
    return Gemma4UnifiedForConditionalGeneration(config).eval()


def build_connectors(seed: int = 0):
    """LTX-2.3/2.5 text connectors: per-modality projections straight into the transformer's video
    and audio widths (so each connector is as wide as its stream, not as the text encoder), gated
    attention, learnable registers in place of padding (8; the real ones have 128)."""
    from diffusers.pipelines.ltx2 import LTX2TextConnectors

    torch.manual_seed(seed)
    return LTX2TextConnectors(
        caption_channels=tiny.TEXT_HIDDEN,
        text_proj_in_factor=tiny.TEXT_LAYERS + 1,
        video_connector_num_attention_heads=2,
        video_connector_attention_head_dim=VIDEO_WIDTH // 2,
        video_connector_num_layers=1,
        video_connector_num_learnable_registers=8,
        video_gated_attn=True,
        audio_connector_num_attention_heads=2,
        audio_connector_attention_head_dim=AUDIO_WIDTH // 2,
        audio_connector_num_layers=1,
        audio_connector_num_learnable_registers=8,
        audio_gated_attn=True,
        connector_rope_base_seq_len=32,
        rope_double_precision=False,
        rope_type="split",
        per_modality_projections=True,
        video_hidden_dim=VIDEO_WIDTH,
        audio_hidden_dim=AUDIO_WIDTH,
        proj_bias=True,
    )


def build_transformer(generation: str, seed: int = 0):
    """The two-layer audio-video transformer with the 2.3 flags (and 2.5's two additions)."""
    from diffusers import LTX2VideoTransformer3DModel

    torch.manual_seed(seed)
    return LTX2VideoTransformer3DModel(
        in_channels=tiny_vae.LATENT_CHANNELS,
        out_channels=tiny_vae.LATENT_CHANNELS,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=2,
        attention_head_dim=VIDEO_WIDTH // 2,
        cross_attention_dim=VIDEO_WIDTH,
        vae_scale_factors=(tiny_vae.TEMPORAL_COMPRESSION, tiny_vae.SPATIAL_COMPRESSION, tiny_vae.SPATIAL_COMPRESSION),
        audio_in_channels=4,
        audio_out_channels=4,
        audio_num_attention_heads=2,
        audio_attention_head_dim=AUDIO_WIDTH // 2,
        audio_cross_attention_dim=AUDIO_WIDTH,
        audio_sampling_rate=16000,
        audio_hop_length=160,
        num_layers=2,
        qk_norm="rms_norm_across_heads",
        caption_channels=tiny.TEXT_HIDDEN,
        rope_double_precision=False,
        rope_type="split",
        # LTX-2.3: prompt modulation (9 AdaLN parameters + prompt AdaLN), gated attention, the
        # perturbed-attention processor for STG, no caption projection (the connectors project).
        cross_attn_mod=True,
        audio_cross_attn_mod=True,
        gated_attn=True,
        audio_gated_attn=True,
        perturbed_attn=True,
        use_prompt_embeddings=False,
        # LTX-2.5: a bias-free video feed-forward and the keyframe absolute-position embedding.
        ff_bias=generation != "2.5",
        use_keyframes_abs_pos_embedding=generation == "2.5",
    )


def build_vocoder(seed: int = 0):
    """The bandwidth-extension vocoder: a snake-activation vocoder makes 16 kHz from the 8-bin mel
    (160 samples a frame, the mel hop, so the waveform lasts as long as the mel), a mel STFT of
    that waveform (hop 40) feeds a second generator whose upsampling (120 = hop × 3) matches the
    3× resampled skip path: 48 kHz out, three samples for each 16 kHz one."""
    from diffusers.pipelines.ltx2.vocoder import LTX2VocoderWithBWE

    torch.manual_seed(seed)
    vocoder = LTX2VocoderWithBWE(
        in_channels=2 * 8,
        hidden_channels=32,
        out_channels=2,
        upsample_kernel_sizes=[16, 11, 8],
        upsample_factors=[8, 5, 4],
        resnet_kernel_sizes=[3],
        resnet_dilations=[[1]],
        act_fn="snakebeta",
        antialias=True,
        final_act_fn=None,
        final_bias=False,
        bwe_in_channels=2 * 8,
        bwe_hidden_channels=16,
        bwe_out_channels=2,
        bwe_upsample_kernel_sizes=[12, 11, 8],
        bwe_upsample_factors=[6, 5, 4],
        bwe_resnet_kernel_sizes=[3],
        bwe_resnet_dilations=[[1]],
        bwe_act_fn="snakebeta",
        bwe_antialias=True,
        bwe_final_act_fn=None,
        bwe_final_bias=False,
        filter_length=64,
        hop_length=40,
        window_length=64,
        num_mel_channels=8,
        input_sampling_rate=16000,
        output_sampling_rate=48000,
    )
    # The STFT and mel bases are checkpoint buffers (zeros until loaded): fill them with a Hann-
    # windowed DFT and a triangular mel filterbank, so the extender sees a real log-mel.
    stft, mel = vocoder.mel_stft.stft_fn, vocoder.mel_stft
    n_fft, rate = vocoder.config.filter_length, vocoder.config.input_sampling_rate
    freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
    angle = 2 * math.pi * freqs[:, None] * torch.arange(n_fft, dtype=torch.float64)[None, :] / n_fft
    window = torch.hann_window(vocoder.config.window_length, periodic=True, dtype=torch.float64)
    basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window
    stft.forward_basis.copy_(basis[:, None, :].float())  # (`inverse_basis` is never used: left zero)
    hz = freqs * rate / n_fft
    to_mel = lambda f: 2595 * torch.log10(1 + f / 700)  # noqa: E731
    edges = torch.linspace(0, float(to_mel(torch.tensor(rate / 2.0))), mel.mel_basis.shape[0] + 2, dtype=torch.float64)
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    m = to_mel(hz)[None, :]
    mel.mel_basis.copy_(torch.clamp(torch.minimum((m - low) / (centre - low), (high - m) / (high - centre)), 0).float())
    return vocoder


def build_duration_head(seed: int = 0):
    """A duration head over the connectors' video (16) and audio (8) tokens: random weights, with
    the output bias set to log(DURATION_S), so every prompt's predicted duration lands near 2 s
    (2.1 s: random pooling barely tells prompts apart) and the pipeline picks 41 frames at 24 fps."""
    from diffusers.pipelines.ltx2 import LTX2DurationHead

    torch.manual_seed(seed)
    head = LTX2DurationHead(
        video_cross_attention_dim=VIDEO_WIDTH,
        audio_cross_attention_dim=AUDIO_WIDTH,
        pooler_hidden_dim=16,
        num_queries=1,
        num_pooler_heads=4,
        mlp_hidden_dim=16,
    )
    with torch.no_grad():
        head.mlp_out.bias.fill_(math.log(DURATION_S))
    return head


def build_pipeline(generation: str, seed: int = 0):
    """The tiny pipeline of LTX-`generation` ("2.0", "2.3" or "2.5") in memory (float32, CPU)."""
    _check(generation)
    if generation == "2.0":
        return tiny.build_pipeline(seed)
    from diffusers import LTX2Pipeline

    tokenizer = tiny.build_tokenizer()
    text_encoder = build_gemma4(tokenizer, seed) if generation == "2.5" else tiny.build_gemma3(tokenizer, seed)
    return LTX2Pipeline(
        scheduler=tiny.build_scheduler(),
        vae=tiny_vae.build_video_vae(seed),
        audio_vae=tiny.build_audio_vae(seed),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        connectors=build_connectors(seed),
        transformer=build_transformer(generation, seed),
        vocoder=build_vocoder(seed),
        duration_head=build_duration_head(seed) if generation == "2.5" else None,
    )


def save_pipeline(target: Path, generation: str, seed: int = 0) -> Path:
    """Build and save the tiny pipeline of `generation` to `target` (replacing it), atomically; a
    2.5 pipeline's folder also holds the diffusion decoder in `diffusion_decoder/`."""
    _check(generation)
    if generation == "2.0":
        return tiny.save_pipeline(target, seed)
    pipe = build_pipeline(generation, seed)
    decoder = tiny_vae.build_diffusion_decoder(seed) if generation == "2.5" else None

    def write(tmp: Path) -> None:
        pipe.save_pretrained(tmp, safe_serialization=True)
        if decoder is not None:
            decoder.save_pretrained(tmp / DIFFUSION_DECODER, safe_serialization=True)

    return tiny.write_atomically(target, write)


_DESCRIPTIONS = {
    "2.3": "AIPROD tiny LTX-2.3 test model (random weights, built offline): prompt modulation, gated attention, "
    "the 2.3 video VAE layout, a 16→48 kHz bandwidth-extension vocoder; proves the whole path, renders "
    "noise-like clips. Spatio-temporal guidance on block 1 of its 2 layers.",
    "2.5": "AIPROD tiny LTX-2.5 test model (random weights, built offline): Gemma 4 text encoder, a duration head "
    "(about 2 s), a diffusion decoder for the quality decode, the 2.3 video VAE layout and bandwidth-extension "
    "vocoder; proves the whole path, renders noise-like clips. Spatio-temporal guidance on block 1 of its 2 layers.",
}


def make_tiny_generation(vault, generation: str, name: str | None = None, seed: int = 0):
    """Build the tiny model of `generation` into the vault (`pipelines/<name>`) and record it in the
    manifest as `tiny.make_tiny` records the 2.0 one."""
    _check(generation)
    name = name or TINY_NAMES[generation]
    if generation == "2.0":
        return tiny.make_tiny(vault, name=name, seed=seed)
    from aiprod_studio.vault.manifest import KIND_DIRS

    rel = f"{KIND_DIRS['pipeline']}/{name}"
    save_pipeline(vault.root / rel, generation, seed=seed)
    return vault.record(
        name,
        "pipeline",
        "ltx2",
        rel,
        license="Apache-2.0",
        test_model=True,
        defaults=tiny_defaults(generation),
        description=_DESCRIPTIONS[generation],
    )
