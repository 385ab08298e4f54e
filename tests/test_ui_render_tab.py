"""The Render and History tabs' handlers, driven the way Gradio drives them (no browser)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest


def form(prompt="a lighthouse in a storm", steps=8, num_frames=17):
    # prompt, negative_prompt, model, quantization, offload, width, height, num_frames, fps, steps, guidance, seed,
    # loras
    return [
        prompt,
        "",
        "aiprod-tiny-ltx2",
        "none",
        "none",
        64.0,
        64.0,
        float(num_frames),
        24.0,
        float(steps),
        3.0,
        5.0,
        [],
    ]


def test_generate_streams_progress_then_the_video(handlers, studio):
    updates = list(handlers["on_generate"](*form(), request=SimpleNamespace(session_hash="s1")))
    statuses = [u[2] for u in updates]
    assert any("step 8/8" in s or "step" in s for s in statuses[:-1])
    video, recipe, status = updates[-1]
    assert status.startswith("Done: job ") and video.endswith(".mp4")
    assert recipe["prompt"] == "a lighthouse in a storm" and recipe["job_id"] == studio.history.jobs()[0]["id"]


def test_cancel_button_stops_the_followed_render(handlers, studio):
    request = SimpleNamespace(session_hash="s2")
    updates = []
    asked = False
    for update in handlers["on_generate"](*form(steps=200), request=request):
        updates.append(update)
        if "step " in update[2] and not asked:  # the first progress update, whichever step it shows
            assert handlers["on_cancel"](request=request).endswith("cancelling…")
            asked = True
    assert asked and "cancelled" in updates[-1][2]
    assert studio.history.jobs()[0]["status"] == "cancelled"
    assert handlers["on_cancel"](request=request).startswith("Nothing is rendering")


def test_bad_input_is_shown_as_an_error_naming_the_field(handlers, studio):
    import gradio as gr

    with pytest.raises(gr.Error, match="num_frames must be 8k\\+1"):
        list(handlers["on_generate"](*form(num_frames=20), request=SimpleNamespace(session_hash="s3")))
    assert studio.history.count() == 0


def test_leaving_the_page_keeps_the_job_in_the_queue(handlers, studio, worker):
    gen = handlers["on_generate"](*form(steps=60), request=SimpleNamespace(session_hash="s4"))
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
    note, width, *_ = handlers["on_model"]("aiprod-tiny-ltx2")
    assert note["visible"] is True and "Test model" in note["value"]
    assert width["value"] == 64
    updates = handlers["on_preset"]("9:16 portrait")
    assert updates[5]["value"] == 576 and updates[6]["value"] == 1024  # width, height


def test_dropping_a_studio_mp4_restores_its_recipe(handlers, studio, tmp_path):
    row = studio.render(studio.build_recipe({"prompt": "restore me", "seed": 99, "steps": 3}))
    updates = handlers["on_restore"](row["output_path"])
    assert updates[0]["value"] == "restore me" and updates[11]["value"] == 99 and updates[9]["value"] == 3
    import gradio as gr
    import numpy as np

    from engine.render import media

    plain = media.encode_mp4(tmp_path / "plain.mp4", np.zeros((9, 64, 64, 3), np.uint8), 24)
    with pytest.raises(gr.Error, match="no AIPROD recipe"):
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
    assert "deleted" in deleted[5]
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
