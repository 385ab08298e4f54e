"""Job owners: who runs a row, whether that process lives, and readers that never show a dead job running."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from aiprod_studio.jobs.history import History
from aiprod_studio.jobs.owner import STALE_AFTER_S, Heartbeat, Owner, host_id, is_alive, process_start
from aiprod_studio.recipe import make_recipe


def recipe(**kw):
    base = {
        "prompt": "a lighthouse",
        "model": "tiny",
        "model_digest": "d" * 64,
        "width": 64,
        "height": 64,
        "num_frames": 17,
        "steps": 4,
    }
    return make_recipe(base | kw)


def exited_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def row_of(owner: Owner, heartbeat: float | None = None) -> dict:
    return {
        "owner_pid": owner.pid,
        "owner_host": owner.host,
        "owner_start": owner.start,
        "heartbeat": time.time() if heartbeat is None else heartbeat,
    }


def test_this_process_is_alive_and_an_exited_one_is_not():
    me = Owner.me()
    assert me.pid > 0 and me.host == host_id() and me.start  # Linux: the start token is read from /proc
    assert is_alive(row_of(me))
    assert process_start(exited_pid()) is None
    assert not is_alive(row_of(Owner(exited_pid(), host_id(), "1")))


def test_a_recycled_pid_is_not_the_owner():
    me = Owner.me()
    assert not is_alive(row_of(Owner(me.pid, me.host, str(int(me.start) + 1))))


def test_a_remote_owner_lives_by_its_heartbeat():
    remote = Owner(12345, "render-node-2/another-boot", "99")
    assert is_alive(row_of(remote))
    assert not is_alive(row_of(remote, heartbeat=time.time() - STALE_AFTER_S - 1))
    assert not is_alive({"owner_pid": None, "owner_host": None})  # a row from before owners were recorded


def test_rows_created_running_belong_to_their_process(tmp_path):
    h = History(tmp_path / "h.sqlite")
    job = h.create_job(recipe(), status="running")
    row = h.get(job)
    assert (row["owner_pid"], row["owner_host"]) == (Owner.me().pid, host_id())
    assert h.recover_interrupted() == [] and h.get(job)["status"] == "running"
    queued = h.create_job(recipe())
    assert h.get(queued)["owner_pid"] is None
    assert h.claim(queued) and h.get(queued)["owner_pid"] == Owner.me().pid


def test_every_reader_turns_a_dead_owners_row_interrupted(tmp_path, orphan):
    h = History(tmp_path / "h.sqlite")
    a, b = h.create_job(recipe(), status="running"), h.create_job(recipe(), status="running")
    orphan(h, a)
    assert h.get(a)["status"] == "interrupted"  # one row read
    assert "process" in h.get(a)["error"] and "stopped" in h.get(a)["error"]
    orphan(h, b)
    assert [r["status"] for r in h.jobs()] == ["interrupted", "interrupted"]  # the list
    c = h.create_job(recipe(), status="running")
    orphan(h, c)
    assert h.count("running") == 0 and h.count("interrupted") == 3
    h.close()


def test_a_legacy_running_row_without_owner_is_recovered(tmp_path):
    h = History(tmp_path / "h.sqlite")
    job = h.create_job(recipe())
    h.db.execute("UPDATE jobs SET status = 'running' WHERE id = ?", [job])
    assert h.recover_interrupted() == [job]


def test_requeue_forgets_the_old_owner(tmp_path, orphan):
    h = History(tmp_path / "h.sqlite")
    job = orphan(h, h.create_job(recipe(), status="running"))
    h.request_cancel(job)
    assert h.recover_interrupted() == [job]
    assert h.requeue(job)
    row = h.get(job)
    assert (row["status"], row["owner_pid"], row["cancel_requested"]) == ("queued", None, 0)


def test_a_cancel_asked_elsewhere_reaches_the_owner_through_its_heartbeat(tmp_path):
    h = History(tmp_path / "h.sqlite")
    job = h.create_job(recipe(), status="running")
    other = History(tmp_path / "h.sqlite")  # another process's connection
    cancel = threading.Event()
    before = h.get(job)["heartbeat"]
    with Heartbeat(lambda: h.beat(job), cancel, every=0.05):
        time.sleep(0.2)
        assert not cancel.is_set()
        assert h.get(job)["heartbeat"] > before
        assert other.request_cancel(job)
        assert cancel.wait(5)
    assert not other.request_cancel(h.create_job(recipe()))  # only a running job can be asked
    other.close()
    h.close()


def test_migration_4_adds_the_owner_columns_to_an_old_database(tmp_path):
    import sqlite3

    from aiprod_studio.jobs import history as hmod

    path = tmp_path / "old.sqlite"
    old = History.__new__(History)
    saved = hmod.MIGRATIONS
    try:
        hmod.MIGRATIONS = saved[:3]
        History.__init__(old, path)
        job = old.create_job(recipe()) if "owner_pid" in old.db["jobs"].columns_dict else None
    finally:
        hmod.MIGRATIONS = saved
    assert job is None  # the old schema has no owner columns
    old.db.execute(
        "INSERT INTO jobs (status, prompt, recipe, created_at) VALUES ('running', 'x', ?, 'now')", [recipe().to_json()]
    )
    old.close()
    h = History(path)
    assert h.schema_version == len(hmod.MIGRATIONS)
    assert h.recover_interrupted() == [1]  # an old running row has no owner: it is recovered
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
