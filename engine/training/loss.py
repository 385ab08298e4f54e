"""The flow-matching loss of LoRA training, and the noise levels it is drawn at.

`x_t = (1-σ)·x0 + σ·ε`; the transformer predicts the velocity `ε - x0`; the loss is the
mean squared error. σ comes from a logit-normal shifted toward noise (`timestep_shift`),
as LTX-2's trainer does. The audio stream is held silent: the LoRA learns the picture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline as Pipeline


@dataclass(frozen=True)
class Geometry:
    """What the loss needs of the pipeline once its encoders are gone: patching and audio sizes."""

    audio_sr: int
    hop: int
    a_ratio: int
    a_channels: int
    patch: int
    patch_t: int
    t_ratio: int
    pack: Callable[..., torch.Tensor]

    @classmethod
    def of(cls, pipe: Pipeline) -> Geometry:
        audio = pipe.audio_vae.config
        return cls(
            audio_sr=pipe.audio_sampling_rate,
            hop=pipe.audio_hop_length,
            a_ratio=pipe.audio_vae_temporal_compression_ratio,
            a_channels=audio.latent_channels * (audio.mel_bins // pipe.audio_vae_mel_compression_ratio),
            patch=pipe.transformer_spatial_patch_size,
            patch_t=pipe.transformer_temporal_patch_size,
            t_ratio=pipe.vae_temporal_compression_ratio,
            pack=type(pipe)._pack_latents,
        )


def shifted_sigmas(gen: torch.Generator, count: int, shift: float) -> torch.Tensor:
    """`count` noise levels in (0, 1): a logit-normal draw, shifted toward noise by `shift`."""
    sigma = torch.sigmoid(torch.randn(count, generator=gen))
    return shift * sigma / (1 + (shift - 1) * sigma)


def flow_matching_loss(
    transformer: Any,
    rope_owner: Any,
    geometry: Geometry,
    x0: torch.Tensor,
    noise: torch.Tensor,
    sigma: torch.Tensor,
    batch: list[dict[str, torch.Tensor]],
    latent_shape: tuple[int, int, int],
    fps: int,
) -> torch.Tensor:
    """MSE between the transformer's velocity at `x_t` and `ε - x0`, for packed latents `x0`.

    `rope_owner` is the unwrapped transformer (its rotary embeddings build the coordinates);
    `latent_shape` is (frames, height, width) of the latents before packing."""
    device = x0.device
    f_lat, h_lat, w_lat = latent_shape
    x_t = (1 - sigma[:, None, None]) * x0 + sigma[:, None, None] * noise
    frames = (f_lat - 1) * geometry.t_ratio + 1
    a_frames = max(1, round(frames / fps * geometry.audio_sr / geometry.hop / geometry.a_ratio))
    mask = torch.stack([b["mask"] for b in batch]).to(device)
    pred, _ = transformer(
        hidden_states=x_t,
        audio_hidden_states=torch.zeros(x0.shape[0], a_frames, geometry.a_channels, device=device),
        encoder_hidden_states=torch.stack([b["video"] for b in batch]).to(device),
        audio_encoder_hidden_states=torch.stack([b["audio"] for b in batch]).to(device),
        timestep=sigma * 1000,
        sigma=sigma * 1000,
        encoder_attention_mask=mask,
        audio_encoder_attention_mask=mask,
        num_frames=f_lat,
        height=h_lat,
        width=w_lat,
        fps=float(fps),
        audio_num_frames=a_frames,
        video_coords=rope_owner.rope.prepare_video_coords(x0.shape[0], f_lat, h_lat, w_lat, device, fps=float(fps)),
        audio_coords=rope_owner.audio_rope.prepare_audio_coords(x0.shape[0], a_frames, device),
        isolate_modalities=True,
        use_cross_timestep=True,
        return_dict=False,
    )
    return torch.nn.functional.mse_loss(pred.float(), (noise - x0).float())
