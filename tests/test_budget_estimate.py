"""The memory model (engine/budget/facts.py, estimate.py): sizes read from headers, peaks per offload mode."""

from __future__ import annotations

import pytest

from aiprod_studio.errors import BadInput
from engine.budget.estimate import GiB, Job, estimate, gib, weight_bytes, work_bytes
from engine.budget.facts import header_sizes, published_ltx2, read_facts


@pytest.fixture(scope="module")
def tiny(tiny_vault):
    return read_facts(tiny_vault / "pipelines" / "aiprod-tiny-ltx2", "aiprod-tiny-ltx2")


def test_weights_counted_from_headers_equal_the_loaded_modules(tiny, tiny_vault):
    import diffusers

    pipe = diffusers.LTX2Pipeline.from_pretrained(tiny_vault / "pipelines" / "aiprod-tiny-ltx2", local_files_only=True)
    for name in ("transformer", "text_encoder", "connectors", "vae", "audio_vae", "vocoder"):
        module = getattr(pipe, name)
        unique = {t.data_ptr(): t.numel() for t in module.state_dict().values()}  # tied weights are stored once
        assert tiny.weight(name).params == sum(unique.values()), name
        assert tiny.weight(name).stored_bytes == tiny.weight(name).params * 4  # float32 files
    assert tiny.weight("transformer").blocks == pipe.transformer.config.num_layers
    assert tiny.video_width == pipe.transformer.config.num_attention_heads * pipe.transformer.config.attention_head_dim
    assert tiny.grid.spatial == pipe.vae_spatial_compression_ratio
    assert tiny.grid.temporal == pipe.vae_temporal_compression_ratio


def test_a_damaged_header_is_refused_naming_the_file(tmp_path):
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"\xff" * 8 + b"{}")
    with pytest.raises(BadInput, match="w.safetensors is not a readable safetensors file"):
        header_sizes(bad)


def test_8_bit_weights_halve_the_transformer_and_offload_moves_weights_to_the_host():
    ltx2 = published_ltx2()
    job = Job(768, 512, 121)
    bf16 = weight_bytes(ltx2, job, 2)
    fp8 = weight_bytes(ltx2, Job(768, 512, 121, quantization="fp8"), 2)
    assert 35 < bf16["transformer"] / GiB < 36 and fp8["transformer"] == pytest.approx(bf16["transformer"] / 2, 0.05)
    peaks = {
        o: estimate(ltx2, Job(768, 512, 121, offload=o), True, 2) for o in ("none", "model", "group", "sequential")
    }
    # each mode holds less on the GPU than the one before it, and keeps the weights it does not hold in RAM
    device = [peaks[o].device_bytes for o in ("none", "model", "group", "sequential")]
    assert device == sorted(device, reverse=True) and device[0] > 60 * GiB and device[-1] < 8 * GiB
    # every component passes through RAM while it loads; offloaded ones wait there
    assert peaks["none"].host_bytes == peaks["model"].host_bytes >= sum(bf16.values())


def test_quantizing_while_loading_reads_the_full_precision_transformer_first_a_stored_copy_does_not():
    import dataclasses

    ltx2 = published_ltx2()
    stored = dataclasses.replace(
        ltx2,
        stored_quantization="fp8",
        components={
            **ltx2.components,
            "transformer": dataclasses.replace(ltx2.weight("transformer"), stored_bytes=int(19.6e9)),
        },
    )
    job = Job(768, 512, 121, quantization="fp8", offload="model")
    at_load, from_copy = estimate(ltx2, job, True, 2), estimate(stored, job, True, 2)
    assert at_load.host_bytes - from_copy.host_bytes > 15 * GiB  # the bf16 transformer (38 GB) against 8 bits
    assert at_load.device_bytes == pytest.approx(from_copy.device_bytes, rel=0.05)


def test_tiling_pays_for_a_wide_decoder_but_not_for_the_tiny_one(tiny):
    big, tiled = Job(1920, 1088, 121), Job(1920, 1088, 121, vae_tiling=True)
    ltx2 = published_ltx2()
    assert work_bytes(ltx2, tiled, 2)["decode"] < work_bytes(ltx2, big, 2)["decode"] / 4
    # the tiny decoder holds 2 values a pixel, fewer than the tiles' copies of the frames: tiling costs memory
    small, small_tiled = Job(256, 256, 65), Job(256, 256, 65, vae_tiling=True)
    assert estimate(tiny, small_tiled, False, 4).host_bytes > estimate(tiny, small, False, 4).host_bytes


def test_on_the_cpu_the_device_is_the_host_and_offload_changes_nothing(tiny):
    none = estimate(tiny, Job(128, 128, 33), False, 4)
    model = estimate(tiny, Job(128, 128, 33, offload="model"), False, 4)
    assert none.device_bytes == none.host_bytes == model.host_bytes


def test_messages_say_gib_with_sensible_precision():
    assert gib(0.2 * GiB) == "0.20 GiB" and gib(44.72 * GiB) == "44.7 GiB"
