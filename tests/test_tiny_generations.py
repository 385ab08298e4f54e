"""The tiny LTX-2.3 and LTX-2.5 models: told apart by their configs, byte-reproducible, render offline
with sound, the 2.3-layout VAE, the duration head and the diffusion decoder."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from aiprod_studio.generations import detect
from engine.models import tiny
from engine.models.tiny_generations import (
    DIFFUSION_DECODER,
    TINY_NAMES,
    build_pipeline,
    save_pipeline,
    tiny_defaults,
)
from engine.models.tiny_vae import original_vae_key

NEW = ["2.3", "2.5"]
RENDER = {
    "prompt": "a red car at night in the rain",
    "negative_prompt": "dark",
    "width": 64,
    "height": 64,
    "frame_rate": 24,
    "num_inference_steps": 8,
    "spatio_temporal_guidance_blocks": [1],
    "max_sequence_length": 64,
}


def tree_hashes(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-generations")
    return {g: save_pipeline(root / TINY_NAMES[g], g) for g in NEW}


@pytest.fixture(scope="module")
def pipes(folders):
    from diffusers import LTX2Pipeline

    loaded = {g: LTX2Pipeline.from_pretrained(folders[g], local_files_only=True) for g in NEW}
    for pipe in loaded.values():
        pipe.set_progress_bar_config(disable=True)
    return loaded


def render(pipe, num_frames=17, output_type="np", seed=0):
    generator = torch.Generator().manual_seed(seed)
    return pipe(**RENDER, num_frames=num_frames, generator=generator, output_type=output_type)


@pytest.mark.parametrize("generation", NEW)
def test_detected_as_their_generation(folders, generation):
    found = detect(folders[generation])
    assert found is not None and found.version == generation
    if generation == "2.3":
        assert found.components == () and len(found.evidence) == 2  # prompt modulation and the BWE vocoder
    else:
        assert set(found.components) == {"duration_head", "diffusion_decoder"}
        assert found.offers("auto_duration") and found.offers("quality_decode")
        assert any("Gemma4Unified" in e for e in found.evidence)


@pytest.mark.parametrize("generation", NEW)
def test_two_builds_are_byte_identical_and_small(folders, tmp_path, generation):
    again = tree_hashes(save_pipeline(tmp_path / "again", generation))
    assert again == tree_hashes(folders[generation])
    assert sum(p.stat().st_size for p in folders[generation].rglob("*") if p.is_file()) < 1_500_000
    assert (f"{DIFFUSION_DECODER}/config.json" in again) == (generation == "2.5")


@pytest.mark.parametrize("generation", NEW)
def test_reloaded_model_renders_17_frames_with_48khz_sound(pipes, generation):
    pipe = pipes[generation]
    out = render(pipe)
    frames, audio = out.frames, out.audio
    assert frames.shape == (1, 17, 64, 64, 3) and np.isfinite(frames).all()
    assert 0.0 <= frames.min() < frames.max() <= 1.0
    rate = pipe.vocoder.config.output_sampling_rate
    assert rate == 48000 and type(pipe.vocoder).__name__ == "LTX2VocoderWithBWE"
    assert audio.shape[:2] == (1, 2) and torch.isfinite(audio).all() and audio.abs().max() > 0
    assert abs(audio.shape[-1] / rate - 17 / 24) <= 1 / 24
    assert pipe.transformer.config.cross_attn_mod and pipe.transformer.config.audio_cross_attn_mod


def test_default_guidance_block_exists(pipes):
    """STG on the defaults' block 1 changes the render; on 2.3's recommended block 28 (absent from a
    two-layer transformer) it perturbs nothing."""
    pipe = pipes["2.3"]

    def stg(blocks):
        generator = torch.Generator().manual_seed(0)
        options = {**RENDER, "num_inference_steps": 2, "spatio_temporal_guidance_blocks": blocks}
        return pipe(**options, num_frames=9, generator=generator, output_type="np").frames

    default = tiny_defaults("2.3")["advanced"]["spatio_temporal_guidance_blocks"]
    assert not np.array_equal(stg(default), stg([28])) and np.array_equal(stg([28]), stg([2]))


def test_video_vae_round_trip_keeps_shape_and_matches_pipeline_ratios(pipes):
    pipe = pipes["2.3"]
    vae = pipe.vae
    assert tuple(vae.config.downsample_type) == ("spatial", "temporal", "spatiotemporal", "spatiotemporal")
    assert tuple(vae.config.upsample_type) == ("spatiotemporal", "spatiotemporal", "temporal", "spatial")
    x = torch.rand(1, 3, 17, 64, 64) * 2 - 1
    with torch.no_grad():
        latent = vae.encode(x).latent_dist.mode()
        y = vae.decode(latent).sample
    s, t = pipe.vae_spatial_compression_ratio, pipe.vae_temporal_compression_ratio
    assert (s, t) == (16, 8)
    assert tuple(latent.shape) == (1, vae.config.latent_channels, (17 - 1) // t + 1, 64 // s, 64 // s)
    assert y.shape == x.shape


def test_video_vae_keys_follow_the_original_checkpoint(pipes):
    from diffusers.loaders.single_file_utils import convert_ltx2_vae_to_diffusers

    state = pipes["2.5"].vae.state_dict()
    original = {original_vae_key(k): v for k, v in state.items()}
    blocks = {".".join(k.split(".")[1:4]) for k in original if ".down_blocks." in k or ".up_blocks." in k}
    assert blocks == {f"encoder.down_blocks.{i}" for i in range(9)} | {f"decoder.up_blocks.{i}" for i in range(9)}
    assert "vae.per_channel_statistics.mean-of-means" in original

    # diffusers 0.42.1's single-file converter knows the LTX-2.0 decoder (mid block + 3 stages,
    # up_blocks.0..6): the fourth decoder stage of 2.3/2.5 (up_blocks.7 and 8) comes back unrenamed.
    converted = convert_ltx2_vae_to_diffusers(dict(original))
    left = sorted(set(converted) - set(state))
    assert left and all(k.startswith(("decoder.up_blocks.7.", "decoder.up_blocks.8.")) for k in left)
    # With the two entries diffusers' conversion script adds for 2.3 (LTX_2_3_VIDEO_VAE_RENAME_DICT),
    # every key and tensor comes back.
    fixed = {
        k.replace("up_blocks.7", "up_blocks.3.upsamplers.0").replace("up_blocks.8", "up_blocks.3"): v
        for k, v in converted.items()
    }
    assert set(fixed) == set(state) and all(torch.equal(fixed[k], state[k]) for k in state)


def test_duration_head_picks_the_frame_count(pipes):
    pipe = pipes["2.5"]
    embeds, mask, _, _ = pipe.encode_prompt(RENDER["prompt"], do_classifier_free_guidance=False, max_sequence_length=64)
    video, audio, _ = pipe.connectors(embeds, mask, padding_side="left")
    seconds = pipe.duration_head(video, audio).item()
    assert 1.5 <= seconds <= 3.0
    out = render(pipe, num_frames=None)
    n = out.frames.shape[1]
    assert (n - 1) % 8 == 0 and 24 <= n <= 20 * 24 and abs(n / 24 - seconds) <= 8 / 24
    assert abs(out.audio.shape[-1] / 48000 - n / 24) <= 1 / 24


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_diffusion_decoder_decodes_the_latents_of_a_render(pipes, folders):
    from diffusers import LTX2VideoDiffusionDecoderModel
    from diffusers.pipelines.ltx2 import LTX2VideoDiffusionDecodePipeline

    pipe = pipes["2.5"]
    latents = render(pipe, output_type="latent")
    video, audio = latents.frames, latents.audio
    assert tuple(video.shape) == (1, 8, 3, 4, 4) and video.dtype == torch.float32  # denormalized, not decoded
    assert audio.ndim == 4 and audio.shape[:2] == (1, 2)  # audio latents [B, C, L, mel bins], not decoded either
    plain = render(pipe)
    with torch.no_grad():  # decoded as the pipeline does, they give the plain render's frames and sound
        conv = pipe.video_processor.postprocess_video(pipe.vae.decode(video, None).sample, output_type="np")
        sound = pipe.vocoder(pipe.audio_vae.decode(audio).sample)
    assert np.array_equal(conv, plain.frames) and torch.equal(sound, plain.audio)

    decoder = LTX2VideoDiffusionDecoderModel.from_pretrained(folders["2.5"] / DIFFUSION_DECODER, local_files_only=True)
    quality = LTX2VideoDiffusionDecodePipeline(diffusion_decoder=decoder, scheduler=pipe.scheduler, vae=pipe.vae)
    quality.set_progress_bar_config(disable=True)
    frames = quality(video, generator=torch.Generator().manual_seed(0), denormalize=False, output_type="np").frames
    assert frames.shape == (1, 17, 64, 64, 3) and np.isfinite(frames).all()
    assert 0.0 <= frames.min() < frames.max() <= 1.0 and not np.array_equal(frames, conv)


def test_generation_2_0_is_the_tiny_model_and_names_are_checked():
    assert TINY_NAMES["2.0"] == tiny.TINY_NAME and tiny_defaults("2.0") == tiny.TINY_DEFAULTS
    assert tiny_defaults("2.5")["advanced"] == {
        **tiny.TINY_DEFAULTS["advanced"],
        "spatio_temporal_guidance_blocks": [1],
    }
    assert type(build_pipeline("2.0").vocoder).__name__ == "LTX2Vocoder"
    with pytest.raises(ValueError, match="got '3.0'"):
        build_pipeline("3.0")


def test_make_tiny_cli_builds_a_generation(cli, tmp_path):
    models = tmp_path / "models"
    r = cli("vault", "make-tiny", "--generation", "2.5", "--json", models_dir=models)
    assert r.returncode == 0, r.stderr
    assert (r.json["generation"], r.json["name"]) == ("2.5", "aiprod-tiny-ltx25")
    manifest = json.loads((models / "MANIFEST.json").read_text())
    [entry] = [e for e in manifest["entries"] if e["name"] == "aiprod-tiny-ltx25"]
    assert (entry["kind"], entry["family"], entry["license"], entry["test_model"]) == (
        "pipeline",
        "ltx2",
        "Apache-2.0",
        True,
    )
    assert entry["defaults"] == tiny_defaults("2.5") and entry["digest"] == r.json["digest"]
    assert f"{DIFFUSION_DECODER}/diffusion_pytorch_model.safetensors" in entry["files"]
    assert detect(models / entry["path"]).version == "2.5"
