"""The tiny LTX-2 model: small, byte-reproducible, self-consistent VAE, loads offline."""

from __future__ import annotations

import hashlib

import pytest
import torch

from engine.models.tiny import build_pipeline, save_pipeline


def tree_hashes(root):
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def pipe():
    return build_pipeline()


def test_two_builds_are_byte_identical(tmp_path):
    a = tree_hashes(save_pipeline(tmp_path / "a"))
    b = tree_hashes(save_pipeline(tmp_path / "b"))
    assert a == b
    assert any(k.endswith(".safetensors") for k in a)


def test_saved_model_is_small_and_diffusers_shaped(tiny_vault):
    folder = tiny_vault / "pipelines" / "aiprod-tiny-ltx2"
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert total < 1_000_000
    for sub in ("transformer", "vae", "audio_vae", "vocoder", "text_encoder", "tokenizer", "connectors", "scheduler"):
        assert (folder / sub).is_dir(), sub
    assert (folder / "model_index.json").is_file()


def test_video_vae_round_trip_keeps_shape_and_matches_pipeline_ratios(pipe):
    vae = pipe.vae
    assert tuple(vae.config.downsample_type) == ("spatiotemporal", "spatiotemporal")
    x = torch.rand(1, 3, 17, 64, 64) * 2 - 1
    with torch.no_grad():
        latent = vae.encode(x).latent_dist.mode()
        y = vae.decode(latent).sample
    s, t = pipe.vae_spatial_compression_ratio, pipe.vae_temporal_compression_ratio
    assert (s, t) == (8, 4)
    assert tuple(latent.shape) == (1, vae.config.latent_channels, (17 - 1) // t + 1, 64 // s, 64 // s)
    assert y.shape == x.shape


def test_tokenizer_pads_left_and_knows_film_words(pipe):
    tok = pipe.tokenizer
    ids = tok("a red car at night", padding="max_length", max_length=12).input_ids
    assert tok.padding_side == "left"
    assert ids[:5] == [tok.pad_token_id] * 5 and ids[6] != tok.unk_token_id
    assert tok.unk_token_id not in ids


def test_vocoder_lasts_as_long_as_its_mel_frames(pipe):
    hop = pipe.audio_vae.config.mel_hop_length
    sr_in = pipe.audio_vae.config.sample_rate
    assert pipe.vocoder.total_upsample_factor * sr_in // hop == pipe.vocoder.config.output_sampling_rate
