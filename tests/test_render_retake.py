"""Retaking a time range of a finished clip: the range (widened to keyframes) rendered again, every
other frame kept bit for bit, the sound joined without a jump, the parent named, re-rendered to the
same bytes, and refusals by field."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from aiprod_studio.errors import BadInput
from engine.render import media
from engine.render.edits.parent import keyframes
from engine.render.edits.retake import retake_range, retake_recipe

# 49 frames at 8 fps: a keyframe a second, at frames 0, 8, 16, … 48
SIZE = {"prompt": "a lighthouse in the fog", "width": 64, "height": 64, "num_frames": 49, "fps": 8, "steps": 3}


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def parent(studio):
    row = studio.render(studio.build_recipe({**SIZE, "seed": 4}))
    assert row["status"] == "done", row["error"]
    return row


def test_new_clips_have_a_keyframe_a_second(studio, parent):
    assert parent["recipe"]["keyint"] == 8
    assert keyframes(parent["output_path"]) == [0, 8, 16, 24, 32, 40, 48]


def test_a_retake_renders_the_range_again_and_keeps_every_other_frame(studio, parent):
    recipe = retake_recipe(studio, parent["id"], 2.2, 2.9, prompt="a ship passes the lighthouse", seed=11)
    edit = recipe.edit
    assert (edit.kind, edit.parent, edit.parent_job, edit.start, edit.frames) == (
        "retake",
        sha(parent["output_path"]),
        parent["id"],
        16,  # 2.2 s lies in the second from frame 16 …
        8,  # … and 2.9 s before frame 24: one second renders again
    )
    assert edit.context > 0 and edit.after > 0 and recipe.num_frames == 49 and recipe.seed == 11
    row = studio.render(recipe)
    assert row["status"] == "done", row["error"]
    assert row["parent_id"] == parent["id"]
    before, after = media.read_frames(parent["output_path"]), media.read_frames(row["output_path"])
    assert after.shape == before.shape == (49, 64, 64, 3)
    assert np.array_equal(after[:16], before[:16]) and np.array_equal(after[24:], before[24:])
    assert all(not np.array_equal(after[i], before[i]) for i in range(16, 24))
    assert keyframes(row["output_path"]) == keyframes(parent["output_path"])  # (so it can be retaken again)
    sound, rate = media.read_audio(row["output_path"])
    parent_sound, _ = media.read_audio(parent["output_path"])
    assert abs(sound.shape[1] - parent_sound.shape[1]) < 1024
    kept = 2 * rate - int(0.02 * rate) - 3 * 1024  # the parent's own sound packets up to the first join
    assert np.array_equal(sound[:, :kept], parent_sound[:, :kept])
    assert not [f for f in row["qa"]["findings"] if f["severity"] == "error"]
    assert media.read_metadata_json(row["output_path"])["edit"]["start"] == 16


def test_a_retake_at_either_end_holds_to_the_side_there_is(studio, parent):
    frames = media.read_frames(parent["output_path"])
    first = studio.render(retake_recipe(studio, parent["id"], 0, 0.5, seed=1))
    assert (first["recipe"]["edit"]["start"], first["recipe"]["edit"]["frames"]) == (0, 8)
    assert first["recipe"]["edit"]["context"] == 0
    made = media.read_frames(first["output_path"])
    assert np.array_equal(made[8:], frames[8:]) and not np.array_equal(made[0], frames[0])
    last = studio.render(retake_recipe(studio, parent["id"], 5.5, 6.125, seed=1))
    assert (last["recipe"]["edit"]["start"], last["recipe"]["edit"]["frames"]) == (40, 9)
    assert last["recipe"]["edit"]["after"] == 0
    made = media.read_frames(last["output_path"])
    assert np.array_equal(made[:40], frames[:40]) and not np.array_equal(made[48], frames[48])


def test_a_retake_rerenders_to_the_same_bytes(studio, parent):
    from engine.render.reproduce import reproduce

    row = studio.render(retake_recipe(studio, parent["id"], 3, 4, seed=2))
    report = reproduce(studio, row["id"])
    assert report["passed"] and sha(report["reproduction"]) == sha(row["output_path"])


def test_a_range_widens_to_the_keyframes_around_it():
    keys = [0, 8, 16, 24, 32, 40, 48]
    assert retake_range(keys, 49, 8, 1.0, 2.0) == (8, 16)  # on keyframes: as asked
    assert retake_range(keys, 49, 8, 1.1, 2.01) == (8, 24)
    assert retake_range(keys, 49, 8, "4.5", 6.125) == (32, 49)  # (the end of the clip is a cut too)
    assert retake_range(keys, 49, 8, 2, 2.0000001) == (16, 24)  # (at least the frame the start falls in)
    assert retake_range(keys, 49, 8, 1e-300, 1e-299) == (0, 8)


@pytest.mark.parametrize(
    ("start", "end", "field", "words"),
    [
        (7, 8, "start", "before the clip's end"),
        (2, 2, "end", "after start"),
        (2, 9, "end", "at most 6.125 s"),
        ("soon", 3, "start", "time in seconds"),
        (-1, 3, "start", "from 0"),
        (1, float("nan"), "end", "time in seconds"),
        (10**400, 3, "start", "time in seconds"),  # (too large for a float)
        (1, 10**400, "end", "time in seconds"),
        (True, 3, "start", "time in seconds"),
        (0.5, 6.1, "start", "every frame again"),
    ],
)
def test_a_retake_refuses_a_bad_range_by_field(start, end, field, words):
    with pytest.raises(BadInput, match=words) as err:
        retake_range([0, 8, 16, 24, 32, 40, 48], 49, 8, start, end)
    assert err.value.field == field


def test_a_clip_made_before_keyframes_a_second_is_refused_with_the_reason(studio):
    old = studio.render(studio.build_recipe({**SIZE, "keyint": 0}))  # the encoder's own: one keyframe
    assert keyframes(old["output_path"]) == [0]
    with pytest.raises(BadInput, match="cannot be retaken in part") as err:
        retake_recipe(studio, old["id"], 2, 3)
    assert err.value.field == "job_id"


def test_a_retake_refuses_a_missing_job_and_a_bad_seed(studio, parent):
    with pytest.raises(BadInput) as err:
        retake_recipe(studio, 999, 1, 2)
    assert err.value.field == "job_id"
    with pytest.raises(BadInput) as err:
        retake_recipe(studio, parent["id"], 1, 2, seed=-3)
    assert err.value.field == "seed"


def test_cli_render_retake(cli, studio, parent):
    kept_sha = sha(parent["output_path"])
    out = cli("--json", "render", "retake", str(parent["id"]), "--from", "1", "--to", "2", "--seed", "5")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["parent_id"] == parent["id"] and result["status"] == "done"
    assert result["recipe"]["edit"] == {**result["recipe"]["edit"], "kind": "retake", "start": 8, "frames": 8}
    made = media.read_frames(result["output"])
    assert np.array_equal(made[16:], media.read_frames(parent["output_path"])[16:])
    bad = cli("render", "retake", str(parent["id"]), "--from", "3", "--to", "1")
    assert bad.returncode == 2 and "end must be after start" in bad.stderr
    missing = cli("render", "retake", str(parent["id"]), "--to", "1")
    assert missing.returncode == 2 and "--from" in missing.stderr
    for flag in (("--width", "128"), ("--steps", "9"), ("--frames", "8"), ("--takes", "2")):
        ignored = cli("--json", "render", "retake", str(parent["id"]), "--from", "1", "--to", "2", *flag)
        assert ignored.returncode == 2 and ignored.json["field"] == flag[0][2:], flag
    over = cli(
        "--json", "render", "retake", str(parent["id"]), "--from", "1", "--to", "2", "--out", parent["output_path"]
    )
    assert over.returncode == 2 and over.json["field"] == "out"
    assert sha(parent["output_path"]) == kept_sha  # (the parent was not written over)


def test_a_hand_written_edit_its_parent_cannot_take_is_refused_before_it_renders(studio, parent):
    from aiprod_studio.recipe import make_recipe

    good = retake_recipe(studio, parent["id"], 2, 3, seed=1).model_dump()
    cases = [
        ({**good, "num_frames": 57, "edit": {**good["edit"], "start": 40, "frames": 9, "after": 0}}, "has 49 frames"),
        ({**good, "edit": {**good["edit"], "start": 20, "context": 17}}, "not a keyframe"),
    ]
    for data, words in cases:
        with pytest.raises(BadInput, match=words) as err:
            studio.render(make_recipe(data))
        assert err.value.field == "edit"
        row = studio.history.jobs(limit=1)[0]
        assert row["status"] == "failed" and not row["output_path"]
