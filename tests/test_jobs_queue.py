"""The persistent render queue: order, cancel, resume, discard, bounds, shutdown."""

from __future__ import annotations

import pytest

from aiprod_studio.errors import BadInput
from engine.jobs.queue import Done, Progress, QueueFull, Stopped
from engine.models.pipelines import warm_pipeline
from engine.render import media
from engine.runners import make_worker


@pytest.fixture
def worker(studio):
    w = make_worker(studio, max_size=5).start()
    yield w
    w.stop()


def recipe(studio, prompt, **kw):
    return studio.build_recipe({"prompt": prompt, **kw})


def wait_running(worker, job_id):
    for event in worker.follow(job_id, timeout_s=120):
        if isinstance(event, Progress) and event.status == "running" and event.step >= 1:
            return event
    raise AssertionError(f"job {job_id} ended before it was seen running")


def test_cancel_queued_and_running_jobs(studio, worker):
    a = worker.enqueue(recipe(studio, "first", steps=60))
    b = worker.enqueue(recipe(studio, "second"))
    c = worker.enqueue(recipe(studio, "third", steps=200))
    assert worker.status(b)["position"] in (1, 2)
    assert worker.cancel(b) == "cancelled"  # queued: never starts
    assert worker.wait(a, timeout_s=120)["status"] == "done"
    wait_running(worker, c)
    assert worker.cancel(c) == "cancelling"  # running: stops at the next step
    final = worker.wait(c, timeout_s=60)
    assert final["status"] == "cancelled" and final["step"] < 200
    assert [studio.history.get(j)["status"] for j in (a, b, c)] == ["done", "cancelled", "cancelled"]
    assert studio.history.get(b)["started_at"] is None
    assert [p.name for p in studio.settings.outputs_dir.iterdir()] == [
        studio.history.get(a)["output_path"].rsplit("/", 1)[1]
    ]
    with pytest.raises(BadInput, match=f"job {a} is done"):
        worker.cancel(a)


def test_jobs_run_in_order_and_follow_reports_progress(studio, worker):
    ids = [worker.enqueue(recipe(studio, f"shot {i}", seed=i)) for i in range(3)]
    events = list(worker.follow(ids[2], timeout_s=120))
    assert isinstance(events[-1], Done)
    assert any(isinstance(e, Progress) and e.status == "running" for e in events)
    rows = [studio.history.get(j) for j in ids]
    assert all(r["status"] == "done" for r in rows)
    assert rows[0]["finished_at"] <= rows[1]["started_at"] and rows[1]["finished_at"] <= rows[2]["started_at"]
    assert media.read_metadata_json(rows[2]["output_path"])["seed"] == 2


def test_queue_is_bounded(studio):
    w = make_worker(studio, max_size=2)  # not started: jobs stay queued
    w.enqueue(recipe(studio, "a"))
    w.enqueue(recipe(studio, "b"))
    with pytest.raises(QueueFull, match="queue full: 2 jobs") as info:
        w.enqueue(recipe(studio, "c"))
    assert info.value.exit_code == 2 and studio.history.count() == 2


def test_interrupted_job_resumes_and_can_be_discarded(studio, orphan):
    r = studio.stamp(recipe(studio, "crashed render"))
    crashed = orphan(studio.history, studio.history.create_job(r, status="running"))
    other = orphan(studio.history, studio.history.create_job(r, status="running"))
    assert studio.history.recover_interrupted() == [crashed, other]
    w = make_worker(studio).start()
    try:
        w.discard(other)
        assert studio.history.get(other)["status"] == "cancelled"
        assert w.resume(crashed) == crashed
        done = w.wait(crashed, timeout_s=120)
        assert done["status"] == "done" and media.probe(done["output_path"])["video"]["frames"] == 17
        with pytest.raises(BadInput, match="only interrupted, failed or cancelled"):
            w.resume(crashed)
        with pytest.raises(BadInput, match="only interrupted jobs can be discarded"):
            w.discard(crashed)
        with pytest.raises(BadInput, match="job_id 999 does not exist"):
            w.status(999)
    finally:
        w.stop()


def test_stopping_the_studio_leaves_the_running_job_resumable(studio):
    w = make_worker(studio).start()
    job = w.enqueue(recipe(studio, "long", steps=200))
    wait_running(w, job)
    w.stop()
    assert studio.history.get(job)["status"] == "interrupted"
    assert list(studio.settings.outputs_dir.iterdir()) == []
    assert isinstance(list(w.follow(job))[-1], Stopped)


def test_active_lists_running_queued_and_interrupted(studio, orphan):
    w = make_worker(studio)
    r = studio.stamp(recipe(studio, "x"))
    broken = orphan(studio.history, studio.history.create_job(r, status="running"))
    studio.history.recover_interrupted()
    q1, q2 = w.enqueue(r), w.enqueue(r)
    rows = w.active()
    assert [(x["id"], x["status"], x.get("position")) for x in rows] == [
        (q1, "queued", 1),
        (q2, "queued", 2),
        (broken, "interrupted", None),
    ]


def test_a_job_queued_behind_a_cancelled_one_starts_and_finishes(studio):
    w = make_worker(studio)  # not started yet: both jobs wait in the queue
    first = w.enqueue(recipe(studio, "cancelled mid step", steps=8))
    second = w.enqueue(recipe(studio, "the next one", seed=1))
    entry = studio.vault.get(studio.default_model(), kind="pipeline")
    with studio.device_lease("test") as lease:  # the warm pipeline the worker renders with
        pipe = warm_pipeline(lease, studio.vault, entry, "none", "none")
    answers = []

    def cancel_from_the_first_block(_module, _args, _out):
        if not answers:  # inside the running job's first transformer block
            answers.append(w.cancel(first))

    handle = pipe.transformer.transformer_blocks[0].register_forward_hook(cancel_from_the_first_block)
    try:
        w.start()
        done = w.wait(second, timeout_s=120)
    finally:
        handle.remove()
        w.stop()
    stopped = studio.history.get(first)
    assert answers == ["cancelling"]
    assert stopped["status"] == "cancelled" and not stopped["step"]  # stopped inside its first step
    assert done["status"] == "done" and media.probe(done["output_path"])["video"]["frames"] == 17
    assert [p.name for p in studio.settings.outputs_dir.iterdir()] == [done["output_path"].rsplit("/", 1)[1]]
    assert sum(len(m._forward_pre_hooks) for m in pipe.transformer.modules()) == 0


def test_the_queue_runs_each_kind_with_the_runner_it_was_handed(studio):
    from engine.jobs.queue import QueueWorker

    ran = []

    def fake_render(job_id, cancel):
        ran.append(("render", job_id))
        studio.history.mark_done(job_id, "/made/by/the/table.mp4", 0.0)

    w = QueueWorker(studio, {"render": fake_render}).start()  # no `train` runner in this table
    try:
        render = w.enqueue(recipe(studio, "by the table"))
        train = w.submit(lambda history: history.create_train_job(_train_config(studio)))
        assert w.wait(render, timeout_s=30)["output_path"] == "/made/by/the/table.mp4"
        row = w.wait(train, timeout_s=30)
    finally:
        w.stop()
    assert ran == [("render", render)]
    assert (row["status"], row["error"]) == ("failed", "this studio cannot run train jobs")


def _train_config(studio):
    from aiprod_studio.training import make_train_config

    return make_train_config({"dataset": str(studio.settings.data_dir), "name": "never-run"})
