"""The Training tab's handlers: check, start with live loss, pause/resume, compare, and /lora_train."""

from __future__ import annotations

import gradio as gr
import pytest
from training_data import make_dataset


@pytest.fixture
def setup(own_studio, tmp_path):
    from engine.runners import make_worker
    from ui.app import build_app

    worker = make_worker(own_studio).start()
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
    run = updates[0][2]  # the page's Run box gets the run's id once, then is left to the user
    assert studio.history.get(run)["kind"] == "train" and all(u[2] == gr.update() for u in updates[1:])
    text, plot, _ = updates[-1]
    assert "done" in text and "LoRA saved in the vault" in text and list(plot["step"])[-1] == 30
    assert studio.vault.get("tab-lora", kind="lora").derived_from.startswith("aiprod-tiny-ltx2@")
    steps = h["on_train_steps"](run)
    assert steps["choices"] == [10, 20, 30] and steps["value"] == 30
    base, lora = h["on_train_compare"](run, 10, "sqz, a red square", 1)
    from engine.render import media

    assert not media.compare(base, lora)["identical"]
    with pytest.warns(UserWarning, match="no checkpoint at step 15"):
        h["on_train_compare"](run, 15, "x", 0)
    with pytest.warns(UserWarning, match="already an entry"):
        list(h["on_train_start"](*start_args(folder, "tab-lora")))


def test_take_over_by_run_id_pause_then_resume(setup):
    studio, worker, h, folder = setup
    page = h["on_train_start"](*start_args(folder, "paused-lora", steps=300))
    _, _, run = next(page)
    page.close()  # the page is reloaded: its Run box is empty, the run goes on
    taken = h["on_train_resume"](run)  # the user types the run's id: Resume follows it without queueing it again
    for _text, plot, _ in taken:
        if len(plot) >= 5:
            assert "pausing" in h["on_train_paused"](run)
            break
    final = list(taken)[-1][0]
    saved = h["on_train_steps"](run)["value"]  # the step the checkpoint holds, where Resume continues
    assert final.startswith(f"Run {run}: paused at step {saved} of 300") and "cancelled" not in final
    assert "left" not in final and "s/step" not in final  # no stale time estimate
    from aiprod_studio.jobs.history import History
    from ui.components.training_run import run_text

    reopened = History(studio.history.path).get(run)  # what a restarted studio reads: the row says paused
    assert reopened["status"] == "cancelled" and reopened["paused"]
    assert run_text(run, reopened, saved).startswith(f"Run {run}: paused at step {saved}")
    assert studio.history.count() == 1
    done = list(h["on_train_resume"](run))[-1][0]
    assert "done" in done and "paused-lora" in done


def test_bad_input_and_nothing_to_stop(setup):
    studio, worker, h, folder = setup
    assert h["on_train_paused"](None) == "No training run started from this page."
    with pytest.warns(UserWarning, match="there is no run 99"):
        h["on_train_cancelled"](99)
    render = studio.history.create_job(studio.stamp(studio.build_recipe({"prompt": "a render"})), status="done")
    with pytest.warns(UserWarning, match=f"job {render} is a render, not a training run"):
        h["on_train_paused"](render)
    with pytest.warns(UserWarning, match="resume: no training run"):
        list(h["on_train_resume"](None))
    with pytest.warns(UserWarning, match="rank"):
        list(h["on_train_start"](*(start_args(folder, "x")[:4] + [0] + start_args(folder, "x")[5:])))
    with pytest.warns(UserWarning, match="not a folder"):
        h["on_train_check"]("/nope")


def test_the_check_sizes_the_bucket_for_the_devices_memory(setup, tmp_path, monkeypatch):
    studio, worker, h, folder = setup
    long_clips = make_dataset(tmp_path / "long", n=2, frames=33)
    text, *bucket = h["on_train_check"](str(long_clips))  # this CPU: the small bucket, longer clips kept
    assert bucket == [64, 64, 17] and "⚠" not in text
    import ui.tabs.training as training_tab

    monkeypatch.setattr(training_tab, "memory_gb", lambda plan: 12.0)  # a 12 GB GPU: longer clips fit
    text, *bucket = h["on_train_check"](str(long_clips))
    assert bucket == [64, 64, 33] and text.startswith("**2 usable items**; proposed bucket 64×64, 33 frames.")
    (folder / "clip00.txt").unlink()
    text, *_ = h["on_train_check"](str(folder))
    assert text.startswith("**3 usable items**") and "- ⚠ clip00.mp4: missing caption (add clip00.txt)" in text
    bare = tmp_path / "bare"
    bare.mkdir()
    (folder / "clip00.mp4").rename(bare / "clip00.mp4")
    text, *bucket = h["on_train_check"](str(bare))  # every finding in the tab, not only in a toast
    assert text.startswith("**No usable items**") and "- ⚠ clip00.mp4: missing caption (add clip00.txt)" in text
    assert bucket == [gr.update()] * 3


def test_the_loss_plot_is_numeric_from_the_first_update():
    """Before the first step the plot gets an empty frame: its axes must already be numbers."""
    import gradio as gr

    from ui.components.training_run import loss_frame

    plot = gr.LinePlot(x="step", y="loss", color="series")
    numbers = {"step": "quantitative", "loss": "quantitative", "series": "nominal"}
    assert plot.postprocess(loss_frame([])).datatypes == numbers
    falling = [{"step": s, "loss": 1.0 / s, "lr": 1e-4, "seconds": 0.1} for s in range(1, 13)]
    frame = loss_frame(falling)
    assert plot.postprocess(frame).datatypes == numbers
    loss, average = (frame[frame["series"] == name] for name in ("loss", "average of 10"))
    assert list(loss["step"]) == [float(s) for s in range(1, 13)] and list(loss["loss"]) == [
        1.0 / s for s in range(1, 13)
    ]
    assert average["loss"].iloc[1] == pytest.approx((1.0 + 0.5) / 2)  # the mean of the steps so far, then of 10
    assert average["loss"].iloc[-1] == pytest.approx(sum(1.0 / s for s in range(3, 13)) / 10)
    assert loss["loss"].is_monotonic_decreasing and average["loss"].is_monotonic_decreasing


def test_a_reloaded_page_takes_up_the_run_and_history_lists_it(setup):
    studio, worker, h, folder = setup
    assert next(h["on_train_attach"]())[0] == ""  # no training run yet: nothing to show
    page = h["on_train_start"](*start_args(folder, "reloaded-lora", steps=200))
    _, _, run = next(page)
    page.close()  # the page is reloaded mid-run
    attached = h["on_train_attach"]()
    text, plot, box = next(attached)
    assert box == run and text.startswith(f"Run {run}: ")
    while not len(plot):
        text, plot, _ = next(attached)
    assert "step" in text and set(plot["series"]) == {"loss", "average of 10"}
    worker.cancel(run)
    list(attached)
    text, plot, box = list(h["on_train_attach"]())[-1]  # after the run: the most recent one is shown
    assert box == run and text.startswith(f"Run {run}: cancelled") and len(plot) > 0
    # History lists the training run with its kind; a render's actions refuse it
    render = studio.history.create_job(studio.stamp(studio.build_recipe({"prompt": "a render"})), status="done")
    _, table, ids, video_ids = h["load"]("", "", "", 1)
    assert ids == [render, run] and [r[-1] for r in table] == ["render", "train"] and video_ids == []
    with pytest.warns(UserWarning, match=f"Job {run} is a training run"):
        h["do_reuse"](run)
    assert h["do_rerender"](run).startswith(f"Job {run} is a training run")
    assert f"Job {run} is a training run" in h["do_delete"](run, True, "", "", "", 1)[5]
    from ui.tabs.history import details

    assert "(training run)" in details(studio.history.get(run))
