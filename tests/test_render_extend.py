"""Extending a finished clip: exactly N new frames after the parent's own (kept bit for bit), the
sound continued without a jump, the parent named in the row and the recipe, re-rendered to the
same bytes, and refusals by field."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from aiprod_studio.errors import BadInput
from engine.render import media
from engine.render.edits.extend import extend_recipe
from engine.render.edits.splice import CROSSFADE_S, joined_audio

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


def test_extending_again_and_again_keeps_the_sound_it_had(studio):
    """The parent's own sound packets are kept up to the join: nothing compounds over extensions,
    and the sound never drifts from the picture."""
    rows = [studio.render(studio.build_recipe({**SIZE, "num_frames": 9, "seed": 5}))]
    for frames in (8, 16, 8):
        rows.append(studio.render(extend_recipe(studio, rows[-1]["id"], frames)))
    first, _ = media.read_audio(rows[0]["output_path"])
    for older, newer in zip(rows, rows[1:], strict=False):
        before, rate = media.read_audio(older["output_path"])
        after, _ = media.read_audio(newer["output_path"])
        kept = len(before[0]) - int(0.02 * rate) - 3 * 1024  # (the last frames before the crossfade are re-encoded)
        assert np.array_equal(after[:, :kept], before[:, :kept])
        assert abs(after.shape[1] - before.shape[1] - (newer["recipe"]["edit"]["frames"] / 24) * rate) < 1024
    last, _ = media.read_audio(rows[-1]["output_path"])
    assert np.array_equal(last[:, :1024], first[:, :1024])
    assert not [f for r in rows for f in r["qa"]["findings"] if f["severity"] == "error"]


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
    path = parent["output_path"]
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])  # the clip is cut short on disk
    with pytest.raises(BadInput) as err:
        extend_recipe(studio, parent["id"], 8)
    assert (
        err.value.field == "job_id"
        and "not a readable video" in str(err.value)
        or "cannot be decoded" in str(err.value)
    )
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
    bad = cli("render", "crop", "1", "--frames", "8", "--json")
    assert bad.returncode == 2 and bad.json["field"] == "edit"
    bad = cli("render", "--prompt", "waves", "--from", "1", "--json")  # (a retake's flag, without a retake)
    assert bad.returncode == 2 and bad.json["field"] == "start"


def test_an_extension_is_not_upscaled(studio):
    from engine.render.inputs import upscaled_recipe

    parent = studio.render(studio.build_recipe({**SIZE, "num_frames": 9}))
    row = studio.render(extend_recipe(studio, parent["id"], 8))
    with pytest.raises(BadInput, match="is an extension of another clip") as err:
        upscaled_recipe(studio, row["id"])
    assert err.value.field == "job_id"
