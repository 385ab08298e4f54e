"""Crash recovery across processes: a CLI render beside the studio, kill -9, leftovers, cross-process cancel.

`slow_cli` runs the real `aiprod-studio` in a subprocess with each render step slowed, so the
test can act while it renders.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from aiprod_studio.errors import BadInput
from aiprod_studio.files import partials
from aiprod_studio.jobs.owner import host_id, process_start
from engine.runners import make_worker

RENDER = ("render", "--prompt", "a slow lighthouse", "--width", "64", "--height", "64", "--frames", "17")


def wait_for_step(studio, proc, step: int = 2, timeout: float = 120) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        rows = studio.history.jobs(limit=1)
        if rows and rows[0]["status"] == "running" and (rows[0]["step"] or 0) >= step:
            return rows[0]
        time.sleep(0.05)
    raise AssertionError("the CLI render did not reach its step")


def test_a_cli_render_killed_with_sigkill_reads_as_interrupted(studio, slow_cli, cli):
    proc = slow_cli(*RENDER, "--steps", "40")
    job = wait_for_step(studio, proc)["id"]
    proc.kill()
    proc.wait()
    listed = cli("history", "--json")
    assert listed.returncode == 0
    assert [j["status"] for j in listed.json["jobs"] if j["id"] == job] == ["interrupted"]
    record = make_worker(studio).status(job)  # what /job and the queue panel read
    assert record["status"] == "interrupted" and f"process {proc.pid}" in record["error"]
    assert studio.history.count("running") == 0


def test_starting_the_studio_leaves_a_live_cli_render_alone(studio, slow_cli):
    from ui.app import prepare

    proc = slow_cli(*RENDER, "--steps", "12", "--json")
    job = wait_for_step(studio, proc)["id"]
    assert prepare(studio, build_tiny_if_empty=False) == []  # what a studio start does
    assert studio.history.get(job)["status"] == "running"
    worker = make_worker(studio)
    with pytest.raises(BadInput, match="only interrupted, failed or cancelled"):
        worker.resume(job)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    row = studio.history.get(job)
    assert row["status"] == "done" and json.loads(out.strip().splitlines()[-1])["id"] == job
    assert studio.history.count() == 1  # rendered once, by its own process


def test_a_cancel_from_the_studio_stops_a_cli_render(studio, slow_cli):
    proc = slow_cli(*RENDER, "--steps", "40")
    job = wait_for_step(studio, proc, step=1)["id"]
    assert make_worker(studio).cancel(job) == "cancelling"
    proc.wait(timeout=60)
    assert proc.returncode == 4, proc.stderr.read()
    row = studio.history.get(job)
    assert row["status"] == "cancelled" and row["step"] < 40
    assert list(studio.settings.outputs_dir.iterdir()) == []


def test_resume_and_discard_refuse_a_job_whose_owner_lives(studio):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        r = studio.build_recipe({"prompt": "owned elsewhere", "width": 64, "height": 64, "num_frames": 17, "steps": 2})
        job = studio.history.create_job(studio.stamp(r))
        # marked interrupted too early (e.g. a remote heartbeat that was late) while its process still runs
        with studio.history.locked() as db:
            db.execute(
                "UPDATE jobs SET status = 'interrupted', owner_pid = ?, owner_host = ?, owner_start = ? WHERE id = ?",
                [sleeper.pid, host_id(), process_start(sleeper.pid), job],
            )
        worker = make_worker(studio)
        for act in (worker.resume, worker.discard):
            with pytest.raises(BadInput, match=f"process {sleeper.pid} that ran it is still alive") as info:
                act(job)
            assert info.value.field == "job_id"
        assert studio.history.get(job)["status"] == "interrupted"
        sleeper.kill()
        sleeper.wait()
        assert worker.resume(job) == job and studio.history.get(job)["status"] == "queued"
    finally:
        if sleeper.poll() is None:
            sleeper.kill()


def test_start_removes_partials_nobody_writes_and_keeps_a_live_one(studio, tmp_path, orphan):
    out = studio.settings.outputs_dir
    (out / "films").mkdir()
    stale = [out / ".000001-a-0.mp4.partial", out / "films" / ".night-drive.mp4.partial"]
    for p in stale:
        p.write_bytes(b"half")
    elsewhere = tmp_path / "mine" / "car.mp4"  # a CLI render with --out outside the outputs folder
    elsewhere.parent.mkdir()
    partials.temp_path_for(elsewhere).write_bytes(b"half")
    r = studio.stamp(studio.build_recipe({"prompt": "x", "width": 64, "height": 64, "num_frames": 17}))
    job = studio.history.create_job(r, status="running")
    studio.history.mark_running(job, target=str(elsewhere))
    orphan(studio.history, job)
    live = out / ".000002-b-0.mp4.partial"
    code = (
        "import sys, time; from pathlib import Path; from aiprod_studio.files import partials\n"
        "with partials.holding(Path(sys.argv[1])):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code, str(live)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "held"
        report = studio.recover()
        assert report["interrupted"] == [job]
        assert sorted(report["partials"]) == sorted(map(str, stale + [partials.temp_path_for(elsewhere)]))
        assert live.exists() and not any(p.exists() for p in stale)
        assert not partials.temp_path_for(elsewhere).exists()
    finally:
        writer.kill()
        writer.wait()


def test_discard_removes_the_partial_file(studio, orphan):
    r = studio.stamp(studio.build_recipe({"prompt": "x", "width": 64, "height": 64, "num_frames": 17}))
    job = studio.history.create_job(r, status="running")
    target = studio.output_path_for(job, r)
    studio.history.mark_running(job, target=str(target))
    orphan(studio.history, job)
    partials.temp_path_for(target).write_bytes(b"half")
    make_worker(studio).discard(job)
    assert studio.history.get(job)["status"] == "cancelled"
    assert not partials.temp_path_for(target).exists()
