"""Recipe validation: every error names the field and the value; nothing is rounded."""

from __future__ import annotations

import json

import pytest

from aiprod_studio.errors import BadInput
from aiprod_studio.recipe import Recipe, make_recipe, recipe_from_json

BASE = {"prompt": "a red car", "model": "m", "width": 64, "height": 64, "num_frames": 17, "fps": 24, "steps": 8,
        "guidance": 3.0, "seed": 1}


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


def test_recipe_from_json_rejects_non_objects():
    with pytest.raises(BadInput, match="JSON object"):
        recipe_from_json("[1, 2]")
    with pytest.raises(BadInput, match="not valid JSON"):
        recipe_from_json("{nope")


def test_schema_forbids_extra_fields():
    assert Recipe.model_config["extra"] == "forbid"
