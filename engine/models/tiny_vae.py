"""The tiny LTX-2.3/2.5 video VAE in the original checkpoint's layout, and the LTX-2.5 diffusion decoder.

The LTX-2.0 tiny VAE (`tiny.py`) has two all-spatiotemporal blocks. The newer tiny models keep the
block structure of the real LTX-2.3/2.5 VAE instead — the configuration diffusers' own converter
writes for them (`get_ltx2_video_vae_config("2.3")` in huggingface/diffusers
scripts/convert_ltx2_to_diffusers.py, commit 7564fb016dabda0c943416190fc92398c50b1b20):

- encoder: four down blocks with downsamplers `spatial, temporal, spatiotemporal, spatiotemporal`
  and a mid block (the original checkpoint's `encoder.down_blocks.0..8`);
- decoder: a mid block and four up blocks `spatiotemporal, spatiotemporal, temporal, spatial`
  without the residual upsampling of 2.0, channel reductions `(2, 2, 1, 2)`, zero padding (the
  original `decoder.up_blocks.0..8`).

Only the sizes are tiny: 8 channels through the encoder, the decoder's real widths divided by
64, one resnet per block, and a patch of 2 instead of 4, so the compression is 16× spatial and 8×
temporal. The downsample pattern does not compress uniformly, so both ratios are passed
explicitly: the pipeline reads them from the VAE.

`original_vae_key` names a parameter the way an original single-file checkpoint does (the inverse
of the rename tables diffusers converts those files with). Note that diffusers 0.42.1's
single-file loader (`convert_ltx2_vae_to_diffusers`) only knows the 2.0 decoder (`up_blocks.0..6`):
the fourth decoder stage of a 2.3/2.5 file (`up_blocks.7`, `up_blocks.8`) needs the two extra
renames of the conversion script's `LTX_2_3_VIDEO_VAE_RENAME_DICT`.
"""

from __future__ import annotations

import re

from aiprod_studio import offline

offline.enforce()

import torch  # noqa: E402

LATENT_CHANNELS = 8
SPATIAL_COMPRESSION = 16
TEMPORAL_COMPRESSION = 8


def build_video_vae(seed: int = 0):
    """The tiny video VAE in the LTX-2.3/2.5 layout (16× spatial, 8× temporal, 8 latent channels)."""
    from diffusers import AutoencoderKLLTX2Video

    torch.manual_seed(seed)
    return AutoencoderKLLTX2Video(
        in_channels=3,
        out_channels=3,
        latent_channels=LATENT_CHANNELS,
        block_out_channels=(8, 8, 8, 8),
        down_block_types=("LTX2VideoDownBlock3D",) * 4,
        layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=(True, True, True, True),
        downsample_type=("spatial", "temporal", "spatiotemporal", "spatiotemporal"),
        decoder_block_out_channels=(4, 8, 8, 16),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        decoder_spatio_temporal_scaling=(True, True, True, True),
        decoder_inject_noise=(False,) * 5,
        upsample_type=("spatiotemporal", "spatiotemporal", "temporal", "spatial"),
        upsample_residual=(False,) * 4,
        upsample_factor=(2, 2, 1, 2),
        timestep_conditioning=False,
        patch_size=2,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
        encoder_spatial_padding_mode="zeros",
        decoder_spatial_padding_mode="zeros",
        # patch 2 × (spatial, spatiotemporal, spatiotemporal) and (temporal, spatiotemporal,
        # spatiotemporal): the class's default formula would count all four blocks on both axes.
        spatial_compression_ratio=SPATIAL_COMPRESSION,
        temporal_compression_ratio=TEMPORAL_COMPRESSION,
    )


def build_diffusion_decoder(seed: int = 0):
    """The tiny LTX-2.5 diffusion decoder for the tiny VAE's latent space (16× spatial, 8× temporal).

    As the real one (diffusers `get_ltx2_diffusion_video_vae_config("2.5")`): four deterministic
    neighborhood-attention stages with pixel-shuffle upsampling, then one x0 diffusion step over
    4×4 pixel patches. Tiny: one block per stage, 3×3×3 windows (the real 7×7 and 11×11×11 windows
    need latent grids of 7 and more), widths (32, 16, 8, 8, 8), and the third upsample temporal
    only, so the strides compose to 4× spatial × patch 4 = 16× and 8× temporal. The attention is
    FlexAttention's unfused CPU path; 4×4 patches keep its score matrices small.
    """
    from diffusers import LTX2VideoDiffusionDecoderModel

    torch.manual_seed(seed)
    return LTX2VideoDiffusionDecoderModel(
        out_channels=3,
        latent_channels=LATENT_CHANNELS,
        patch_size=4,
        decoder_head_dim=8,
        decoder_stage_channels=(32, 16, 8, 8, 8),
        decoder_stage_depths=(1, 1, 1, 1, 1),
        decoder_stage_kernels=((3, 3, 3),) * 4,
        decoder_upsample_strides=((1, 2, 2), (2, 1, 1), (2, 1, 1), (2, 2, 2)),
        decoder_upsample_channel_reductions=(2, 2, 1, 1),
        decoder_stage5_kernel=(3, 3, 3),
        decoder_t_emb_dim=16,
        decoder_model_output_type="x0",
        decoder_num_inference_steps=1,
        spatial_compression_ratio=SPATIAL_COMPRESSION,
        temporal_compression_ratio=TEMPORAL_COMPRESSION,
    )


# diffusers name → original name: each diffusers block holds two original blocks (its resnets,
# then its down/upsampler); the encoder's mid block comes last, the decoder's first.
_BLOCK_RULES = (
    (re.compile(r"^encoder\.down_blocks\.(\d+)\.downsamplers\.0\."), lambda i: f"encoder.down_blocks.{2 * i + 1}."),
    (re.compile(r"^encoder\.down_blocks\.(\d+)\."), lambda i: f"encoder.down_blocks.{2 * i}."),
    (re.compile(r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\."), lambda i: f"decoder.up_blocks.{2 * i + 1}."),
    (re.compile(r"^decoder\.up_blocks\.(\d+)\."), lambda i: f"decoder.up_blocks.{2 * i + 2}."),
)


def original_vae_key(key: str, num_down_blocks: int = 4) -> str:
    """The name an original LTX-2 single-file checkpoint gives the video VAE parameter `key`."""
    if key in ("latents_mean", "latents_std"):
        return "vae.per_channel_statistics." + ("mean-of-means" if key == "latents_mean" else "std-of-means")
    for pattern, name in _BLOCK_RULES:
        match = pattern.match(key)
        if match:
            key = name(int(match.group(1))) + key[match.end() :]
            break
    else:
        key = key.replace("encoder.mid_block.", f"encoder.down_blocks.{2 * num_down_blocks}.")
        key = key.replace("decoder.mid_block.", "decoder.up_blocks.0.")
    return "vae." + key.replace(".resnets.", ".res_blocks.")
