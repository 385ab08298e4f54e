"""The memory budget (engine/budget/check.py): profile `auto`, refusals naming a fix, and the studio's use of both."""

from __future__ import annotations

import time

import pytest
import torch

from aiprod_studio.errors import BadInput
from aiprod_studio.settings import load_settings
from engine.budget.check import OverBudget, Room, plan_job
from engine.budget.estimate import GiB, Job
from engine.budget.facts import published_ltx2
from engine.device.plan import DevicePlan

CUDA_BF16 = DevicePlan(torch.device("cuda"), torch.bfloat16)  # a plan only: nothing runs on it


def gpu(gb: float, ram_gb: float = 128) -> Room:
    """A faked GPU of `gb` GB with everything free but the CUDA context's half GiB."""
    return Room(int((gb - 0.5) * GiB), int(ram_gb * GiB), True, int(gb * GiB), "cuda:0")


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((768, 512, 121), {80: "gpu-80gb", 48: "gpu-48gb", 24: "gpu-24gb", 8: "gpu-24gb"}),
        (
            (1920, 1088, 121),
            {80: "gpu-48gb", 48: "gpu-48gb", 24: "gpu-24gb", 16: "gpu-12gb", 12: "gpu-12gb", 8: "gpu-8gb"},
        ),
    ],
)
def test_auto_picks_the_fastest_profile_that_fits_each_gpu(size, expected):
    ltx2 = published_ltx2()
    picked = {gb: plan_job(ltx2, Job(*size), {}, "auto", CUDA_BF16, gpu(gb))[0] for gb in expected}
    assert picked == expected


def test_auto_keeps_the_users_own_settings_and_skips_profiles_that_cannot_stream_8_bit_weights():
    mine = Job(768, 512, 121, quantization="fp8")
    name, job, _ = plan_job(published_ltx2(), mine, {"quantization": "fp8"}, "auto", CUDA_BF16, gpu(48))
    assert (name, job.quantization, job.offload) == ("gpu-48gb", "fp8", "model")
    # on 24 GB the profiles that fit stream bf16 blocks, which 8-bit weights cannot do: refused with a fix
    with pytest.raises(OverBudget) as refusal:
        plan_job(published_ltx2(), mine, {"quantization": "fp8"}, "auto", CUDA_BF16, gpu(24))
    assert "it fits with group offload (profile gpu-24gb)" in str(refusal.value)


def test_a_job_over_the_budget_names_the_cheapest_fix_and_the_fix_fits():
    ltx2 = published_ltx2()
    job = Job(768, 512, 121, quantization="none", offload="none")
    with pytest.raises(OverBudget) as refusal:
        plan_job(ltx2, job, {"quantization": "none", "offload": "none"}, "custom", CUDA_BF16, gpu(48))
    text = str(refusal.value)
    assert refusal.value.field == "memory"
    assert "needs about 66.4 GiB of GPU memory (cuda:0 has 47.5 GiB free)" in text
    assert "; it fits with model offload (" in text  # bf16 weights moved whole: cheaper than 8 bits
    plan_job(ltx2, Job(768, 512, 121, offload="model"), {}, "custom", CUDA_BF16, gpu(48))
    with pytest.raises(OverBudget, match=r"it fits with fp8 and model offload \(profile gpu-48gb\)"):
        plan_job(ltx2, Job(768, 512, 121), {}, "custom", CUDA_BF16, gpu(36))


def test_when_no_setting_is_enough_the_fix_is_fewer_frames_and_they_fit():
    ltx2 = published_ltx2()
    with pytest.raises(OverBudget, match=r"lower num_frames to (\d+)") as refusal:
        plan_job(ltx2, Job(1920, 1088, 241), {}, "auto", CUDA_BF16, gpu(12))
    frames = int(str(refusal.value).split("lower num_frames to ")[1].split()[0])
    assert frames < 241 and (frames - 1) % 8 == 0
    plan_job(ltx2, Job(1920, 1088, frames), {}, "auto", CUDA_BF16, gpu(12))


def test_offloaded_weights_need_ram_too():
    with pytest.raises(OverBudget, match=r"GiB of RAM \(16.0 GiB available\)"):
        plan_job(published_ltx2(), Job(768, 512, 121), {}, "gpu-24gb", CUDA_BF16, gpu(24, ram_gb=16))


def test_an_unknown_profile_or_one_for_the_other_device_is_refused_by_name():
    with pytest.raises(BadInput, match="profile must be one of auto, custom, gpu-80gb.*got 'gpu-7gb'"):
        plan_job(published_ltx2(), Job(768, 512, 121), {}, "gpu-7gb", CUDA_BF16, gpu(24))
    with pytest.raises(BadInput, match="got 'gpu-24gb', a profile for a CUDA GPU"):
        plan_job(
            published_ltx2(),
            Job(64, 64, 17),
            {},
            "gpu-24gb",
            DevicePlan(torch.device("cpu"), torch.float32),
            Room(GiB, GiB, False, GiB, "the CPU"),
        )


# -- the studio ---------------------------------------------------------------------------------------


@pytest.fixture
def tight_studio(tiny_vault, data_dir, monkeypatch):
    """A studio allowed 0.25 GiB (the limit a user sets for a shared machine)."""
    from engine.studio import Studio

    monkeypatch.setenv("AIPROD_MEMORY_LIMIT_GB", "0.25")
    studio = Studio(load_settings(tiny_vault, data_dir))
    yield studio
    studio.close()


def test_the_studio_refuses_over_its_limit_before_recording_anything_and_the_named_fix_renders(tight_studio, tmp_path):
    with pytest.raises(OverBudget) as refusal:
        tight_studio.build_recipe({"prompt": "a red ball", "width": 256, "height": 256, "num_frames": 65})
    text = str(refusal.value)
    assert "of RAM (0.25 GiB available)" in text and "256×256×65" in text
    assert tight_studio.history.jobs(limit=5) == []  # refused before any row
    frames = int(text.split("lower num_frames to ")[1].split()[0])
    recipe = tight_studio.build_recipe({"prompt": "a red ball", "width": 256, "height": 256, "num_frames": frames})
    assert recipe.num_frames == frames and recipe.profile == "cpu"


def test_recipes_record_the_profile_auto_chose_and_keep_what_the_user_set(studio):
    recipe = studio.build_recipe({"prompt": "a red ball"})
    assert (recipe.profile, recipe.quantization, recipe.offload, recipe.vae_tiling) == ("cpu", "none", "none", False)
    lean = studio.build_recipe({"prompt": "a red ball", "profile": "cpu-lean"})
    assert (lean.profile, lean.vae_tiling) == ("cpu-lean", True)
    mine = studio.build_recipe({"prompt": "a red ball", "quantization": "int8", "vae_tiling": True})
    assert (mine.profile, mine.quantization, mine.vae_tiling) == ("custom", "int8", True)
    # the profile's name is not part of what decides the pixels
    assert lean.render_key() == studio.build_recipe({"prompt": "a red ball", "vae_tiling": True}).render_key()


def test_forecast_says_what_a_render_needs_and_the_time_past_renders_took(studio):
    first = studio.forecast({"prompt": "a red ball", "steps": 4})
    assert first["profile"] == "cpu" and first["device"] == "the CPU" and first["expected_s"] is None
    assert 0 < first["device_gib"] < first["free_device_gib"]
    studio.render(studio.build_recipe({"prompt": "a red ball", "steps": 4}))
    again = studio.forecast({"prompt": "another ball", "steps": 4})
    row = studio.history.jobs(limit=1)[0]
    assert studio.forecast({"prompt": "a ball", "steps": 4, "fast": True})["expected_s"] is None  # not alike
    assert again["step_s"] == pytest.approx(row["step_s"]) and again["expected_s"] == pytest.approx(
        row["step_s"] * 4, abs=0.1
    )


def test_a_queued_job_is_checked_again_when_it_starts(studio):
    recipe = studio.build_recipe({"prompt": "a red ball", "width": 256, "height": 256, "num_frames": 33})
    job_id = studio.history.create_job(studio.stamp(recipe), status="running")
    object.__setattr__(studio.settings, "memory_limit_gb", 0.05)  # memory went to other work meanwhile
    with pytest.raises(OverBudget):
        studio.run_job(job_id)
    row = studio.history.get(job_id)
    assert row["status"] == "failed" and "GiB of RAM" in row["error"]


def test_a_4k_481_frame_job_is_refused_at_once():
    from engine.studio import Studio  # noqa: F401 - imports are not what is timed

    ltx2 = published_ltx2()
    started = time.perf_counter()
    with pytest.raises(OverBudget):
        plan_job(ltx2, Job(4096, 4096, 481), {}, "auto", CUDA_BF16, gpu(80))
    assert time.perf_counter() - started < 1.0


def test_the_memory_limit_setting_is_checked():
    from aiprod_studio.settings import memory_limit

    assert memory_limit("12.5") == 12.5 and memory_limit("") is None
    for bad in ("abc", "0", "-3", "nan", "inf"):
        with pytest.raises(BadInput, match="AIPROD_MEMORY_LIMIT_GB must be a positive number"):
            memory_limit(bad)


def test_a_stored_8_bit_copy_is_never_streamed_piecewise():
    import dataclasses

    ltx2 = published_ltx2()
    eight_bit = dataclasses.replace(ltx2.weight("transformer"), stored_bytes=int(19.6e9))
    stored = dataclasses.replace(
        ltx2, stored_quantization="fp8", components={**ltx2.components, "transformer": eight_bit}
    )
    job = Job(768, 512, 121, quantization="fp8")
    for gb in (80, 48, 24, 12):
        try:
            _, chosen, _ = plan_job(stored, job, {"quantization": "fp8"}, "auto", CUDA_BF16, gpu(gb))
        except OverBudget as refusal:
            assert "group" not in str(refusal).split(";")[1] and "sequential" not in str(refusal).split(";")[1]
        else:
            assert chosen.offload in ("none", "model")
    with pytest.raises(BadInput, match="offload 'group' cannot move fp8 weights") as refusal:
        plan_job(stored, job, {"quantization": "fp8"}, "gpu-24gb", CUDA_BF16, gpu(24))
    assert refusal.value.field == "offload"


def test_a_named_fix_is_one_the_recipe_accepts():
    from aiprod_studio.recipe import make_recipe

    streamed = Job(768, 512, 121, offload="group")
    with pytest.raises(OverBudget) as refusal:
        plan_job(published_ltx2(), streamed, {}, "custom", CUDA_BF16, gpu(4, ram_gb=128))
    fix = str(refusal.value).split("; ")[1]
    assert fix.startswith(("it fits with", "lower")) and "fp8" not in fix.split("(")[0], fix
    make_recipe({"prompt": "p", "model": "m", "offload": "group"})  # (the job as it was is a valid recipe)


def test_an_explicit_profile_overridden_by_the_user_is_recorded_as_custom(studio):
    lean = studio.build_recipe({"prompt": "a red ball", "profile": "cpu-lean", "vae_tiling": False})
    assert (lean.profile, lean.vae_tiling) == ("custom", False)


def test_restoring_a_recipe_from_another_machine_shows_its_settings_as_custom():
    from ui.components.render_form import FIELDS, updates_from_recipe

    old_clip = {"prompt": "p", "model": "m", "model_digest": "d" * 64, "profile": "gpu-24gb", "offload": "group"}
    shown = dict(zip(FIELDS, updates_from_recipe(old_clip), strict=True))
    assert shown["profile"]["value"] == "custom" and shown["offload"]["value"] == "group"
    assert shown["vae_tiling"]["value"] == "off" and shown["fast"]["value"] is False  # predates them: off
