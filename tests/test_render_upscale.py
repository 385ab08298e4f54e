"""Two-stage 2× upscale with the tiny latent upsampler: the clip doubles, the frames stay,
the recipe names the upsampler, it re-renders to the same bytes, and refusals name the field."""

from __future__ import annotations

import json

import pytest
import torch

from aiprod_studio.errors import BadInput
from engine.render import media

SIZE = {"prompt": "a lighthouse at dusk", "width": 64, "height": 64, "num_frames": 17, "steps": 3}


@pytest.fixture
def up_studio(own_studio):
    from engine.models.tiny_upsampler import make_tiny_upsampler

    make_tiny_upsampler(own_studio.vault)
    return own_studio


def test_upscale_doubles_the_clip_and_keeps_its_frames(up_studio):
    steps = []
    recipe = up_studio.build_recipe({**SIZE, "upscale": 2})
    entry = up_studio.vault.get("aiprod-tiny-upsampler", kind="upsampler")
    assert (recipe.upsampler, recipe.upsampler_digest) == (entry.name, entry.digest)
    row = up_studio.render(recipe, progress=lambda s, t: steps.append((s, t)))
    assert row["status"] == "done", row["error"]
    video = media.probe(row["output_path"])["video"]
    assert (video["width"], video["height"], video["frames"]) == (128, 128, 17)
    assert steps[-1] == (6, 6)  # the three first-stage steps, then the three refine steps
    assert not [f for f in row["qa"]["findings"] if f["severity"] == "error"]  # QA expects the doubled size
    plain = up_studio.render(up_studio.build_recipe(SIZE))
    assert media.probe(plain["output_path"])["video"]["width"] == 64
    assert recipe.render_key() != up_studio.build_recipe(SIZE).render_key()


def test_upscaled_clip_rerenders_to_the_same_bytes(up_studio):
    from engine.render.reproduce import reproduce

    row = up_studio.render(up_studio.build_recipe({**SIZE, "upscale": 2, "seed": 4}))
    report = reproduce(up_studio, row["id"])
    assert report["passed"] and report["comparison"]["identical"]
    assert media.read_metadata_json(row["output_path"])["upscale"] == 2


def test_upsample_doubles_the_latents_through_the_vault_model(up_studio):
    from engine.models.pipelines import load_pipeline
    from engine.render.upscale import upsample, upsampler_for

    pipe = load_pipeline(up_studio.vault, up_studio.vault.get("aiprod-tiny-ltx2"), up_studio.plan)
    model = upsampler_for(pipe, up_studio.vault, up_studio.vault.get("aiprod-tiny-upsampler", kind="upsampler"))
    assert upsampler_for(pipe, up_studio.vault, up_studio.vault.get("aiprod-tiny-upsampler")) is model  # kept
    latents = torch.randn(1, 8, 5, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        out = upsample(pipe, model, latents)
        assert out.shape == (1, 8, 5, 16, 16)
        assert torch.allclose(out, model(latents), atol=1e-6)  # the model's own output, no other change


def test_a_finished_clip_is_queued_again_upscaled(up_studio):
    from engine.render.inputs import upscaled_recipe

    row = up_studio.render(up_studio.build_recipe({**SIZE, "seed": 9}))
    recipe = upscaled_recipe(up_studio, row["id"])
    assert recipe.upscale == 2 and recipe.seed == 9 and recipe.upsampler == "aiprod-tiny-upsampler"
    again = up_studio.render(recipe)
    with pytest.raises(BadInput, match="already upscaled") as err:
        upscaled_recipe(up_studio, again["id"])
    assert err.value.field == "job_id"


def test_upscale_refusals_name_the_field(studio, own_studio):
    with pytest.raises(BadInput, match="needs a latent upsampler in the vault") as err:
        studio.build_recipe({**SIZE, "upscale": 2})  # (the shared tiny vault has none)
    assert err.value.field == "upscale"
    with pytest.raises(BadInput) as err:
        studio.build_recipe({**SIZE, "upscale": 3})
    assert err.value.field == "upscale"
    with pytest.raises(BadInput, match="at most 4096 a side") as err:
        studio.build_recipe({**SIZE, "width": 2560, "upscale": 2})
    assert err.value.field == "upscale"
    # a vault entry of kind upsampler that is not one is refused by its config, before anything loads
    from engine.models.tiny_upsampler import make_tiny_upsampler

    entry = make_tiny_upsampler(own_studio.vault, name="not-an-upsampler")
    config = own_studio.vault.entry_dir(entry) / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "_class_name": "UNet2DModel"}))
    with pytest.raises(BadInput) as err:
        own_studio.build_recipe({**SIZE, "upscale": 2, "upsampler": "not-an-upsampler"})
    assert err.value.field == "upsampler"


def test_cli_upscale_and_its_refusal(cli, tiny_vault, tmp_path):
    import shutil

    from aiprod_studio.vault.store import Vault
    from engine.models.tiny_upsampler import make_tiny_upsampler

    args = ("render", "--prompt", "a kite", "--width", "64", "--height", "64", "--frames", "9", "--steps", "2")
    refused = cli(*args, "--upscale", "2", "--json")
    assert refused.returncode == 2 and refused.json["field"] == "upscale"
    models = tmp_path / "models"
    shutil.copytree(tiny_vault, models)
    make_tiny_upsampler(Vault(models))
    done = cli(*args, "--upscale", "2", "--json", models_dir=models)
    assert done.returncode == 0, done.stderr
    assert media.probe(done.json["output"])["video"]["width"] == 128 and done.json["recipe"]["upscale"] == 2


def test_stage_one_is_the_plain_render_and_stage_two_runs_the_refine_sigmas(up_studio, monkeypatch):
    """An upscale starts from the very latents the recipe renders to without it (so History's
    Upscale 2× upscales that clip), and refines on LTX-2's stage-2 sigmas as given."""
    from engine.models.pipelines import load_pipeline
    from engine.render import clip, schedule
    from engine.render.clip import pipeline_kwargs
    from engine.render.upscale import STAGE_2_SIGMAS

    seen: dict = {}
    real_upsample, real_scheduler = clip.upsample, schedule.refine_scheduler

    def spy_upsample(pipe, model, latents):
        seen["stage1"] = latents.clone()
        return real_upsample(pipe, model, latents)

    def spy_scheduler(scheduler):
        seen["scheduler"] = real_scheduler(scheduler)
        return seen["scheduler"]

    monkeypatch.setattr(clip, "upsample", spy_upsample)
    monkeypatch.setattr(schedule, "refine_scheduler", spy_scheduler)
    plain = up_studio.build_recipe({**SIZE, "seed": 11})
    assert up_studio.render(plain.model_copy(update={"upscale": 2, **_upsampler(up_studio)}))["status"] == "done"
    pipe = load_pipeline(up_studio.vault, up_studio.vault.get("aiprod-tiny-ltx2"), up_studio.plan)
    with torch.inference_mode():
        want = pipe(**pipeline_kwargs(pipe, plain), generator=torch.Generator().manual_seed(11), output_type="latent")
    assert torch.equal(seen["stage1"], want.frames)
    sigmas = seen["scheduler"].sigmas[:-1].tolist()
    assert sigmas == pytest.approx(STAGE_2_SIGMAS, abs=1e-6)  # not shifted, not stretched to a terminal


def _upsampler(studio) -> dict:
    entry = studio.vault.get("aiprod-tiny-upsampler", kind="upsampler")
    return {"upsampler": entry.name, "upsampler_digest": entry.digest}
