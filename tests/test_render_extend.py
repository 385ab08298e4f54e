"""Extending a finished clip: exactly N new frames after the parent's own (kept bit for bit), the
sound continued without a jump, the parent named in the row and the recipe, re-rendered to the
same bytes, and refusals by field."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from aiprod_studio.errors import BadInput
from engine.render import media
from engine.render.extend import extend_recipe
from engine.render.splice import CROSSFADE_S, joined_audio

SIZE = {"prompt": "a red kite over the dunes", "width": 64, "height": 64, "num_frames": 17, "steps": 3}


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_extend_appends_exactly_n_frames_and_keeps_the_parents(studio):
    parent = studio.render(studio.build_recipe({**SIZE, "seed": 3}))
    recipe = extend_recipe(studio, parent["id"], 16, prompt="the kite dives into the sand")
    assert recipe.num_frames == 33 and recipe.prompt == "the kite dives into the sand" and recipe.seed == 3
    assert (recipe.edit.kind, recipe.edit.parent, recipe.edit.parent_job, recipe.edit.frames) == (
        "extend",
        sha(parent["output_path"]),
        parent["id"],
        16,
    )
    row = studio.render(recipe)
    assert row["status"] == "done", row["error"]
    assert row["parent_id"] == parent["id"]
    before, after = media.read_frames(parent["output_path"]), media.read_frames(row["output_path"])
    assert after.shape == (33, 64, 64, 3)
    assert np.array_equal(after[:17], before)  # the parent's frames, bit for bit
    assert not np.array_equal(after[17], after[16])  # and new ones after them
    info = media.probe(row["output_path"])
    assert info["video"]["frames"] == 33 and info["audio"]["codec"] == "aac"
    sound, rate = media.read_audio(row["output_path"])
    parent_sound, _ = media.read_audio(parent["output_path"])
    assert sound.shape[1] > parent_sound.shape[1] + 0.5 * rate  # (16 new frames at 24 fps: two thirds of a second)
    assert not [f for f in row["qa"]["findings"] if f["severity"] == "error"]
    assert media.read_metadata_json(row["output_path"])["edit"]["parent_job"] == parent["id"]


def test_an_extension_rerenders_to_the_same_bytes_and_needs_its_parent(studio):
    from engine.render.reproduce import reproduce

    parent = studio.render(studio.build_recipe(SIZE))
    row = studio.render(extend_recipe(studio, parent["id"], 8))
    report = reproduce(studio, row["id"])
    assert report["passed"] and sha(report["reproduction"]) == sha(row["output_path"])
    with open(parent["output_path"], "r+b") as f:  # the parent changes on disk: it is no longer the parent
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    with pytest.raises(BadInput, match="no longer on disk as it was") as err:
        reproduce(studio, row["id"])
    assert err.value.field == "edit"


def test_extend_refuses_by_field(studio):
    parent = studio.render(studio.build_recipe(SIZE))
    job = parent["id"]
    cases = [(job, 7, "frames"), (job, 12, "frames"), (job, 0, "frames"), (job, 10_000, "frames")]
    for job_id, frames, field in [*cases, (99_999, 8, "job_id"), ("x", 8, "job_id")]:
        with pytest.raises(BadInput) as err:
            extend_recipe(studio, job_id, frames)
        assert err.value.field == field, (job_id, frames, err.value)
    with pytest.raises(BadInput) as err:
        extend_recipe(studio, parent["id"], 8, seed=-1)
    assert err.value.field == "seed"
    assert len(studio.history.jobs()) == 1  # nothing was queued


def test_the_join_is_crossfaded_without_a_jump():
    rate = 16000
    parent = np.full((2, rate), 0.5, np.float32)
    new = np.full((2, rate), -0.5, np.float32)
    joined = joined_audio(parent, new, rate, join=8000, new_join=4000)
    assert joined.shape == (2, 8000 + rate - 4000)
    assert np.array_equal(joined[:, : 8000 - int(rate * CROSSFADE_S)], parent[:, : 8000 - int(rate * CROSSFADE_S)])
    assert np.array_equal(joined[:, 8000:], new[:, 4000:])
    assert np.abs(np.diff(joined, axis=1)).max() < 0.01  # a step of 1.0 spread over 20 ms: no click


def test_cli_render_extend(cli):
    first = cli(
        "render", "--prompt", "waves", "--width", "64", "--height", "64", "--frames", "9", "--steps", "2", "--json"
    )
    assert first.returncode == 0, first.stderr
    done = cli("render", "extend", str(first.json["id"]), "--frames", "8", "--json")
    assert done.returncode == 0, done.stderr
    assert done.json["parent_id"] == first.json["id"] and media.probe(done.json["output"])["video"]["frames"] == 17
    bad = cli("render", "extend", str(first.json["id"]), "--frames", "5", "--json")
    assert bad.returncode == 2 and bad.json["field"] == "frames"
    bad = cli("render", "retake", "1", "--frames", "8", "--json")
    assert bad.returncode == 2 and bad.json["field"] == "edit"
