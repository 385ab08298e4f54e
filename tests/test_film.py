"""Storyboards through the engine: plans, re-render only what changed, the film, export, the store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aiprod_studio.errors import BadInput
from aiprod_studio.recipe import make_recipe
from aiprod_studio.storyboard.board import Shot, Storyboard, shot_frames
from aiprod_studio.storyboard.db import StoryboardStore
from aiprod_studio.storyboard.scenarist import split_script
from engine.film import assembly, edl
from engine.film import shots as sb
from engine.render import media

SCRIPT = (
    "Style: film grain\nShot 1: a red car at night (0.5s)\nShot 2: a blue boat at dawn (0.75s)\n"
    "Shot 3: a green forest in the wind (1s)"
)


def job_count(studio) -> int:
    return studio.history.count()


def test_film_has_every_shot_its_sound_and_chapters(studio, tmp_path):
    board = split_script(SCRIPT, fps=24, base_seed=7)
    plans = sb.plan(studio, board)
    assert [p.frames for p in plans] == [12, 18, 24] and [p.recipe.num_frames for p in plans] == [17, 25, 25]
    assert not any(p.current for p in plans)
    sb.render_now(studio, plans)
    film = assembly.assemble(board, plans, tmp_path / "film.mp4")
    info = media.probe(tmp_path / "film.mp4")
    assert info["video"]["frames"] == film["frames"] == 12 + 18 + 24
    assert abs(info["audio"]["duration_s"] - 54 / 24) <= 1 / 24
    chapters = media.read_chapters(tmp_path / "film.mp4")
    assert [(c["start_s"], c["end_s"]) for c in chapters] == [(0.0, 0.5), (0.5, 1.25), (1.25, 2.25)]
    assert chapters[1]["title"].startswith("Shot 2: a blue boat at dawn")
    meta = json.loads(info["metadata"]["description"])
    assert meta["shot_jobs"] == [p.job["id"] for p in plans] and meta["shots"][0]["seed"] == 7
    # each shot's frames are its clip's first frames, trimmed
    frames = media.read_frames(tmp_path / "film.mp4")
    clip2 = media.read_frames(plans[1].job["output_path"])
    assert media.psnr(frames[12:30], clip2[:18]) > 30


def test_editing_one_shot_renders_only_that_shot(studio, tmp_path):
    board = split_script(SCRIPT, fps=24)
    plans = sb.plan(studio, board)
    sb.render_now(studio, plans)
    first_ids = [p.job["id"] for p in plans]
    before = job_count(studio)
    # unchanged: nothing to render
    again = sb.plan(studio, board)
    assert all(p.current for p in again) and [p.job["id"] for p in again] == first_ids
    # a longer shot 1 that still fits its 17-frame clip reuses it too
    board.shots[0].duration_s = 0.6
    assert all(p.current for p in sb.plan(studio, board))
    # edit shot 2's prompt: only shot 2 renders
    board.shots[1] = board.shots[1].model_copy(update={"prompt": "a blue boat in a storm. Film grain."})
    plans = sb.plan(studio, board)
    assert [p.current for p in plans] == [True, False, True]
    sb.render_now(studio, plans)
    assert job_count(studio) == before + 1
    new = studio.history.jobs(limit=1)[0]
    assert new["prompt"] == "a blue boat in a storm. Film grain." and new["status"] == "done"
    assert [p.job["id"] for p in plans] == [first_ids[0], new["id"], first_ids[2]]
    film = assembly.assemble(board, plans, tmp_path / "film.mp4")
    assert film["frames"] == sum(shot_frames(s.duration_s, 24) for s in board.shots) == 14 + 18 + 24


def test_queue_path_enqueues_only_missing_shots(studio):
    from engine.runners import make_worker

    worker = make_worker(studio).start()
    try:
        board = split_script("Shot 1: a lamp (0.5s)\nShot 2: a door (0.5s)", fps=24)
        sb.render_now(studio, sb.plan(studio, board)[:1])  # shot 1 rendered before
        plans = sb.plan(studio, board)
        ids = sb.enqueue(worker, plans)
        assert ids[0] == plans[0].job["id"] and plans[1].job["status"] == "queued"
        assert sb.enqueue(worker, sb.plan(studio, board)) == ids  # a queued shot is not queued twice
        assert worker.wait(ids[1], timeout_s=120)["status"] == "done"
        assert all(p.current for p in sb.plan(studio, board))
    finally:
        worker.stop()


def tone_clip(path: Path, freq: float, phase: float, frames: int = 25, fps: int = 24, rate: int = 16000) -> Path:
    t = np.arange(round(frames / fps * rate)) / rate
    audio = np.stack([0.5 * np.sin(2 * np.pi * freq * t + phase)] * 2).astype(np.float32)
    video = np.full((frames, 64, 64, 3), int(freq) % 255, np.uint8)
    return media.encode_mp4(path, video, fps, audio, rate)


def fake_plan(index: int, path: Path, frames: int) -> sb.ShotPlan:
    recipe = make_recipe({"prompt": f"shot {index}", "model": "x", "seed": index, "num_frames": 25})
    return sb.ShotPlan(index, recipe, frames, {"id": 100 + index, "status": "done", "output_path": str(path)})


@pytest.mark.parametrize("crossfade", [0.0, 0.25])
def test_audio_joins_are_continuous_without_clicks(tmp_path, crossfade):
    clips = [tone_clip(tmp_path / f"c{i}.mp4", f, ph) for i, (f, ph) in enumerate([(440, 0.0), (660, 2.0), (550, 4.0)])]
    board = Storyboard(
        fps=24, crossfade_s=crossfade, shots=[Shot(prompt=f"shot {i}", duration_s=0.75, seed=i) for i in range(3)]
    )
    plans = [fake_plan(i, c, 18) for i, c in enumerate(clips)]
    film = assembly.assemble(board, plans, tmp_path / "film.mp4")
    fade = round(crossfade * 24)
    assert film["frames"] == 3 * 18 - 2 * fade
    audio, rate = media.read_audio(tmp_path / "film.mp4")
    assert abs(audio.shape[1] / rate - film["frames"] / 24) <= 1 / 24
    left = audio[0]
    step = np.abs(np.diff(left))
    typical = np.percentile(step[rate // 10 : -rate // 10], 99.5)
    for join_frame in (18 - fade, 36 - 2 * fade):
        j = round(join_frame / 24 * rate)
        window = slice(j - 200, j + 200)
        assert step[window].max() <= 1.5 * typical, "click at a join"
        assert np.sqrt(np.mean(left[window] ** 2)) > 0.1, "silence at a join"


def test_assemble_refuses_unrendered_shots_and_mixed_sizes(tmp_path):
    board = Storyboard(
        fps=24, shots=[Shot(prompt="a", duration_s=0.5, seed=0), Shot(prompt="b", duration_s=0.5, seed=1)]
    )
    clip = tone_clip(tmp_path / "a.mp4", 440, 0)
    not_done = fake_plan(1, clip, 12)
    not_done.job = None
    with pytest.raises(BadInput, match=r"shots \[2\] have no finished render"):
        assembly.assemble(board, [fake_plan(0, clip, 12), not_done], tmp_path / "f.mp4")
    big = media.encode_mp4(tmp_path / "big.mp4", np.zeros((25, 96, 96, 3), np.uint8), 24)
    with pytest.raises(BadInput, match="same size"):
        assembly.assemble(board, [fake_plan(0, clip, 12), fake_plan(1, big, 12)], tmp_path / "f.mp4")
    assert not (tmp_path / "f.mp4").exists()


def test_export_writes_film_clips_json_and_edl(studio, tmp_path):
    board = split_script("Title: Two shots\nShot 1: a lamp (0.5s)\nShot 2: a door (1s)", fps=24)
    plans = sb.plan(studio, board)
    sb.render_now(studio, plans)
    film = tmp_path / "film.mp4"
    assembly.assemble(board, plans, film)
    dest = edl.export(board, plans, film, tmp_path / "export")
    assert dest.name == "two-shots"
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "clips/shot-01.mp4",
        "clips/shot-02.mp4",
        "film.edl",
        "film.mp4",
        "storyboard.json",
    ]
    edl_text = (dest / "film.edl").read_text()
    assert "TITLE: Two shots" in edl_text
    assert "002  SHOT02   V     C        00:00:00:00 00:00:01:00 00:00:00:12 00:00:01:12" in edl_text
    data = json.loads((dest / "storyboard.json").read_text())
    assert [s["frames"] for s in data["shots_rendered"]] == [12, 24] and data["title"] == "Two shots"
    with pytest.raises(BadInput, match="already exists"):
        edl.export(board, plans, film, tmp_path / "export")


def test_store_saves_loads_and_lists(studio):
    store = StoryboardStore(studio.history)
    board = store.save(split_script(SCRIPT, fps=25, target_s=6, base_seed=3))
    assert board.id is not None
    loaded = store.load(board.id)
    assert loaded == board and loaded.fps == 25 and loaded.style == "film grain"
    edited = loaded.model_copy(update={"shots": [loaded.shots[2], loaded.shots[0]], "title": "Edited"})
    store.save(edited)
    assert [s.seed for s in store.load(board.id).shots] == [5, 3]
    assert [(b["id"], b["title"], b["shots"]) for b in store.list()] == [(board.id, "Edited", 2)]
    store.delete(board.id)
    with pytest.raises(BadInput) as info:
        store.load(board.id)
    assert info.value.field == "id"


def test_store_refuses_an_id_it_does_not_hold(studio):
    store = StoryboardStore(studio.history)
    board = split_script(SCRIPT, fps=24)
    for bad_id in (999999, 2**70, -1, 0):
        ghost = board.model_copy(update={"id": bad_id})  # (model_copy skips validation, like an edit in place)
        calls = (lambda g=ghost: store.save(g), lambda i=bad_id: store.check_exists(i), lambda i=bad_id: store.load(i))
        for call in calls:
            with pytest.raises(BadInput) as info:
                call()
            assert info.value.field == "id", (bad_id, str(info.value))
    with pytest.raises(BadInput) as info:
        store.save(board.model_copy(update={"id": 999999}))
    assert str(info.value) == ("storyboard id 999999 does not exist; remove the id to save it as a new storyboard")
    assert store.list() == []  # nothing half-written
    saved = store.save(board)
    store.check_exists(saved.id)
    assert store.save(saved.model_copy(update={"title": "Again"})).id == saved.id
    assert [b["title"] for b in store.list()] == ["Again"]
