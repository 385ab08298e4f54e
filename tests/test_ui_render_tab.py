"""The Render tab's handlers, driven the way Gradio drives them (no browser)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest


@pytest.fixture
def handlers(studio):
    from ui.app import build_app

    app = build_app(studio)
    fns = {f.fn.__name__: f.fn for f in app.fns.values() if f.fn is not None}
    return fns


def form(prompt="a lighthouse in a storm", steps=8, num_frames=17):
    # prompt, negative_prompt, model, quantization, width, height, num_frames, fps, steps, guidance, seed
    return [prompt, "", "aiprod-tiny-ltx2", "none", 64.0, 64.0, float(num_frames), 24.0, float(steps), 3.0, 5.0]


def test_generate_streams_progress_then_the_video(handlers, studio):
    request = SimpleNamespace(session_hash="s1")
    updates = list(handlers["on_generate"](*form(), request=request, progress=lambda *a, **k: None))
    statuses = [u[2] for u in updates]
    assert any(s.startswith("Rendering… step 8/8") for s in statuses)
    video, recipe, status = updates[-1]
    assert status.startswith("Done: job ") and video.endswith(".mp4")
    assert recipe["prompt"] == "a lighthouse in a storm" and recipe["job_id"] == studio.history.jobs()[0]["id"]


def test_cancel_button_stops_the_running_render(handlers, studio):
    request = SimpleNamespace(session_hash="s2")
    updates = []
    gen = handlers["on_generate"](*form(steps=200), request=request, progress=lambda *a, **k: None)
    for update in gen:
        updates.append(update)
        if update[2].startswith("Rendering… step 2/"):
            assert handlers["on_cancel"](request=request) == "Cancelling…"
    assert updates[-1][2].startswith("Cancelled")
    assert studio.history.jobs()[0]["status"] == "cancelled"
    assert handlers["on_cancel"](request=request) == "Nothing is rendering."


def test_bad_input_is_shown_as_an_error_naming_the_field(handlers, studio):
    import gradio as gr

    with pytest.raises(gr.Error, match="num_frames must be 8k\\+1"):
        list(handlers["on_generate"](*form(num_frames=20), request=SimpleNamespace(session_hash="s3"),
                                     progress=lambda *a, **k: None))
    assert studio.history.count() == 0


def test_leaving_the_page_cancels_the_render(handlers, studio):
    gen = handlers["on_generate"](*form(steps=200), request=SimpleNamespace(session_hash="s4"),
                                  progress=lambda *a, **k: None)
    for update in gen:
        if update[2].startswith("Rendering… step 2/"):
            break
    gen.close()  # what Gradio does when the client goes away
    for _ in range(100):
        if studio.history.jobs()[0]["status"] != "running":
            break
        threading.Event().wait(0.1)
    assert studio.history.jobs()[0]["status"] == "cancelled"


def test_choosing_a_model_fills_its_defaults(handlers):
    note, width, *_ = handlers["on_model"]("aiprod-tiny-ltx2")
    assert note["visible"] is True and "Test model" in note["value"]
    assert width["value"] == 64
