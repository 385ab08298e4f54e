"""Recipe validation: every error names the field and the value; nothing is rounded."""

from __future__ import annotations

import json

import pytest

from aiprod_studio.errors import BadInput
from aiprod_studio.recipe import Recipe, make_recipe, recipe_from_json

BASE = {
    "prompt": "a red car",
    "model": "m",
    "width": 64,
    "height": 64,
    "num_frames": 17,
    "fps": 24,
    "steps": 8,
    "guidance": 3.0,
    "seed": 1,
}


def error_for(**changes) -> BadInput:
    with pytest.raises(BadInput) as info:
        make_recipe({**BASE, **changes})
    return info.value


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        ({"width": 50}, "width", "multiple of 32 between 32 and 4096, got 50"),
        ({"height": 0}, "height", "got 0"),
        ({"num_frames": 20}, "num_frames", "must be 8k+1"),
        ({"num_frames": 0}, "num_frames", "got 0"),
        ({"steps": 0}, "steps", "between 1 and 200, got 0"),
        ({"steps": 201}, "steps", "got 201"),
        ({"guidance": 0.5}, "guidance", "at least 1"),
        ({"fps": 61}, "fps", "between 1 and 60, got 61"),
        ({"prompt": ""}, "prompt", "must not be empty"),
        ({"prompt": "   "}, "prompt", "must not be blank"),
        ({"prompt": "x" * 2001}, "prompt", "at most 2000 characters, got 2001"),
        ({"seed": -1}, "seed", "got -1"),
        ({"quantization": "int4"}, "quantization", "'int4'"),
        ({"width": "wide"}, "width", "'wide'"),
        ({"colour": "red"}, "colour", "unknown field 'colour'"),
        ({"advanced": {"stg_scael": 1.0}}, "advanced", "unknown setting 'stg_scael'"),
        ({"advanced": {"max_sequence_length": "long"}}, "advanced", "must be int, got 'long'"),
    ],
)
def test_bad_values_name_field_and_value(changes, field, fragment):
    err = error_for(**changes)
    assert err.field == field
    assert field in str(err)
    assert fragment in str(err)
    assert err.exit_code == 2


def test_frames_message_is_the_documented_one():
    assert str(error_for(num_frames=20)) == "num_frames must be 8k+1 (1, 9, 17, 25, …, 1025), got 20"


def test_valid_edge_values_are_kept_exactly():
    r = make_recipe({**BASE, "width": 32, "height": 4096, "num_frames": 1, "steps": 200, "guidance": 1.0, "fps": 1})
    assert (r.width, r.height, r.num_frames, r.steps, r.guidance, r.fps) == (32, 4096, 1, 200, 1.0, 1)


def test_json_round_trip_is_canonical_and_lossless():
    r = make_recipe({**BASE, "advanced": {"max_sequence_length": 64, "stg_scale": 0.0}})
    text = r.to_json()
    assert json.loads(text)["advanced"] == {"max_sequence_length": 64, "stg_scale": 0.0}
    assert recipe_from_json(text) == r
    assert recipe_from_json(text).to_json() == text


def test_render_key_ignores_versions_but_not_seed():
    a = make_recipe(BASE)
    assert a.render_key() == a.model_copy(update={"versions": {"torch": "x"}}).render_key()
    assert a.render_key() != make_recipe({**BASE, "seed": 2}).render_key()


def test_keyint_keeps_old_recipes_and_their_keys_and_is_checked():
    old = make_recipe(BASE)  # a recipe written before keyframes came once a second
    assert old.keyint == 0 and "keyint" not in json.dumps(old.model_dump(exclude={"keyint"}))
    assert make_recipe({**BASE, "keyint": 0}).render_key() == old.render_key()
    assert make_recipe({**BASE, "keyint": 24}).render_key() != old.render_key()  # (other bytes, other key)
    for bad in (-1, 1001, "often", 2.5, True):
        with pytest.raises(BadInput, match="keyint"):
            make_recipe({**BASE, "keyint": bad})


def test_an_edit_is_checked_by_kind():
    edit = {"parent": "a" * 64, "parent_job": 1, "context": 9}
    make_recipe({**BASE, "num_frames": 25, "edit": {**edit, "kind": "retake", "start": 16, "frames": 8}})
    refusals = [
        ({"kind": "retake", "start": 16, "frames": 16}, "run past the clip"),
        ({"kind": "retake", "start": 4, "frames": 8}, "more frames than the 4 before"),
        ({"kind": "retake", "start": 16, "frames": 8, "after": 5}, "after 5 is more frames than the 1"),
        ({"kind": "retake", "start": 0, "frames": 25, "context": 0}, "render the clip again instead"),
        ({"kind": "retake", "start": 16, "frames": 0}, "at least 1"),
        ({"kind": "extend", "frames": 12}, "multiple of 8"),
        ({"kind": "extend", "frames": 8, "start": 3}, "no start or after"),
        ({"kind": "crop", "frames": 8}, "kind"),
    ]
    for changes, words in refusals:
        with pytest.raises(BadInput, match=words) as err:
            make_recipe({**BASE, "num_frames": 25, "edit": {**edit, **changes}})
        assert "edit" in str(err.value), changes


def test_recipe_from_json_rejects_non_objects():
    with pytest.raises(BadInput, match="JSON object"):
        recipe_from_json("[1, 2]")
    with pytest.raises(BadInput, match="not valid JSON"):
        recipe_from_json("{nope")


def test_schema_forbids_extra_fields():
    assert Recipe.model_config["extra"] == "forbid"


@pytest.mark.parametrize(
    ("changes", "field", "fragment"),
    [
        (
            {"prompt": "a \ud800 car"},
            "prompt",
            "prompt contains an invalid character (lone surrogate U+D800 at position 2)",
        ),
        ({"prompt": "a car\udcff"}, "prompt", "(lone surrogate U+DCFF at position 5)"),
        ({"prompt": "a\x00car"}, "prompt", "prompt contains an invalid character (NUL U+0000 at position 1)"),
        ({"prompt": "a \x1b[31mcar"}, "prompt", "(control character U+001B at position 2)"),
        ({"negative_prompt": "blur\ud83d"}, "negative_prompt", "negative_prompt contains an invalid character"),
        ({"model": "m\x7f"}, "model", "(control character U+007F at position 1)"),
        ({"loras": [{"name": "style\udc80"}]}, "loras", "loras.0.name contains an invalid character"),
        ({"versions": {"torch": "2\x00"}}, "versions", "(NUL U+0000 at position 1 of ['torch'])"),
    ],
)
def test_text_that_cannot_be_stored_is_refused_naming_field_and_position(changes, field, fragment):
    err = error_for(**changes)
    assert err.field == field and fragment in str(err) and err.exit_code == 2
    str(err).encode("utf-8")  # the message itself is printable


def test_ordinary_text_is_kept_exactly_and_serialises():
    text = "Une fée\tdanse\r\nsous la pluie 🌧\u200b — 夜の街"
    r = make_recipe({**BASE, "prompt": text, "negative_prompt": "flou\n"})
    assert r.prompt == text and recipe_from_json(r.to_json()) == r
    r.to_json().encode("utf-8")


def test_a_surrogate_escape_in_recipe_json_is_refused():
    with pytest.raises(BadInput) as info:
        recipe_from_json(json.dumps({**BASE, "prompt": "x\ud800"}))  # json writes it as the escape \ud800
    assert info.value.field == "prompt" and "lone surrogate U+D800 at position 1" in str(info.value)


def test_a_huge_bad_value_is_not_echoed_whole():
    err = error_for(width="w" * 100_000)
    assert err.field == "width" and len(str(err)) < 300


def test_the_training_config_refuses_the_same_characters():
    from aiprod_studio.training import make_train_config

    for key, value, fragment in [
        ("trigger", "sks\ud800", "trigger contains an invalid character (lone surrogate U+D800"),
        ("dataset", "/data/clips\x00", "dataset contains an invalid character (NUL"),
        ("model", "m\x1b", "model contains an invalid character (control character"),
    ]:
        with pytest.raises(BadInput) as info:
            make_train_config({"dataset": "/data/clips", "name": "my-style", key: value})
        assert info.value.field == key and fragment in str(info.value)
    assert make_train_config({"dataset": "/data/clips", "name": "my-style", "trigger": "sks é"}).trigger == "sks é"


def test_an_old_recipe_with_the_retired_scheduler_still_loads_and_keeps_its_meaning():
    new = make_recipe(BASE)
    old = {**new.model_dump(mode="json"), "scheduler": {}}  # what history rows and MP4s hold from before
    assert make_recipe(old) == new and Recipe.model_validate(old) == new
    assert recipe_from_json(json.dumps(old)) == new
    assert "scheduler" not in json.loads(new.to_json()) and "scheduler" not in Recipe.model_fields


@pytest.mark.parametrize("value", [{"shift": 2.0}, None, "euler"])
def test_a_scheduler_setting_that_was_never_honoured_is_refused_by_name(value):
    with pytest.raises(BadInput) as info:
        make_recipe({**BASE, "scheduler": value})
    assert info.value.field == "scheduler" and str(info.value).startswith("scheduler is no longer a recipe setting")
    assert repr(value) in str(info.value)
