"""Reproduce: the same recipe on the same weights gives the same clip (bit-identical on the CPU);
a changed weight file is refused, naming the file, before anything renders."""

from __future__ import annotations

import json
import math

import pytest

from aiprod_studio.errors import BadInput, IntegrityError
from engine.render.reproduce import reproduce


def test_a_render_reproduces_bit_for_bit_on_the_cpu(studio):
    row = studio.render(studio.build_recipe({"prompt": "a red square", "seed": 11}))
    result = reproduce(studio, row["id"])
    compared = result["comparison"]
    assert result["passed"] and result["target"] == "bit-identical" and result["job_id"] != row["id"]
    assert compared["identical"] and math.isinf(compared["psnr_min"]) and compared["max_abs_diff"] == 0
    assert compared["audio"]["identical"] and math.isinf(compared["audio"]["snr"])
    assert result["checked"] == ["aiprod-tiny-ltx2", "aiprod-tiny-clip"]  # the model and the QA model
    again = reproduce(studio, row["output_path"])  # from the MP4 alone (its embedded recipe)
    assert again["passed"] and again["source"] == row["output_path"]


def test_a_changed_weight_file_is_refused_naming_the_file(own_studio):
    row = own_studio.render(own_studio.build_recipe({"prompt": "a red square", "seed": 3}))
    entry = own_studio.vault.get("aiprod-tiny-ltx2")
    weights = sorted(rel for rel in entry.files if rel.endswith(".safetensors"))[0]
    path = own_studio.vault.file_path(entry, weights)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one byte of the weights, same size
    path.write_bytes(bytes(data))
    jobs = own_studio.history.count()
    with pytest.raises(IntegrityError, match="failed its check") as caught:
        reproduce(own_studio, row["id"], deep=True)
    assert weights in str(caught.value) and own_studio.history.count() == jobs  # nothing rendered


def test_a_model_replaced_since_is_refused_by_digest(own_studio):
    row = own_studio.render(own_studio.build_recipe({"prompt": "a red square", "seed": 5}))
    with own_studio.history.locked() as db:  # as if rendered with another build of the model
        recipe = {**row["recipe"], "model_digest": "0" * 64}
        db.execute("UPDATE jobs SET recipe = ? WHERE id = ?", [json.dumps(recipe), row["id"]])
    with pytest.raises(IntegrityError, match="not the one the clip was rendered with"):
        reproduce(own_studio, row["id"])


def test_what_cannot_be_reproduced_is_refused_by_name(studio, tmp_path):
    queued = studio.history.create_job(studio.stamp(studio.build_recipe({"prompt": "x"})), status="cancelled")
    for source, says in [
        (queued, "only a finished clip"),
        (10_000, "does not exist"),
        (str(tmp_path / "none.mp4"), "does not exist"),
        ("abc", "whole number"),
    ]:
        with pytest.raises(BadInput, match=says):
            reproduce(studio, source)


def test_cli_reproduce_exits_0_when_identical(cli, studio):
    row = studio.render(studio.build_recipe({"prompt": "a red square", "seed": 12}))
    r = cli("reproduce", str(row["id"]), "--json")
    assert r.returncode == 0, r.stderr
    assert (
        r.json["passed"] and r.json["comparison"]["psnr_min"] == "inf" and r.json["comparison"]["audio"]["snr"] == "inf"
    )
    text = cli("reproduce", row["output_path"])
    assert text.returncode == 0 and "reproduced on cpu" in text.stdout


def test_a_hostile_recipe_in_an_mp4_is_refused_by_field(studio, tmp_path):
    import numpy as np

    from engine.render import media

    forged = media.encode_mp4(
        tmp_path / "forged.mp4",
        np.zeros((9, 64, 64, 3), np.uint8),
        24,
        metadata={media.RECIPE_TAG: json.dumps({"prompt": "x", "model": "aiprod-tiny-ltx2", "num_frames": 20})},
    )
    with pytest.raises(BadInput, match="num_frames"):
        reproduce(studio, str(forged))


@pytest.mark.gpu
def test_reproduce_on_cuda_in_deterministic_mode_is_above_55_db(tiny_vault, data_dir):
    from aiprod_studio.settings import load_settings
    from engine.studio import Studio

    studio = Studio(load_settings(models_dir=tiny_vault, data_dir=data_dir, device="cuda"))
    try:
        row = studio.render(studio.build_recipe({"prompt": "a red square", "seed": 13}))
        result = reproduce(studio, row["id"])
        env = studio.history.get(result["job_id"])["recipe"]["versions"]
    finally:
        studio.close()
    assert env["deterministic"] == "on" and env["gpu"] and env["cuda"] and env["cudnn"]
    assert result["target"].startswith("lowest frame PSNR > 55") and result["passed"], result["comparison"]["psnr_min"]


def test_a_reproduction_that_lost_its_sound_does_not_pass(studio, monkeypatch):
    from engine.render import media

    row = studio.render(studio.build_recipe({"prompt": "a red square", "seed": 14}))
    real = media.compare

    def without_sound(a, b):
        result = real(a, b)
        return result | {
            "audio": {"snr": None, "samples": 0, "length_differs": True, "identical": False, "only_in": "a"}
        }

    monkeypatch.setattr(media, "compare", without_sound)
    result = reproduce(studio, row["id"])
    assert result["comparison"]["identical"] and not result["passed"]


def test_a_recipe_can_ask_for_deterministic_mode_without_changing_its_render_key(cli, studio, tmp_path):
    from aiprod_studio.recipe import recipe_from_json

    plain = studio.build_recipe({"prompt": "a red square"})
    asked = plain.model_copy(update={"deterministic": True})
    assert asked.render_key() == plain.render_key()  # the same clip, asked to repeat itself exactly
    r = cli("render", "--prompt", "a red square", "--deterministic", "--out", str(tmp_path / "d.mp4"), "--json")
    assert r.returncode == 0 and r.json["recipe"]["deterministic"] is True, r.stderr
    forged = tmp_path / "recipe.json"
    forged.write_text(json.dumps({**json.loads(plain.to_json()), "deterministic": "yes"}))
    with pytest.raises(BadInput, match="deterministic"):
        recipe_from_json(forged.read_text())
    bad = cli("render", "--recipe", str(forged))
    assert bad.returncode == 2 and "deterministic" in bad.stderr
