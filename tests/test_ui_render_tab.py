"""The Render and History tabs' handlers, driven the way Gradio drives them (no browser)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


def form(prompt="a lighthouse in a storm", steps=8, num_frames=17, fps=24.0, seed=5.0):
    # prompt, negative_prompt, model, quantization, offload, width, height, num_frames, fps, steps, guidance, seed,
    # loras, profile, vae_tiling, fast, auto_duration, decoder, image, end_image, end_strength, keyframes,
    # keyframe_frames, upscale
    return [
        prompt,
        "",
        "aiprod-tiny-ltx2",
        "none",
        "none",
        64.0,
        64.0,
        float(num_frames),
        fps,
        float(steps),
        3.0,
        seed,
        [],
        "auto",
        "auto",
        False,
        False,
        "vae",
        None,
        None,
        1.0,
        None,
        "",
        False,
    ]


def test_generate_streams_progress_then_the_video(handlers, studio):
    updates = list(handlers["on_generate"](*form(), 1, 0, request=SimpleNamespace(session_hash="s1")))
    statuses = [u[2] for u in updates]
    assert any("step 8/8" in s or "step" in s for s in statuses[:-1])
    video, recipe, status = updates[-1]
    assert status.startswith("Done: job ") and video.endswith(".mp4")
    assert recipe["prompt"] == "a lighthouse in a storm" and recipe["job_id"] == studio.history.jobs()[0]["id"]


def test_cancel_button_stops_the_followed_render(handlers, studio):
    request = SimpleNamespace(session_hash="s2")
    updates = []
    asked = False
    for update in handlers["on_generate"](*form(steps=200), 1, 0, request=request):
        updates.append(update)
        if "step " in update[2] and not asked:  # the first progress update, whichever step it shows
            assert handlers["on_cancel"](request=request).endswith("cancelling…")
            asked = True
    assert asked and "cancelled" in updates[-1][2]
    assert studio.history.jobs()[0]["status"] == "cancelled"
    assert handlers["on_cancel"](request=request).startswith("Nothing is rendering")


def test_bad_input_is_shown_as_an_error_naming_the_field(handlers, studio):
    import gradio as gr

    [(video, recipe, status)] = list(
        handlers["on_generate"](*form(num_frames=20), 1, 0, request=SimpleNamespace(session_hash="s3"))
    )
    assert status.startswith("⚠") and "num_frames must be 8k+1" in status
    assert video == gr.update() and recipe == gr.update()  # the last clip and its recipe stay on screen
    assert studio.history.count() == 0


def test_leaving_the_page_keeps_the_job_in_the_queue(handlers, studio, worker):
    gen = handlers["on_generate"](*form(steps=60), 1, 0, request=SimpleNamespace(session_hash="s4"))
    next(gen)
    gen.close()  # what Gradio does when the client goes away
    job = studio.history.jobs()[0]["id"]
    assert worker.wait(job, timeout_s=120)["status"] == "done"


def test_add_to_queue_returns_at_once(handlers, studio, worker):
    message = handlers["on_add"](*form(prompt="queued from the tab"))
    job = studio.history.jobs()[0]
    assert message.startswith(f"Job {job['id']} added to the queue") and job["prompt"] == "queued from the tab"
    worker.wait(job["id"], timeout_s=120)


def test_choosing_a_model_or_preset_fills_the_form(handlers):
    note, width, *_, auto_duration, decoder = handlers["on_model"]("aiprod-tiny-ltx2")
    assert "Start here" in note["value"] and "`aiprod-tiny-ltx2`" in note["value"] and "Test model" in note["value"]
    assert "LTX-2.0 (read from its configs)" in note["value"] and "8 steps" in note["value"]
    # the field is emptied (an empty field renders with the model's value) and shows that value
    assert width["value"] is None and width["placeholder"] == "64"
    assert auto_duration["interactive"] is False and decoder["interactive"] is False  # 2.0 has neither
    updates = handlers["on_preset"]("9:16 portrait")
    assert updates[5]["value"] == 576 and updates[6]["value"] == 1024  # width, height


def test_dropping_a_studio_mp4_restores_its_recipe(handlers, studio, tmp_path):
    row = studio.render(studio.build_recipe({"prompt": "restore me", "seed": 99, "steps": 3}))
    updates = handlers["on_restore"](row["output_path"])
    assert updates[0]["value"] == "restore me" and updates[11]["value"] == 99 and updates[9]["value"] == 3
    import numpy as np

    from engine.render import media

    plain = media.encode_mp4(tmp_path / "plain.mp4", np.zeros((9, 64, 64, 3), np.uint8), 24)
    with pytest.warns(UserWarning, match="no AIPROD recipe"):
        handlers["on_restore"](str(plain))


def test_history_lists_shows_reuses_and_deletes(handlers, studio):
    row = studio.render(studio.build_recipe({"prompt": "kept in history", "seed": 4}))
    gallery, table, ids, video_ids = handlers["load"]("history", "", "", 1)
    assert ids == [row["id"]] and video_ids == [row["id"]] and table[0][2] == "kept in history"
    video, info, recipe, selected = handlers["pick_table"](ids, SimpleNamespace(index=[0, 2]))
    assert video == row["output_path"] and f"Job {row['id']}" in info and recipe["seed"] == 4
    reuse = handlers["do_reuse"](row["id"])
    assert reuse[0]["value"] == "kept in history"
    assert "queued with the same recipe" in handlers["do_rerender"](row["id"])
    refused = handlers["do_delete"](row["id"], False, "", "", "", 1)
    assert "confirm" in refused[5] and studio.history.get(row["id"])
    deleted = handlers["do_delete"](row["id"], True, "kept", "done", "", 1)
    assert "deleted" in deleted[5] and deleted[-1] == ""  # the details of the deleted job are cleared
    with pytest.raises(KeyError):
        studio.history.get(row["id"])
    from pathlib import Path

    assert not Path(row["output_path"]).exists()


def test_queue_panel_resume_discard_and_cancel(handlers, studio, worker, orphan):
    r = studio.stamp(studio.build_recipe({"prompt": "left running by a crash"}))
    a = orphan(studio.history, studio.history.create_job(r, status="running"))
    b = orphan(studio.history, studio.history.create_job(r, status="running"))
    studio.history.recover_interrupted()
    table = handlers["refresh"]()
    assert [row[:2] for row in table] == [[b, "interrupted"], [a, "interrupted"]]
    table, text = handlers["on_queue_discard"](b)
    assert text == f"Job {b} discarded." and studio.history.get(b)["status"] == "cancelled"
    table, text = handlers["on_queue_resume"](a)
    assert text == f"Job {a} is back in the queue."
    assert worker.wait(a, timeout_s=120)["status"] == "done"
    _, text = handlers["on_queue_cancel"](a)
    assert f"job {a} is done" in text
    _, text = handlers["on_queue_resume"](None)
    assert text.startswith("Pick a job")


@pytest.fixture
def app(studio, worker):
    from ui.app import build_app

    return build_app(studio, worker)


def test_the_page_opens_on_render_with_a_start_panel_naming_the_model(app):
    config = app.get_config_file()
    tabs = next(c for c in config["components"] if c["type"] == "tabs")
    assert tabs["props"]["selected"] == "render"
    start = next(c for c in config["components"] if c["props"].get("elem_id") == "render-start")
    assert "Start here" in start["props"]["value"] and "aiprod-tiny-ltx2" in start["props"]["value"]


def test_number_fields_leave_ranges_to_the_recipe_so_messages_name_the_field(app, handlers):

    config = app.get_config_file()
    numbers = [c["props"] for c in config["components"] if c["type"] == "number" and c["props"].get("label")]
    bounded = {n["label"] for n in numbers if n.get("minimum") is not None or n.get("maximum") is not None}
    assert not bounded & {"Width", "Height", "Frames", "FPS", "Guidance", "Job"}  # (labels only the Render tab uses)
    assert "fps" in handlers["on_add"](*form(prompt="zero fps", fps=0))
    assert "seed" in handlers["on_add"](*form(prompt="huge seed", seed=10**30))


def test_an_unlocked_seed_is_drawn_before_the_render_it_applies_to(app):
    config = app.get_config_file()
    generate = next(c["id"] for c in config["components"] if c["props"].get("elem_id") == "render-generate")
    first = next(d for d in config["dependencies"] if any(t[0] == generate for t in d["targets"]))
    assert app.fns[first["id"]].fn.__name__ == "next_seed"  # the seed is picked first, then the render runs
    then = next(d for d in config["dependencies"] if d.get("trigger_after") == first["id"])
    assert app.fns[then["id"]].fn.__name__ == "on_generate"


def test_the_queue_panel_job_field_starts_empty_and_asks_for_a_pick(app, handlers):
    config = app.get_config_file()
    job = next(c["props"] for c in config["components"] if c["props"].get("label") == "Job")
    assert not job.get("value") and job.get("placeholder") == "pick a row, or type its number"
    for empty in (None, "", "  "):
        _, message = handlers["on_queue_cancel"](empty)
        assert message == "Pick a job from the table first."
    for bad in ("1.5", "abc"):
        _, message = handlers["on_queue_cancel"](bad)
        assert "job_id" in message and "whole number" in message and repr(bad) in message


def test_progress_says_loading_then_estimating_then_the_time_left():
    from engine.jobs.events import Progress
    from ui.components.render_job import status_text

    assert status_text(Progress(3, "running", 0, 8, None, 4.0)) == "Job 3: loading the model…"
    assert status_text(Progress(3, "running", 1, 8, None, 9.0)).endswith("estimating the time left…")
    assert status_text(Progress(3, "running", 4, 8, None, 9.5, step_s=0.5)).endswith("about 2.0s left")
    # before its own steps give a basis, the machine's past jobs of that model and size do
    assert status_text(Progress(3, "running", 1, 8, None, 9.0, typical_step_s=0.25)).endswith("about 1.8s left")


def test_open_folder_from_another_machine_says_where_the_file_is(handlers, studio, monkeypatch):
    import subprocess

    opened = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: opened.append(a))
    row = studio.render(studio.build_recipe({"prompt": "made on the server", "seed": 1}))
    remote = SimpleNamespace(client=SimpleNamespace(host="192.168.1.20"), session_hash="s")
    said = handlers["do_open"](row["id"], request=remote)
    assert "another machine" in said and row["output_path"] in said and opened == []


def test_a_job_is_estimated_from_this_machines_past_jobs_of_the_same_model_and_size(studio, worker, monkeypatch):
    import time

    from aiprod_studio.jobs.history import History
    from aiprod_studio.jobs.timing import typical_step_s

    original = History.set_progress

    def slowed(self, *args):  # steps slow enough to be seen running
        original(self, *args)
        time.sleep(0.2)

    monkeypatch.setattr(History, "set_progress", slowed)
    first = worker.wait(worker.enqueue(studio.build_recipe({"prompt": "a red square", "steps": 4})))
    assert first["status"] == "done" and first["step_s"] > 0  # timed over steps 2–4, loading excluded
    other = studio.history.create_job(studio.stamp(studio.build_recipe({"prompt": "wide", "width": 96})), status="done")
    assert typical_step_s(studio.history, studio.history.get(other)) is None  # another size: "estimating"
    same = studio.history.get(worker.enqueue(studio.build_recipe({"prompt": "a blue square", "steps": 6})))
    assert typical_step_s(studio.history, same) == first["step_s"]
    events = list(worker.follow(same["id"]))
    running = [e for e in events if getattr(e, "status", "") == "running" and e.step >= 1]
    assert running and running[0].typical_step_s == first["step_s"] and running[0].eta_s is not None


def test_best_of_three_renders_three_seeds_ranked_and_shows_the_best(handlers, studio):
    from types import SimpleNamespace

    *_, (video, recipe, text) = list(handlers["on_generate"](*form(seed=40.0), 3, 0, SimpleNamespace(session_hash="t")))
    rows = sorted(studio.history.jobs(), key=lambda r: r["id"])[-3:]
    assert [r["seed"] for r in rows] == [40, 41, 42] and {r["take_of"] for r in rows} == {rows[0]["id"]}
    assert all(r["status"] == "done" and r["qa"]["semantic"] for r in rows)
    best = max(rows, key=lambda r: r["qa"]["semantic"]["prompt_mean"])
    assert video == best["output_path"] and recipe["job_id"] == best["id"]
    assert text.startswith(f"Best of 3 takes: job {best['id']} (seed {best['seed']})") and text.count("take ") >= 3
    assert "← best" in text
    *_, (_, _, said) = list(handlers["on_generate"](*form(), 9, 0, SimpleNamespace(session_hash="t")))
    assert said == "⚠ takes must be a whole number from 1 to 8, got 9"
    *_, (_, _, said) = list(handlers["on_generate"](*form(), 1.5, 0, SimpleNamespace(session_hash="t")))
    assert said == "⚠ takes must be a whole number, got 1.5"  # refused by name, not rounded to 2
    *_, (_, _, said) = list(handlers["on_generate"](*form(), 1, 7, SimpleNamespace(session_hash="t")))
    assert said == "⚠ retakes must be a whole number from 0 to 4, got 7"


def test_history_shows_quality_and_filters_and_sorts_by_it(handlers, studio):
    a = studio.render(studio.build_recipe({"prompt": "a red square", "seed": 1}))
    b = studio.render(studio.build_recipe({"prompt": "a red square", "seed": 2}))
    bad = studio.history.create_job(studio.stamp(studio.build_recipe({"prompt": "a bad clip"})), status="done")
    studio.history.set_qa(bad, {**a["qa"], "ok": False, "errors": 1, "findings": [{"code": "black_frames"}]})
    _, table, ids, _ = handlers["load"]("", "", "", 1)
    quality = dict(zip(ids, [r[7] for r in table], strict=True))
    assert quality[bad] == "1E 0W" + quality[bad][5:] and quality[a["id"]].startswith("ok ")
    assert handlers["load"]("", "", "", 1, "with QA findings")[2] == [bad]
    assert set(handlers["load"]("", "", "", 1, "clean clips only")[2]) == {a["id"], b["id"]}
    by_score = handlers["load"]("", "", "", 1, "best prompt match first")[2]
    scores = {r["id"]: r["qa"]["semantic"]["prompt_mean"] for r in (a, b)}
    assert [i for i in by_score if i in scores] == sorted(scores, key=scores.get, reverse=True)
    _, info, _, _ = handlers["pick_table"](ids, SimpleNamespace(index=[ids.index(a["id"]), 0]))
    assert "**Quality**" in info and "technical check: ok" in info and "prompt match" in info


def test_history_extend_and_upscale_queue_a_job_from_the_clip(handlers, studio, worker):
    row = studio.render(studio.build_recipe({"prompt": "a lantern", "width": 64, "height": 64, "num_frames": 9}))
    assert handlers["do_extend"](None, 8) == "Select a render first."
    assert "frames must be a multiple of 8" in handlers["do_extend"](row["id"], 12)
    said = handlers["do_extend"](row["id"], 8)
    assert "continued by 8 frames" in said
    new_id = int(said.split()[1])
    done = worker.wait(new_id, timeout_s=120)
    assert done["status"] == "done" and done["parent_id"] == row["id"]
    from ui.tabs.history import details

    assert f"Extended from job {row['id']} by 8 frames" in details(studio.history.get(new_id))
    assert "needs a latent upsampler" in handlers["do_upscale"](row["id"])  # (the shared tiny vault has none)


def test_history_retake_queues_a_range_of_the_clip(handlers, studio, worker):
    from ui.tabs.history import details

    row = studio.render(
        studio.build_recipe({"prompt": "a lantern", "width": 64, "height": 64, "num_frames": 25, "fps": 8})
    )
    assert handlers["do_retake"](None, 1, 2, "") == "Select a render first."
    assert "end must be after start" in handlers["do_retake"](row["id"], 2, 1, "")
    said = handlers["do_retake"](row["id"], 1.2, 1.9, "  the lantern flickers ")
    assert "frames 8…15 (1–2 s) rendered again" in said
    done = worker.wait(int(said.split()[1]), timeout_s=120)
    assert done["status"] == "done" and done["parent_id"] == row["id"]
    assert done["recipe"]["prompt"] == "the lantern flickers"
    assert f"Retake of job {row['id']}: frames 8…15 (1–2 s) rendered again" in details(done)
