"""The render form (ui/components/render_form.py): widget values → recipe values, a recipe → widget updates."""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import pytest

from aiprod_studio.errors import BadInput
from ui.components.render_form import FIELDS, RenderForm, lora_label, stored_pictures, updates_from_recipe, values


def widgets(**changed):
    """Widget values in `FIELDS` order, as Gradio sends them (numbers as floats)."""
    shown = {
        "prompt": "a lighthouse",
        "negative_prompt": "",
        "model": "aiprod-tiny-ltx2",
        "quantization": "none",
        "offload": "none",
        "width": 64.0,
        "height": 64.0,
        "num_frames": 17.0,
        "fps": 24.0,
        "steps": 8.0,
        "guidance": 3.0,
        "seed": 5.0,
        "loras": [],
        "profile": "auto",
        "vae_tiling": "auto",
        "fast": False,
        "auto_duration": False,
        "decoder": "vae",
        "image": None,
        "end_image": None,
        "end_strength": 1.0,
        "keyframes": None,
        "keyframe_frames": "",
        "upscale": False,
    } | changed
    return [shown[f] for f in FIELDS]


def test_values_turn_whole_floats_into_ints_but_keep_guidance_a_float():
    v = values(*widgets())
    assert v == {
        "prompt": "a lighthouse",
        "negative_prompt": "",
        "model": "aiprod-tiny-ltx2",
        "quantization": "none",
        "offload": "none",
        "width": 64,
        "height": 64,
        "num_frames": 17,
        "fps": 24,
        "steps": 8,
        "guidance": 3.0,
        "seed": 5,
        "loras": [],
        "profile": "auto",
        "vae_tiling": None,  # the radio's auto: the profile decides
        "fast": False,
        "auto_duration": False,
        "decoder": "vae",
        "conditions": None,  # no picture
        "upscale": None,  # the checkbox off: no upscale
    }
    assert type(v["width"]) is int and type(v["guidance"]) is float
    assert values(*widgets(width=64.5))["width"] == 64.5  # not rounded: the recipe refuses it by name


def test_empty_boxes_mean_the_models_default_except_for_the_prompts():
    v = values(*widgets(width="", steps="", prompt="", negative_prompt=""))
    assert v["width"] is None and v["steps"] is None and v["prompt"] == "" and v["negative_prompt"] == ""


def test_lora_menu_values_drop_blanks_and_accept_one_typed_name():
    assert values(*widgets(loras=["style-a:0.5", "style-b", " "]))["loras"] == ["style-a:0.5", "style-b"]
    assert values(*widgets(loras="style-a:0.6"))["loras"] == ["style-a:0.6"]
    assert values(*widgets(loras=None))["loras"] == []


def test_lora_label_shows_a_strength_only_when_it_is_not_one():
    assert lora_label({"name": "style-a", "scale": 0.5, "sha256": "x"}) == "style-a:0.5"
    assert lora_label({"name": "style-b"}) == "style-b"
    assert lora_label(SimpleNamespace(name="style-c", scale=1.0)) == "style-c"
    assert lora_label(SimpleNamespace(name="style-d", scale=-2)) == "style-d:-2"


def test_a_recipe_fills_the_fields_it_has_and_leaves_the_others():
    updates = updates_from_recipe(
        {
            "prompt": "restored",
            "seed": 99,
            "steps": 3,
            "loras": [{"name": "style-a", "scale": 0.5, "sha256": "x"}, {"name": "style-b", "scale": 1.0}],
        }
    )
    assert len(updates) == len(FIELDS)
    by_field = dict(zip(FIELDS, updates, strict=False))
    assert by_field["prompt"]["value"] == "restored" and by_field["seed"]["value"] == 99
    assert by_field["steps"]["value"] == 3 and by_field["loras"]["value"] == ["style-a:0.5", "style-b"]
    assert by_field["width"] == gr.update() and "value" not in by_field["model"]
    assert all(u == gr.update() for u in updates_from_recipe({}))


def test_the_form_finds_its_components_by_field():
    form = RenderForm(components=[f"<{f}>" for f in FIELDS])
    assert form.component("model") == "<model>" and form.component("loras") == "<loras>"


def test_vae_tiling_radio_and_script_values_map_to_the_recipe_or_are_refused_by_name():
    assert [values(*widgets(vae_tiling=v))["vae_tiling"] for v in ("auto", "on", "off")] == [None, True, False]
    assert [values(*widgets(vae_tiling=v))["vae_tiling"] for v in (None, True, False)] == [None, True, False]
    try:
        values(*widgets(vae_tiling="sometimes"))
    except gr.Error as exc:
        assert "vae_tiling" in str(exc) and "'sometimes'" in str(exc)
    else:
        raise AssertionError("a bad vae_tiling was accepted")
    shown = updates_from_recipe({"vae_tiling": True})[FIELDS.index("vae_tiling")]
    assert shown["value"] == "on"


def test_pictures_become_the_recipes_conditions():
    v = values(
        *widgets(
            image="/up/a.png",
            end_image={"path": "/up/z.webp"},  # (a script's file record)
            end_strength=0.5,
            keyframes=["/up/k1.png", {"path": "/up/k2.jpg"}],
            keyframe_frames="8, 12:0.25",
        )
    )
    assert v["conditions"] == [
        {"path": "/up/a.png", "frame": 0, "strength": 1.0, "field": "image"},
        {"path": "/up/z.webp", "frame": "last", "strength": 0.5, "field": "end_image"},
        {"path": "/up/k1.png", "frame": 8, "strength": 1.0, "field": "keyframes"},
        {"path": "/up/k2.jpg", "frame": 12, "strength": 0.25, "field": "keyframes"},
    ]
    assert values(*widgets(keyframes=["/up/k.png"], keyframe_frames=["last:0.5"]))["conditions"][0]["frame"] == "last"


@pytest.mark.parametrize(
    "changed, field",
    [
        ({"keyframes": ["/up/k.png"], "keyframe_frames": ""}, "keyframe_frames"),
        ({"keyframes": ["/up/k.png"], "keyframe_frames": "8, 9"}, "keyframe_frames"),
        ({"keyframes": ["/up/k.png"], "keyframe_frames": "soon"}, "keyframe_frames"),
        ({"keyframes": ["/up/k.png"], "keyframe_frames": "8:3"}, "keyframe_frames"),
        ({"end_image": "/up/z.png", "end_strength": 0}, "end_strength"),
        ({"keyframes": ["/up/k.png"], "keyframe_frames": [True]}, "keyframe_frames"),
        ({"keyframes": ["/up/k.png"], "keyframe_frames": "٨"}, "keyframe_frames"),  # (only ASCII digits)
        ({"image": {}}, "image"),  # a file record with no file is not "no picture"
        ({"image": {"url": "https://example.com/x.png"}}, "image"),
        ({"image": 0}, "image"),
        ({"end_image": []}, "end_image"),
        ({"keyframes": [{"path": ""}], "keyframe_frames": "8"}, "keyframes"),
    ],
)
def test_keyframe_values_that_do_not_parse_are_refused_by_field(changed, field):
    with pytest.raises(BadInput) as err:
        values(*widgets(**changed))
    assert err.value.field == field


def test_a_whole_recipe_brings_its_pictures_back_from_the_store(tmp_path):
    a, b, c = ("a" * 64, "b" * 64, "c" * 64)
    for sha in (a, b):
        (tmp_path / f"{sha}.png").write_bytes(b"png")
    recipe = {
        "prompt": "restored",
        "model_digest": "d",
        "num_frames": 17,
        "conditions": [
            {"image": a, "frame": 0, "strength": 1.0},
            {"image": b, "frame": 16, "strength": 0.4},
            {"image": c, "frame": 8, "strength": 1.0},  # not in this store: left out
            {"frame": 4},  # not a picture entry at all: left out
            {"image": "../../etc/passwd", "frame": 4, "strength": 1.0},  # nor a path out of the store
            {"image": a, "frame": 0, "strength": 0.87654321},  # a weaker first picture: a keyframe, exactly
        ],
    }
    by_field = dict(zip(FIELDS, updates_from_recipe(recipe, tmp_path), strict=True))
    assert by_field["image"]["value"] == str(tmp_path / f"{a}.png")
    assert by_field["end_image"]["value"] == str(tmp_path / f"{b}.png") and by_field["end_strength"]["value"] == 0.4
    assert by_field["keyframes"]["value"] == [str(tmp_path / f"{a}.png")]
    assert by_field["keyframe_frames"]["value"] == "0:0.87654321"
    assert stored_pictures(recipe["conditions"], tmp_path)[1] == 3  # (the Render tab says how many are missing)
    # a recipe without pictures empties the picture fields (no start image left from the last clip)
    by_field = dict(zip(FIELDS, updates_from_recipe({"prompt": "p", "model_digest": "d"}, tmp_path), strict=True))
    assert by_field["image"]["value"] is None and by_field["keyframes"]["value"] is None


def test_upscale_checkbox_and_script_values():
    assert [values(*widgets(upscale=v))["upscale"] for v in (True, False, None, 2, 1, 2.0)] == [2, None, None, 2, 1, 2]
    by_field = dict(zip(FIELDS, updates_from_recipe({"upscale": 2}), strict=True))
    assert by_field["upscale"]["value"] is True
    by_field = dict(zip(FIELDS, updates_from_recipe({"prompt": "p", "model_digest": "d"}), strict=True))
    assert by_field["upscale"]["value"] is False  # a whole recipe from before upscaling: off
