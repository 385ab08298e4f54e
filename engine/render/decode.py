"""The quality decode: LTX-2.5's diffusion decoder turns the video latents into frames.

Unlike the VAE's convolutional decoder it is itself a small diffusion model, stored in the
pipeline folder's `diffusion_decoder/` (it is not an `LTX2Pipeline` component). It is loaded
on the first render that asks for it, from local files only, and stays with the warm
pipeline. The sound is decoded as always (audio VAE, then vocoder).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from aiprod_studio.errors import BadInput

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline as Pipeline

log = logging.getLogger(__name__)

FOLDER = "diffusion_decoder"


def decoder_for(pipe: Pipeline) -> Any:
    """The pipeline's diffusion decoder pipeline, loaded once from its vault folder."""
    cached = getattr(pipe, "_aiprod_decoder", None)
    if cached is not None:
        return cached
    folder = getattr(pipe, "_aiprod_folder", None)
    if folder is None or not (Path(folder) / FOLDER / "config.json").is_file():
        raise BadInput("decoder 'diffusion' needs the model's diffusion_decoder folder; it has none", field="decoder")
    from diffusers import LTX2VideoDiffusionDecodePipeline
    from diffusers.models.autoencoders import LTX2VideoDiffusionDecoderModel

    model = LTX2VideoDiffusionDecoderModel.from_pretrained(
        Path(folder) / FOLDER, local_files_only=True, use_safetensors=True, torch_dtype=pipe.transformer.dtype
    )
    # (no `vae`: the latents come denormalized, and the pipeline's VAE, maybe under an offload hook, stays
    # where it is; the decoder waits on the CPU and moves to the device only while it decodes)
    decoder = LTX2VideoDiffusionDecodePipeline(diffusion_decoder=model, scheduler=pipe.scheduler)
    decoder.set_progress_bar_config(disable=True)
    pipe._aiprod_decoder = decoder
    log.info("diffusion decoder loaded from %s", Path(folder) / FOLDER)
    return decoder


def decode_latents(
    pipe: Pipeline, video_latents: torch.Tensor, audio_latents: torch.Tensor | None, generator: torch.Generator
) -> tuple[np.ndarray, Any]:
    """Frames (F×H×W×3 floats in 0…1) from the pipeline's `output_type="latent"` video latents (already
    denormalized) through the diffusion decoder, and the waveform from its audio latents."""
    decoder = decoder_for(pipe)
    device = pipe._execution_device
    decoder.diffusion_decoder.to(device)
    try:
        out = decoder(
            video_latents.to(device), generator=generator, output_type="np", denormalize=False, return_dict=True
        )
    finally:
        if device.type != "cpu":
            decoder.diffusion_decoder.to("cpu")  # its GPU memory back for the next render
    frames = np.asarray(out.frames[0])
    audio = None
    if audio_latents is not None and getattr(pipe, "audio_vae", None) is not None:
        mel = pipe.audio_vae.decode(audio_latents.to(pipe.audio_vae.dtype), return_dict=False)[0]
        audio = pipe.vocoder(mel)
    return frames, audio
