"""Render limits read from a model's config files: the grid, the noise schedule, the ceiling."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aiprod_studio.errors import BadInput
from aiprod_studio.recipe import make_recipe
from aiprod_studio.vault.store import Vault
from engine.models import limits

# The LTX-2 (19B) diffusers configs, as far as the limits read them.
LTX2_SCHEDULER = {
    "_class_name": "FlowMatchEulerDiscreteScheduler",
    "base_image_seq_len": 1024,
    "base_shift": 0.95,
    "invert_sigmas": False,
    "max_image_seq_len": 4096,
    "max_shift": 2.05,
    "num_train_timesteps": 1000,
    "shift": 1.0,
    "shift_terminal": 0.1,
    "stochastic_sampling": False,
    "time_shift_type": "exponential",
    "use_beta_sigmas": False,
    "use_dynamic_shifting": True,
    "use_exponential_sigmas": False,
    "use_karras_sigmas": False,
}
LTX2_VAE = {
    "_class_name": "AutoencoderKLLTX2Video",
    "patch_size": 4,
    "patch_size_t": 1,
    "latent_channels": 128,
    "spatio_temporal_scaling": [True, True, True, True],
    "spatial_compression_ratio": 32,
    "temporal_compression_ratio": 8,
    "downsample_type": ["spatial", "temporal", "spatiotemporal", "spatiotemporal"],
}
LTX2_TRANSFORMER = {
    "_class_name": "LTX2VideoTransformer3DModel",
    "patch_size": 1,
    "patch_size_t": 1,
    "in_channels": 128,
    "num_layers": 48,
    "base_height": 2048,
    "base_width": 2048,
}


def write_model(root, vae=None, transformer=None, scheduler=None):
    for folder, name, config in (
        ("vae", "config.json", {**LTX2_VAE, **(vae or {})}),
        ("transformer", "config.json", {**LTX2_TRANSFORMER, **(transformer or {})}),
        ("scheduler", "scheduler_config.json", {**LTX2_SCHEDULER, **(scheduler or {})}),
    ):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / name).write_text(json.dumps(config))
    return root


def recipe(**kw):
    return make_recipe({"prompt": "x", "model": "m", "width": 768, "height": 512, "num_frames": 121, "steps": 40, **kw})


@pytest.fixture
def ltx2_dir(tmp_path):
    return write_model(tmp_path / "ltx-2")


@pytest.fixture
def tiny(tiny_vault):
    vault = Vault(tiny_vault)
    return vault, vault.get("aiprod-tiny-ltx2")


def test_the_tiny_model_takes_its_own_sizes_and_refuses_4096_square_481_frames(tiny):
    vault, entry = tiny
    assert limits.check_limits(vault, entry, recipe(width=64, height=64, num_frames=17, steps=8)) == 5 * 8 * 8
    with pytest.raises(BadInput) as info:
        limits.check_limits(vault, entry, recipe(width=4096, height=4096, num_frames=481, steps=8))
    grid = limits.read_grid(vault.entry_dir(entry))
    assert (grid.spatial, grid.temporal, grid.patch, grid.patch_t) == (8, 4, 1, 1)
    limit = limits.max_tokens(grid, 8)
    message = str(info.value)
    assert info.value.field == "width"
    assert "481 × 4096 × 4096 makes 31,719,424 latent tokens" in message
    assert f"max {limit:,}" in message and "aiprod-tiny-ltx2" in message
    assert "lower width, height or num_frames" in message
    assert 40_000 < limit < 60_000


def test_a_realistic_ltx2_config_takes_normal_sizes_and_refuses_4096_square_481_frames(ltx2_dir):
    assert limits.check_model_dir(ltx2_dir, recipe()) == 16 * 16 * 24  # 768×512×121: 6,144 tokens
    assert limits.check_model_dir(ltx2_dir, recipe(width=1280, height=704, num_frames=257)) == 33 * 22 * 40
    with pytest.raises(BadInput) as info:
        limits.check_model_dir(ltx2_dir, recipe(width=4096, height=4096, num_frames=481), name="ltx-2")
    assert info.value.field == "width"
    assert "481 × 4096 × 4096 makes 999,424 latent tokens, more than ltx-2 (ltx2) supports at 40 steps" in str(
        info.value
    )
    assert "noise schedule" in str(info.value)
    # A long 1080p clip is over the schedule's bound too; the field named is the biggest dimension.
    with pytest.raises(BadInput) as info:
        limits.check_model_dir(ltx2_dir, recipe(width=1088, height=1920, num_frames=257))
    assert info.value.field == "height"
    with pytest.raises(BadInput) as info:
        limits.check_model_dir(ltx2_dir, recipe(width=704, height=640, num_frames=1025, steps=40))
    assert "1025 × 704 × 640 makes 56,760" in str(info.value) and info.value.field == "num_frames"


@pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning")
def test_the_bound_is_where_the_pipelines_own_schedule_breaks(tiny):
    """Just under the bound the pipeline starts from sigma 1; just over it the first timestep is NaN;
    far over it, `math.exp` overflows: the failures the check keeps a render from reaching."""
    from diffusers import LTX2Pipeline

    vault, entry = tiny
    pipe = LTX2Pipeline.from_pretrained(vault.entry_dir(entry), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    grid = limits.read_grid(vault.entry_dir(entry))
    limit = limits.max_tokens(grid, 8)

    class Stop(Exception):
        pass

    seen = []

    def first_timestep(_module, _args, kwargs):
        seen.append(float(kwargs["timestep"].flatten()[0]))
        raise Stop  # the schedule is all this test needs

    pipe.transformer.register_forward_pre_hook(first_timestep, with_kwargs=True)
    under, over = 1792, 1824  # 224² = 50,176 and 228² = 51,984 tokens at one frame
    assert grid.tokens(under, under, 1) <= limit < grid.tokens(over, over, 1)
    limits.check_model_dir(vault.entry_dir(entry), recipe(width=under, height=under, num_frames=1, steps=8))
    for side in (under, over):
        with pytest.raises(Stop):
            pipe(prompt="x", width=side, height=side, num_frames=1, num_inference_steps=8, max_sequence_length=64)
        expected = limits.schedule(grid, grid.tokens(side, side, 1), 8)  # the very sigmas the pipeline set
        assert np.array_equal(pipe.scheduler.sigmas.numpy(), expected, equal_nan=True)
    assert seen[0] == 1000.0 and np.isnan(seen[1])
    with pytest.raises(BadInput, match="1824 × 1824"):
        limits.check_model_dir(vault.entry_dir(entry), recipe(width=over, height=over, num_frames=1, steps=8))
    with pytest.raises(OverflowError, match="math range error"):  # 31 × 256 × 256 tokens: mu ≈ 730
        pipe(prompt="x", width=2048, height=2048, num_frames=121, num_inference_steps=8, max_sequence_length=64)
    with pytest.raises(BadInput, match="2,031,616 latent tokens"):
        limits.check_model_dir(vault.entry_dir(entry), recipe(width=2048, height=2048, num_frames=121, steps=8))


def test_one_step_is_accepted_only_because_the_render_drops_the_terminal_stretch(tiny, monkeypatch):
    vault, entry = tiny
    one = recipe(width=64, height=64, num_frames=17, steps=1)
    grid = limits.read_grid(vault.entry_dir(entry))
    assert limits.schedule(grid, 320, 1).tolist() == [1.0, 0.0]
    assert limits.check_limits(vault, entry, one) == 320
    # The stretch as configured divides 0 by 0 at one step: the check then names `steps`.
    monkeypatch.setattr("engine.render.schedule.scheduler_for_steps", lambda scheduler, steps: scheduler)
    assert np.isnan(limits.schedule(grid, 320, 1)[0])
    with pytest.raises(BadInput, match="steps 1 gives aiprod-tiny-ltx2 a broken noise schedule") as info:
        limits.check_limits(vault, entry, one)
    assert info.value.field == "steps"


def test_a_schedule_without_a_bound_still_has_the_ceiling(tmp_path):
    model = write_model(tmp_path / "fixed", scheduler={"use_dynamic_shifting": False, "shift": 3.0})
    assert limits.check_model_dir(model, recipe(width=1920, height=1088, num_frames=257)) == 33 * 34 * 60
    with pytest.raises(BadInput, match="999,424 latent tokens.*max 524,288: a render that long would take hours"):
        limits.check_model_dir(model, recipe(width=4096, height=4096, num_frames=481))


def test_sizes_off_the_models_latent_grid_are_refused_by_name(tmp_path):
    patched = write_model(tmp_path / "patch2", transformer={"patch_size": 2})
    assert limits.check_model_dir(patched, recipe(width=768, height=512)) == 8 * 12 * 16
    with pytest.raises(BadInput, match=r"width must be a multiple of 64 .*got 800") as info:
        limits.check_model_dir(patched, recipe(width=800))
    assert info.value.field == "width"
    slow = write_model(tmp_path / "t16", vae={"temporal_compression_ratio": 16})
    with pytest.raises(BadInput, match="num_frames must be 16k\\+1 .*got 25") as info:
        limits.check_model_dir(slow, recipe(num_frames=25))
    assert info.value.field == "num_frames"
    # Without explicit ratios the VAE's own rule applies: patch × 2^(scaling blocks).
    derived = write_model(
        tmp_path / "derived",
        vae={
            "spatial_compression_ratio": None,
            "temporal_compression_ratio": None,
            "patch_size": 2,
            "spatio_temporal_scaling": [True, True],
        },
    )
    grid = limits.read_grid(derived)
    assert (grid.spatial, grid.temporal) == (8, 4)
