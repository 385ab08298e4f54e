"""Model generations: read from the pipeline's configs (never its name), and their defaults in recipes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from aiprod_studio.errors import BadInput
from aiprod_studio.generations import DEFAULTS, DISTILLED_SIGMAS, detect

TINY = "pipelines/aiprod-tiny-ltx2"


def configs_only(vault_root: Path, target: Path) -> Path:
    """The tiny pipeline's JSON files (no weights): enough for `detect`."""
    source = vault_root / TINY
    for path in source.rglob("*.json"):
        (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / path.relative_to(source))
    return target


def edit(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, **changes}))


def test_the_tiny_model_is_ltx_2_0_by_its_configs(tiny_vault):
    generation = detect(tiny_vault / TINY)
    assert generation is not None and generation.version == "2.0" and not generation.distilled
    assert generation.label == "LTX-2.0" and generation.components == ()


def test_each_generation_is_told_by_a_config_field_whatever_the_folder_is_called(tiny_vault, tmp_path):
    # prompt modulation in the transformer → 2.3
    a = configs_only(tiny_vault, tmp_path / "ltx-2.0-not-really")
    edit(a / "transformer" / "config.json", cross_attn_mod=True)
    assert detect(a).version == "2.3" and "cross_attn_mod" in detect(a).evidence[0]
    # the bandwidth-extension vocoder alone → 2.3
    b = configs_only(tiny_vault, tmp_path / "b")
    edit(b / "model_index.json", vocoder=["diffusers", "LTX2VocoderWithBWE"])
    assert detect(b).version == "2.3"
    # a duration head → 2.5, and the head is listed so auto duration is offered
    c = configs_only(tiny_vault, tmp_path / "c")
    edit(c / "model_index.json", duration_head=["diffusers", "LTX2DurationHead"])
    assert detect(c).version == "2.5" and detect(c).offers("auto_duration")
    assert not detect(c).offers("quality_decode")
    # a Gemma 4 text encoder → 2.5; a diffusion decoder folder offers the quality decode
    d = configs_only(tiny_vault, tmp_path / "d")
    edit(d / "model_index.json", text_encoder=["transformers", "Gemma4UnifiedForConditionalGeneration"])
    (d / "diffusion_decoder").mkdir()
    (d / "diffusion_decoder" / "config.json").write_text("{}")
    assert detect(d).version == "2.5" and detect(d).offers("quality_decode")
    # a duration head declared null is absent
    e = configs_only(tiny_vault, tmp_path / "e")
    edit(e / "model_index.json", duration_head=[None, None])
    assert detect(e).version == "2.0"
    # not an LTX-2 pipeline at all
    f = configs_only(tiny_vault, tmp_path / "f")
    edit(f / "model_index.json", _class_name="LTXPipeline")
    assert detect(f) is None
    assert detect(tmp_path / "missing") is None


def test_a_distilled_variant_has_the_distilled_defaults(tiny_vault, tmp_path):
    a = configs_only(tiny_vault, tmp_path / "a")
    edit(a / "transformer" / "config.json", cross_attn_mod=True)
    generation = detect(a, variant="distilled")
    assert generation.tag == "2.3-distilled" and generation.label == "LTX-2.3 distilled"
    assert generation.defaults["steps"] == 8 and generation.defaults["guidance"] == 1.0
    assert generation.defaults["advanced"]["sigmas"] == DISTILLED_SIGMAS


def test_a_recipe_records_the_generation_and_every_value_it_used(studio):
    recipe = studio.build_recipe({"prompt": "a lighthouse"})
    assert recipe.generation == "2.0"
    # the tiny entry's own sizes and steps win over the generation's; its guidance extras are the generation's
    assert (recipe.width, recipe.steps, recipe.guidance) == (64, 8, 3.0)
    expected = {**DEFAULTS[("2.0", False)]["advanced"], "max_sequence_length": 64}
    assert recipe.advanced == expected
    assert recipe.advanced["use_cross_timestep"] is False and recipe.advanced["spatio_temporal_guidance_blocks"] == [29]
    # what the user sets wins; the generation is read again, whatever a restored recipe claims
    mine = studio.build_recipe({"prompt": "x", "steps": 3, "guidance": 5.0, "generation": "2.5"})
    assert (mine.steps, mine.guidance, mine.generation) == (3, 5.0, "2.0")
    # a whole recipe's settings are taken as they are (so an older recipe renders as it did)
    old = studio.build_recipe({"prompt": "x", "advanced": {"max_sequence_length": 64}})
    assert old.advanced == {"max_sequence_length": 64}


def test_extras_a_model_lacks_are_refused_by_field(studio):
    with pytest.raises(BadInput) as info:
        studio.build_recipe({"prompt": "x", "auto_duration": True})
    assert info.value.field == "auto_duration" and "duration head" in str(info.value) and "LTX-2.0" in str(info.value)
    with pytest.raises(BadInput) as info:
        studio.build_recipe({"prompt": "x", "decoder": "diffusion"})
    assert info.value.field == "decoder" and "diffusion decoder" in str(info.value)
    with pytest.raises(BadInput) as info:
        studio.build_recipe({"prompt": "x", "decoder": "pixels"})
    assert info.value.field == "decoder"


def test_a_fixed_schedule_must_match_the_steps(studio):
    with pytest.raises(BadInput) as info:
        studio.build_recipe({"prompt": "x", "steps": 5, "advanced": {"sigmas": [1.0, 0.5, 0.2]}})
    assert info.value.field == "steps" and "sigmas" in str(info.value) and "(3)" in str(info.value)
    with pytest.raises(BadInput) as info:
        studio.build_recipe({"prompt": "x", "steps": 3, "advanced": {"sigmas": [0.2, 0.5, 1.0]}})
    assert info.value.field == "advanced" and "fall from 1" in str(info.value)
    ok = studio.build_recipe({"prompt": "x", "steps": 3, "advanced": {"sigmas": [1.0, 0.5, 0.2]}})
    assert ok.advanced["sigmas"] == [1.0, 0.5, 0.2]


def test_a_distilled_entry_renders_its_schedule_unless_the_steps_are_changed(own_studio):
    vault = own_studio.vault
    entry = vault.get("aiprod-tiny-ltx2")
    vault.record("tiny-distilled", "pipeline", "ltx2", entry.path, variant="distilled", test_model=True, defaults={})
    recipe = own_studio.build_recipe({"prompt": "x", "model": "tiny-distilled", "width": 64, "height": 64})
    assert recipe.generation == "2.0-distilled"
    assert (recipe.steps, recipe.guidance) == (8, 1.0) and recipe.advanced["sigmas"] == DISTILLED_SIGMAS
    assert recipe.advanced["stg_scale"] == 0.0 and recipe.advanced["modality_scale"] == 1.0
    fewer = own_studio.build_recipe({"prompt": "x", "model": "tiny-distilled", "width": 64, "height": 64, "steps": 4})
    assert fewer.steps == 4 and "sigmas" not in fewer.advanced  # the model's own schedule at 4 steps
    row = own_studio.render(recipe.model_copy(update={"num_frames": 9, "advanced": {**recipe.advanced}}))
    assert row["status"] == "done" and row["recipe"]["advanced"]["sigmas"] == DISTILLED_SIGMAS
