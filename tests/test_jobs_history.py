"""The SQLite history: pragmas, migrations, job transitions, crash recovery, filters."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading

import pytest

from aiprod_studio.jobs.history import MIGRATIONS, History
from aiprod_studio.recipe import make_recipe


def recipe(prompt="a red car", seed=1):
    return make_recipe({"prompt": prompt, "model": "m", "width": 64, "height": 64, "num_frames": 17, "seed": seed})


@pytest.fixture
def history(tmp_path):
    h = History(tmp_path / "h.sqlite")
    yield h
    h.close()


def test_pragmas_and_schema_version(history, tmp_path):
    assert history.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert history.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert history.schema_version == len(MIGRATIONS)
    cols = {c.name for c in history.db["jobs"].columns}
    assert {
        "id",
        "status",
        "recipe",
        "model_digest",
        "created_at",
        "started_at",
        "finished_at",
        "output_path",
        "error",
        "wall_s",
    } <= cols


def test_migrations_run_once(tmp_path):
    History(tmp_path / "h.sqlite").close()
    h = History(tmp_path / "h.sqlite")  # reopening must not re-run migration 1 (it would fail: table exists)
    assert h.schema_version == len(MIGRATIONS)
    h.close()


def test_job_lifecycle_rows(history):
    r = recipe()
    job = history.create_job(r)
    assert history.get(job)["status"] == "queued"
    history.mark_running(job)
    history.set_progress(job, 3, 8)
    row = history.get(job)
    assert (row["status"], row["step"], row["total_steps"]) == ("running", 3, 8)
    assert row["started_at"]
    history.mark_done(job, "/out/x.mp4", 1.25)
    row = history.get(job)
    assert (row["status"], row["output_path"], row["wall_s"]) == ("done", "/out/x.mp4", 1.25)
    assert row["recipe"] == r.model_dump(mode="json")
    assert row["finished_at"] >= row["started_at"] >= row["created_at"]


def test_failed_and_cancelled_keep_the_error(history):
    a, b = history.create_job(recipe()), history.create_job(recipe())
    history.mark_failed(a, "boom")
    history.mark_failed(b, "stopped", status="cancelled")
    assert (history.get(a)["status"], history.get(a)["error"]) == ("failed", "boom")
    assert history.get(b)["status"] == "cancelled"
    with pytest.raises(ValueError):
        history.mark_failed(a, "x", status="running")


def test_running_rows_become_interrupted_on_recovery(tmp_path, orphan):
    h = History(tmp_path / "h.sqlite")
    done, running = h.create_job(recipe()), h.create_job(recipe())
    h.mark_running(done)
    h.mark_done(done, "/x.mp4", 1.0)
    h.mark_running(running)
    orphan(h, running)  # the process "dies" with one job running
    h.close()
    h2 = History(tmp_path / "h.sqlite")
    assert h2.recover_interrupted() == [running]
    assert h2.get(running)["status"] == "interrupted"
    assert h2.get(done)["status"] == "done"
    assert h2.recover_interrupted() == []
    h2.close()


def test_filters_and_paging(history):
    for i in range(5):
        history.create_job(recipe(prompt=f"shot {i} 100%_sure", seed=i))
    history.create_job(recipe(prompt="another thing"))
    assert [r["seed"] for r in history.jobs(limit=2)] == [1, 4]
    assert [r["seed"] for r in history.jobs(limit=2, offset=2)] == [3, 2]
    assert len(history.jobs(text="100%_")) == 5
    assert len(history.jobs(text="%")) == 5  # LIKE wildcards are escaped
    assert history.jobs(text="another")[0]["prompt"] == "another thing"
    assert history.count() == 6 and history.count("queued") == 6


def test_concurrent_writers_share_one_connection(history):
    ids = []

    def work():
        for _ in range(20):
            ids.append(history.create_job(recipe()))

    threads = [threading.Thread(target=work) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(set(ids)) == 80 and history.count() == 80


def test_database_passes_integrity_check(history, tmp_path):
    history.create_job(recipe())
    con = sqlite3.connect(tmp_path / "h.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


def test_queue_operations_are_atomic_transitions(history):
    a, b, c = (history.create_job(recipe(seed=i)) for i in range(3))
    assert history.next_queued() == a
    assert [history.queue_position(j) for j in (a, b, c)] == [1, 2, 3]
    assert history.claim(a) and not history.claim(a)
    assert history.queue_position(a) is None and history.queue_position(c) == 2
    assert history.cancel_if_queued(b) and not history.cancel_if_queued(a)  # a is running: not a queued cancel
    assert history.next_queued() == c
    assert history.get(b)["status"] == "cancelled"
    assert history.requeue(b) and history.get(b)["status"] == "queued" and history.get(b)["error"] is None
    assert not history.requeue(c)  # already queued
    history.delete(b)
    with pytest.raises(KeyError):
        history.get(b)


def test_processes_opening_a_new_database_at_once_migrate_it_once(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys; from aiprod_studio.jobs.history import History; h = History(sys.argv[1]); "
        "print(h.schema_version); h.close()"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "race.sqlite")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err for _, err in results]
    assert {out.strip() for out, _ in results} == {str(len(MIGRATIONS))}


def test_done_renders_from_before_the_scheduler_was_retired_keep_matching(tmp_path, monkeypatch):
    """A storyboard does not re-render its shots after the upgrade: migration 5 recomputes the keys."""
    path = tmp_path / "h.sqlite"
    monkeypatch.setattr("aiprod_studio.jobs.history.MIGRATIONS", MIGRATIONS[:4])  # the studio before the upgrade
    h = History(path)
    r = recipe()
    old_recipe = {**r.model_dump(mode="json"), "scheduler": {}}
    old_fields = {k: v for k, v in old_recipe.items() if k not in ("versions", "offload")}
    old_key = hashlib.sha256(json.dumps(old_fields, sort_keys=True).encode()).hexdigest()  # as computed then
    output = tmp_path / "shot.mp4"
    output.write_bytes(b"mp4")
    h.db["jobs"].insert(
        {
            "status": "done",
            "prompt": r.prompt,
            "model": r.model,
            "seed": r.seed,
            "recipe": json.dumps(old_recipe),
            "render_key": old_key,
            "created_at": "2025-01-01",
            "output_path": str(output),
        }
    )
    train = (
        h.db["jobs"]
        .insert({"kind": "train", "status": "done", "recipe": '{"name": "x"}', "created_at": "2025-01-01"})
        .last_pk
    )
    h.close()
    monkeypatch.undo()

    h = History(path)
    assert h.schema_version == len(MIGRATIONS) == 9
    assert r.render_key() != old_key
    row = h.latest_for_key(r.render_key())
    assert row is not None and row["output_path"] == str(output) and row["recipe"]["scheduler"] == {}
    assert h.get(train)["render_key"] is None  # a training run has no render key, and gets none
    h.close()


def test_a_pause_is_remembered_on_the_row_and_cleared_on_resume(tmp_path):
    history = History(tmp_path / "h.db")
    queued, running = history.create_job(recipe()), history.create_job(recipe())
    assert history.claim(running)
    assert history.cancel_if_queued(queued, pause=True) and history.request_cancel(running, pause=True)
    history.mark_failed(running, "training stopped at step 3; resume it to continue", status="cancelled")
    again = History(tmp_path / "h.db")  # after a restart
    assert again.get(queued)["paused"] and again.get(queued)["error"] == "paused before it started"
    assert again.get(running)["paused"] and again.get(running)["status"] == "cancelled"
    assert again.requeue(running) and not again.get(running)["paused"]
    plain = again.create_job(recipe())
    assert again.cancel_if_queued(plain) and not again.get(plain)["paused"]


def test_a_paused_run_cancelled_for_good_is_no_longer_paused(tmp_path):
    history = History(tmp_path / "h.db")
    job = history.create_job(recipe())
    assert history.cancel_if_queued(job, pause=True) and history.get(job)["paused"]
    history.forget_pause(job)
    assert not history.get(job)["paused"] and history.get(job)["status"] == "cancelled"
