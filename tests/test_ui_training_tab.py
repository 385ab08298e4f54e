"""The Training tab's handlers: check, start with live loss, pause/resume, compare, and /lora_train."""

from __future__ import annotations


import gradio as gr
import pytest

from tests.test_lora_train import make_dataset


@pytest.fixture
def setup(own_studio, tmp_path):
    from engine.worker import QueueWorker
    from ui.app import build_app

    worker = QueueWorker(own_studio).start()
    app = build_app(own_studio, worker)
    handlers = {f.fn.__name__: f.fn for f in app.fns.values() if f.fn is not None}
    yield own_studio, worker, handlers, make_dataset(tmp_path / "ds", n=4)
    worker.stop()


def start_args(folder, name, steps=30):
    # dataset, name, base, trigger, rank, lr, steps, save_every, warmup, seed, w, h, f, schedule, quant, ckpt
    return [str(folder), name, "aiprod-tiny-ltx2", "sqz", 4, 1e-3, steps, 10, 2, 0, 0, 0, 0, "constant", "none", False]


def test_check_start_follow_and_compare(setup):
    studio, worker, h, folder = setup
    text, w, hh, f = h["on_train_check"](str(folder))
    assert text.startswith("**4 usable items**") and (w, hh, f) == (64, 64, 17)
    updates = list(h["on_train_start"](*start_args(folder, "tab-lora")))
    text, plot = updates[-1]
    assert "done" in text and "LoRA saved in the vault" in text and list(plot["step"])[-1] == 30
    assert studio.vault.get("tab-lora", kind="lora").derived_from.startswith("aiprod-tiny-ltx2@")
    steps = h["on_train_steps"]()
    assert steps["choices"] == [10, 20, 30] and steps["value"] == 30
    base, lora = h["on_train_compare"](10, "sqz, a red square", 1)
    from engine import media

    assert not media.compare(base, lora)["identical"]
    with pytest.raises(gr.Error, match="no checkpoint at step 15"):
        h["on_train_compare"](15, "x", 0)
    with pytest.raises(gr.Error, match="already an entry"):
        list(h["on_train_start"](*start_args(folder, "tab-lora")))


def test_pause_then_resume(setup):
    studio, worker, h, folder = setup
    run = h["on_train_start"](*start_args(folder, "paused-lora", steps=300))
    for text, plot in run:
        if len(plot) >= 5:
            assert "paused" in h["on_train_paused"]()
            break
    final = list(run)[-1][0]
    assert "cancelled" in final and "resume it to continue" in final
    done = list(h["on_train_resume"]())[-1][0]
    assert "done" in done and "paused-lora" in done


def test_bad_input_and_nothing_to_stop(setup):
    studio, worker, h, folder = setup
    assert h["on_train_paused"]() == "No training run started from this page."
    with pytest.raises(gr.Error, match="rank"):
        list(h["on_train_start"](*(start_args(folder, "x")[:4] + [0] + start_args(folder, "x")[5:])))
    with pytest.raises(gr.Error, match="not a folder"):
        h["on_train_check"]("/nope")
