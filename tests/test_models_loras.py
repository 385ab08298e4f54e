"""LoRAs at render time: strength 0 is the base render, several at once, wrong base refused."""

from __future__ import annotations

import shutil

import pytest

from aiprod_studio.errors import BadInput
from aiprod_studio.settings import load_settings
from engine.models.loras import parse_lora_spec
from engine.models.tiny import make_tiny, make_tiny_lora
from engine.render import media
from engine.studio import Studio


@pytest.fixture(scope="module")
def lora_studio(tiny_vault, tmp_path_factory):
    root = tmp_path_factory.mktemp("lora-vault") / "models"
    shutil.copytree(tiny_vault, root)
    studio = Studio(load_settings(models_dir=root, data_dir=root.parent / "data", device="cpu"))
    make_tiny_lora(studio.vault, name="style-a", seed=1)
    make_tiny_lora(studio.vault, name="style-b", seed=2)
    make_tiny(studio.vault, name="other-base", seed=5)
    make_tiny_lora(studio.vault, base_name="other-base", name="for-other", seed=3)
    yield studio
    studio.close()


def render(studio, tmp_path, name, **values):
    row = studio.render(
        studio.build_recipe({"prompt": "a lighthouse", "seed": 3, "model": "aiprod-tiny-ltx2", **values}),
        out_path=tmp_path / f"{name}.mp4",
    )
    return row


def test_strength_zero_is_the_base_and_strength_one_differs(lora_studio, tmp_path):
    base = render(lora_studio, tmp_path, "base")
    zero = render(lora_studio, tmp_path, "zero", loras=["style-a:0"])
    one = render(lora_studio, tmp_path, "one", loras=["style-a:1"])
    assert media.compare(base["output_path"], zero["output_path"])["identical"]
    assert not media.compare(base["output_path"], one["output_path"])["identical"]
    entry = lora_studio.vault.get("style-a")
    assert one["recipe"]["loras"] == [{"name": "style-a", "sha256": entry.digest, "scale": 1.0}]
    # after a LoRA render, a render without LoRAs is the base again (adapters switched off)
    again = render(lora_studio, tmp_path, "again")
    assert media.compare(base["output_path"], again["output_path"])["identical"]


def test_two_loras_at_once(lora_studio, tmp_path):
    a = render(lora_studio, tmp_path, "a", loras=["style-a:1"])
    ab = render(lora_studio, tmp_path, "ab", loras=["style-a:1", "style-b:0.7"])
    b0 = render(lora_studio, tmp_path, "b0", loras=["style-a:1", "style-b:0"])
    assert not media.compare(a["output_path"], ab["output_path"])["identical"]
    assert media.compare(a["output_path"], b0["output_path"])["identical"]


def test_refusals_name_the_field(lora_studio):
    cases = [
        (["for-other"], "made for other-base"),
        (["nope"], "not a lora entry"),
        (["style-a:3"], "between -2 and 2"),
        (["style-a:x"], "must be a number"),
        (["style-a", "style-a:0.5"], "listed twice"),
        ([{"a": 1}], "loras: name is required; unknown field 'a'"),
    ]
    for specs, message in cases:
        with pytest.raises(BadInput) as info:
            lora_studio.build_recipe({"prompt": "x", "model": "aiprod-tiny-ltx2", "loras": specs})
        assert info.value.field == "loras" and message in str(info.value), specs
        assert "pydantic" not in str(info.value)
    assert parse_lora_spec("name:-1.5").scale == -1.5 and parse_lora_spec("name").scale == 1.0


def test_cli_render_with_lora_and_recipe_round_trip(cli, lora_studio, tmp_path):
    models = lora_studio.vault.root
    out = tmp_path / "l.mp4"
    r = cli(
        "render",
        "--prompt",
        "a lamp",
        "--lora",
        "style-a:0.5",
        "--lora",
        "style-b",
        "--out",
        str(out),
        "--json",
        models_dir=models,
    )
    assert r.returncode == 0, r.stderr
    assert [(x["name"], x["scale"]) for x in r.json["recipe"]["loras"]] == [("style-a", 0.5), ("style-b", 1.0)]
    recipe = tmp_path / "recipe.json"
    recipe.write_text(cli("inspect", str(out), models_dir=models).stdout)
    again = cli("render", "--recipe", str(recipe), "--out", str(tmp_path / "again.mp4"), models_dir=models)
    assert again.returncode == 0, again.stderr
    assert media.compare(out, tmp_path / "again.mp4")["identical"]
    bad = cli("render", "--prompt", "x", "--lora", "for-other", "--json", models_dir=models)
    assert bad.returncode == 2 and bad.json["field"] == "loras" and "made for other-base" in bad.json["error"]


def test_storyboard_shots_carry_their_loras(lora_studio):
    from aiprod_studio.recipe import LoraRef
    from aiprod_studio.storyboard.scenarist import split_script
    from engine.film import shots as sb

    board = split_script("Shot 1: a lamp (0.5s)\nShot 2: a door (0.5s)", fps=24)
    board.model = "aiprod-tiny-ltx2"
    board.shots[1] = board.shots[1].model_copy(update={"loras": [LoraRef(name="style-a", scale=0.7)]})
    plans = sb.plan(lora_studio, board)
    assert plans[0].recipe.loras == []
    assert [(r.name, r.scale, r.sha256) for r in plans[1].recipe.loras] == [
        ("style-a", 0.7, lora_studio.vault.get("style-a").digest)
    ]
    sb.render_now(lora_studio, plans)
    assert plans[1].job["recipe"]["loras"][0]["name"] == "style-a"


def test_a_tampered_lora_is_refused_by_its_vault_check_before_its_header_is_read(own_studio, tmp_path):
    from aiprod_studio.errors import IntegrityError
    from aiprod_studio.vault.transfer import import_path

    made = make_tiny_lora(own_studio.vault, name="made-here", seed=4)
    copy = tmp_path / "plain.safetensors"
    shutil.copy(own_studio.vault.file_path(made, next(iter(made.files))), copy)
    plain = import_path(own_studio.vault, copy, "plain", kind="lora", family="ltx2")  # no base recorded
    assert plain.derived_from is None
    weights = own_studio.vault.file_path(plain, next(iter(plain.files)))
    weights.write_bytes(b"\x00" * 16)  # not a safetensors file any more
    with pytest.raises(IntegrityError, match="vault entry 'plain' failed its check"):
        own_studio.build_recipe({"prompt": "a lighthouse", "loras": ["plain"]})
