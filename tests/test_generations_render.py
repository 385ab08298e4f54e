"""LTX-2.3 and LTX-2.5 through the whole studio path: the tiny model of each generation renders
with its generation's defaults (engine, CLI, the /render API function, a storyboard shot), re-renders
bit for bit, picks its own length (2.5), decodes with the diffusion decoder (2.5), and takes only
LoRAs trained on its generation."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aiprod_studio.errors import BadInput
from aiprod_studio.generations import DEFAULTS
from aiprod_studio.storyboard.scenarist import split_script
from engine.film import shots as sb
from engine.render import media
from engine.render.reproduce import reproduce

ROOT = Path(__file__).resolve().parent.parent
T23, T25 = "aiprod-tiny-ltx23", "aiprod-tiny-ltx25"


@pytest.fixture(scope="module")
def gen_vault(tiny_vault, tmp_path_factory) -> Path:
    """The tiny vault with the tiny LTX-2.3 and LTX-2.5 models added, as `vault make-tiny --generation` builds them."""
    from aiprod_studio.vault.store import Vault
    from engine.models.tiny_generations import make_tiny_generation

    root = tmp_path_factory.mktemp("gen") / "models"
    shutil.copytree(tiny_vault, root)
    for generation in ("2.3", "2.5"):
        make_tiny_generation(Vault(root), generation)
    return root


@pytest.fixture
def gen_studio(gen_vault, data_dir):
    from aiprod_studio.settings import load_settings
    from engine.studio import Studio

    s = Studio(load_settings(models_dir=gen_vault, data_dir=data_dir, device="cpu"))
    yield s
    s.close()


@pytest.mark.parametrize(("model", "generation"), [(T23, "2.3"), (T25, "2.5")])
def test_each_generation_renders_with_its_defaults_and_re_renders_bit_for_bit(gen_studio, model, generation):
    recipe = gen_studio.build_recipe({"prompt": "a red boat on the sea", "model": model, "seed": 3})
    assert recipe.generation == generation
    recommended = DEFAULTS[(generation, False)]["advanced"]
    # the generation's guidance extras, under the tiny entry's own (a STG block its 2 layers have)
    assert recipe.advanced == {**recommended, "max_sequence_length": 64, "spatio_temporal_guidance_blocks": [1]}
    assert recipe.advanced["use_cross_timestep"] is True
    row = gen_studio.render(recipe)
    assert row["status"] == "done" and row["recipe"]["generation"] == generation
    embedded = media.read_metadata_json(row["output_path"])
    assert embedded["generation"] == generation and embedded["advanced"]["audio_guidance_scale"] == 7.0
    info = media.probe(row["output_path"])
    assert info["video"]["frames"] == 17 and info["audio"]["sample_rate"] == 48000  # the 2.3+ vocoder
    again = reproduce(gen_studio, row["id"])
    assert again["passed"] and again["comparison"]["identical"] and again["comparison"]["audio"]["identical"]


def test_auto_duration_records_the_frame_count_the_model_picked(gen_studio):
    recipe = gen_studio.build_recipe(
        {"prompt": "waves at dawn", "model": T25, "auto_duration": True, "num_frames": 121}
    )
    assert recipe.auto_duration and recipe.num_frames == 121  # the longest clip allowed
    row = gen_studio.render(recipe)
    picked = row["recipe"]["num_frames"]
    assert row["recipe"]["auto_duration"] is True and picked < 121 and (picked - 1) % 8 == 0
    assert media.probe(row["output_path"])["video"]["frames"] == picked
    assert media.read_metadata_json(row["output_path"])["num_frames"] == picked
    # rendered again from its record, the head picks the same count: the same clip
    again = reproduce(gen_studio, row["id"])
    assert again["passed"] and again["comparison"]["identical"]
    # a bound below the model's pick keeps the clip within it
    short = gen_studio.render(recipe.model_copy(update={"num_frames": 9}))
    assert short["recipe"]["num_frames"] == 9 and media.probe(short["output_path"])["video"]["frames"] == 9


def test_the_quality_decode_uses_the_diffusion_decoder(gen_studio):
    plain = gen_studio.render(gen_studio.build_recipe({"prompt": "a lighthouse", "model": T25, "seed": 5}))
    quality = gen_studio.render(
        gen_studio.build_recipe({"prompt": "a lighthouse", "model": T25, "seed": 5, "decoder": "diffusion"})
    )
    assert quality["status"] == "done" and quality["recipe"]["decoder"] == "diffusion"
    a, b = media.read_frames(plain["output_path"]), media.read_frames(quality["output_path"])
    assert a.shape == b.shape == (17, 64, 64, 3) and not np.array_equal(a, b)
    # the sound is decoded as always: the same in both
    assert media.probe(quality["output_path"])["audio"]["duration_s"] == pytest.approx(
        media.probe(plain["output_path"])["audio"]["duration_s"]
    )
    assert quality["recipe"] != plain["recipe"]
    again = reproduce(gen_studio, quality["id"])
    assert again["passed"] and again["comparison"]["identical"]


def test_the_cli_renders_an_ltx_2_3_model_and_names_its_generation(gen_vault, data_dir, tmp_path):
    env = {"AIPROD_MODELS_DIR": str(gen_vault), "AIPROD_DATA_DIR": str(data_dir), "AIPROD_DEVICE": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-m", "aiprod_studio", "render", "--prompt", "a red car", "--model", T23]
        + ["--out", str(tmp_path / "car.mp4"), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**__import__("os").environ, **env},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    assert data["recipe"]["generation"] == "2.3" and data["recipe"]["steps"] == 8
    listed = subprocess.run(
        [sys.executable, "-m", "aiprod_studio", "vault", "list"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**__import__("os").environ, **env},
        timeout=120,
    )
    assert f"{T23}" in listed.stdout and "LTX-2.3" in listed.stdout and "LTX-2.5" in listed.stdout


def test_the_render_api_and_a_storyboard_shot_use_the_generation(gen_studio):
    from engine.runners import make_worker
    from ui.app import build_app

    worker = make_worker(gen_studio).start()
    try:
        fns = {f.fn.__name__: f.fn for f in build_app(gen_studio, worker).fns.values() if f.fn is not None}
        _video, record = fns["render"](prompt="a storm", model=T25, auto_duration=True, num_frames=49)
        assert record["status"] == "done" and record["recipe"]["generation"] == "2.5"
        assert record["recipe"]["auto_duration"] is True and record["recipe"]["num_frames"] <= 49
        with pytest.raises(Exception, match="auto_duration needs a model with a duration head"):
            fns["render"](prompt="a storm", model=T23, auto_duration=True)
    finally:
        worker.stop()
    board = split_script("Shot 1: a red car at night (0.5s)", fps=24, base_seed=7)
    board = board.model_copy(update={"model": T23})
    plans = sb.plan(gen_studio, board)
    assert plans[0].recipe.generation == "2.3" and plans[0].recipe.advanced["spatio_temporal_guidance_blocks"] == [1]
    sb.render_now(gen_studio, plans)
    assert gen_studio.history.get(plans[0].job["id"])["recipe"]["generation"] == "2.3"


def test_a_lora_trained_on_ltx_2_3_loads_there_and_is_refused_on_ltx_2_0(gen_studio, tmp_path):
    from training_data import make_dataset

    from aiprod_studio.training import make_train_config
    from engine.training.jobs import run_training

    dataset = make_dataset(tmp_path / "squares", n=4)
    config = make_train_config(
        {"dataset": str(dataset), "name": "squares-23", "model": T23, "rank": 4, "steps": 4, "save_every": 4}
    )
    job_id = gen_studio.history.create_train_job(config, status="running")
    row = run_training(gen_studio, job_id)
    assert row["status"] == "done", row.get("error")
    entry = gen_studio.vault.get("squares-23", kind="lora")
    assert entry.generation == "2.3"
    used = gen_studio.render(gen_studio.build_recipe({"prompt": "a red square", "model": T23, "loras": ["squares-23"]}))
    base = gen_studio.render(gen_studio.build_recipe({"prompt": "a red square", "model": T23}))
    assert not np.array_equal(media.read_frames(used["output_path"]), media.read_frames(base["output_path"]))
    # the same LoRA in ComfyUI's naming (`diffusion_model.…`, alpha folded in), imported as a plain file
    from aiprod_studio.vault.transfer import import_path

    import_path(gen_studio.vault, row["result"]["comfyui_file"], "squares-23-comfy", kind="lora", family="ltx2")
    comfy = gen_studio.render(
        gen_studio.build_recipe({"prompt": "a red square", "model": T23, "loras": ["squares-23-comfy"]})
    )
    assert media.psnr(media.read_frames(comfy["output_path"]), media.read_frames(used["output_path"])) > 40
    with pytest.raises(BadInput) as info:
        gen_studio.build_recipe({"prompt": "a red square", "model": "aiprod-tiny-ltx2", "loras": ["squares-23"]})
    assert info.value.field == "loras"
    assert "trained on LTX-2.3" in str(info.value) and "LTX-2.0" in str(info.value)
