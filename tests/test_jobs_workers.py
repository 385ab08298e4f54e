"""Several render workers over one queue: `aiprod-studio worker`, the supervisor of `ui --workers/--gpus`.

Real worker processes over the tiny model: a batch rendered exactly once across two workers,
a worker killed mid-job (its job reads interrupted within seconds, the other goes on, the
dead one is restarted), a cancel and a SIGTERM reaching a job another process runs,
concurrent claims from several processes, and the flags refused by name.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aiprod_studio.cli import main
from engine.jobs.events import Progress
from engine.jobs.workers import Supervisor, child_device, worker_devices
from engine.render import media
from engine.runners import make_worker

ROOT = Path(__file__).resolve().parent.parent

TINY = {"width": 64, "height": 64, "num_frames": 17}
# `aiprod-studio` with every render step slowed (as the `slow_cli` fixture does), for the supervisor
SLOW = (
    "import sys, time\n"
    "from aiprod_studio.jobs import history\n"
    "original = history.History.set_progress\n"
    "def slowed(self, *a, **k):\n"
    "    original(self, *a, **k)\n"
    "    time.sleep(0.2)\n"
    "history.History.set_progress = slowed\n"
    "from aiprod_studio.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def enqueue(studio, prompt: str, **kw) -> int:
    return make_worker(studio).enqueue(studio.build_recipe({"prompt": prompt, **TINY, **kw}))


def raw_row(studio, job_id: int) -> dict:
    """The row as stored, read without `History` (whose readers would themselves mark a dead owner's job)."""
    conn = sqlite3.connect(studio.settings.db_path)
    conn.row_factory = sqlite3.Row
    try:
        return dict(conn.execute("SELECT * FROM jobs WHERE id = ?", [job_id]).fetchone())
    finally:
        conn.close()


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def running_in(studio, job_id: int, pid: int, step: int = 1) -> bool:
    row = raw_row(studio, job_id)
    return row["status"] == "running" and row["owner_pid"] == pid and (row["step"] or 0) >= step


def worker_env(studio) -> dict:
    s = studio.settings
    return {**os.environ, "AIPROD_MODELS_DIR": str(s.models_dir), "AIPROD_DATA_DIR": str(s.data_dir)}


def test_two_workers_render_a_batch_exactly_once(studio):
    ids = [enqueue(studio, f"batch shot {i}", seed=i, steps=2) for i in range(6)]
    other = subprocess.Popen(
        [sys.executable, "-m", "aiprod_studio", "worker", "--device", "cpu", "--idle-exit", "2", "--json"],
        cwd=ROOT,
        env=worker_env(studio),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    here = make_worker(studio, idle_exit_s=2).start()
    try:
        out, err = other.communicate(timeout=240)
        assert here.join(timeout=240)
    finally:
        if other.poll() is None:
            other.kill()
        here.stop()
    assert other.returncode == 0, err
    theirs = json.loads(out.strip().splitlines()[-1])
    assert theirs["stopped"] == "idle" and theirs["device"] == "cpu (float32)"
    # each job was claimed by exactly one worker, and every one was
    assert sorted(here.ran + theirs["ran"]) == ids and not set(here.ran) & set(theirs["ran"])
    rows = [studio.history.get(j) for j in ids]
    assert [r["status"] for r in rows] == ["done"] * 6
    assert len({r["output_path"] for r in rows}) == 6
    for i, row in enumerate(rows):
        assert media.count_frames(row["output_path"]) == 17
        assert media.read_metadata_json(row["output_path"])["seed"] == i
    print(f"in-process worker ran {here.ran}, worker process {theirs['pid']} ran {theirs['ran']}")


def test_a_killed_worker_s_job_is_interrupted_at_once_and_the_worker_restarted(studio):
    workers = Supervisor(studio.settings, ["cpu"], studio.history, launcher=[sys.executable, "-c", SLOW]).start()
    here = None
    try:
        # 1. The worker process takes a long job.
        (child,) = workers.pids()
        long_job = enqueue(studio, "a long take", steps=200)
        wait_until(lambda: running_in(studio, long_job, child), 120, "the worker process to render")
        # 2. The studio's own worker takes the next ones; the worker process is killed mid-job.
        here = make_worker(studio).start()
        short = [enqueue(studio, f"short take {i}", steps=2) for i in range(2)]
        os.kill(child, 9)
        killed_at = time.monotonic()
        # 3. Nobody reads the queue, yet the job reads interrupted within seconds (the sweep).
        wait_until(lambda: raw_row(studio, long_job)["status"] == "interrupted", 8, "the sweep")
        assert time.monotonic() - killed_at < 8
        assert f"process {child}" in raw_row(studio, long_job)["error"]
        # 4. The other jobs are rendered; the dead worker is started again, and its log says why.
        for job_id in short:
            assert here.wait(job_id, timeout_s=120)["status"] == "done"
        restarted = wait_until(lambda: [p for p in workers.pids() if p != child], 30, "the restart")
        assert restarted and workers.workers[0].exits == [-9]
        log_text = workers.workers[0].log_path.read_text()
        assert "exited with code -9; restarting in 1 s" in log_text and "(restart 1)" in log_text
    finally:
        workers.stop()
        if here is not None:
            here.stop()
    assert workers.pids() == []
    assert raw_row(studio, long_job)["status"] == "interrupted"  # nothing ran it again
    assert not [p for p in studio.settings.outputs_dir.iterdir() if p.name.endswith(".partial")]
    assert studio.history.count("running") == 0


def test_cancel_and_stop_reach_a_job_in_a_worker_process(studio, slow_cli):
    proc = slow_cli("worker", "--device", "cpu", "--json", step_s=0.2)
    panel = make_worker(studio)  # the UI's queue, not started: every job runs in the worker process
    # 1. A cancel from the studio stops the job the worker process runs (at its next heartbeat).
    first = enqueue(studio, "cancel me", steps=200)
    wait_until(lambda: running_in(studio, first, proc.pid), 120, "the worker process to render")
    active = {r["id"]: r for r in panel.active()}
    assert active[first]["status"] == "running" and active[first]["step"] >= 1
    follow = panel.follow(first, timeout_s=60)
    assert isinstance(next(follow), Progress)
    assert panel.cancel(first) == "cancelling"
    final = panel.wait(first, timeout_s=30)
    assert final["status"] == "cancelled" and final["step"] < 200
    # 2. SIGTERM stops the worker: its running job becomes interrupted, resumable.
    second = enqueue(studio, "stop me", steps=200)
    wait_until(lambda: running_in(studio, second, proc.pid), 60, "the second job to run")
    proc.terminate()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["stopped"] == "signal" and report["ran"] == [first, second]
    assert report["statuses"] == {str(first): "cancelled", str(second): "interrupted"}
    row = raw_row(studio, second)
    assert row["status"] == "interrupted" and row["error"] == "the studio stopped while this job was running"
    assert panel.resume(second) == second and studio.history.get(second)["status"] == "queued"


CLAIMER = """
import json, sys
from aiprod_studio.jobs.history import History
h = History(sys.argv[1])
sys.stdout.write("ready\\n"); sys.stdout.flush(); sys.stdin.readline()
claimed = []
while (job := h.next_queued()) is not None:
    if h.claim(job):
        claimed.append(job)
        h.recover_interrupted()  # a sweep from every process, while the others hold live jobs
        h.mark_done(job, "/dev/null", 0.0)
print(json.dumps(claimed))
"""


def test_concurrent_claims_from_several_processes_take_each_job_once(studio):
    recipe = studio.stamp(studio.build_recipe({"prompt": "claimed once", **TINY}))
    ids = [studio.history.create_job(recipe) for _ in range(80)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, str(studio.settings.db_path)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for p in procs:  # all open, then all go at once
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    claims = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    flat = [j for c in claims for j in c]
    assert sorted(flat) == ids  # every job claimed, none twice
    assert studio.history.count("done") == 80 and studio.history.count("interrupted") == 0


@pytest.mark.parametrize(
    ("argv", "field", "says"),
    [
        (["ui", "--workers", "0"], "workers", "--workers must be a whole number from 1 to 16, got 0"),
        (["ui", "--workers", "1.5"], "workers", "--workers must be a whole number, got '1.5'"),
        (["ui", "--workers", "99"], "workers", "--workers must be a whole number from 1 to 16, got 99"),
        (["ui", "--gpus", "0"], "gpus", "--gpus 0: no CUDA GPU is available"),
        (["ui", "--gpus", "0,x"], "gpus", "--gpus must list CUDA device indices separated by commas"),
        (["ui", "--gpus", "1,1"], "gpus", "--gpus names a GPU twice in '1,1'"),
        (["ui", "--workers", "3", "--gpus", "0,1"], "workers", "--workers 3 and --gpus 0,1 disagree"),
        (["worker", "--max-jobs", "0"], "max_jobs", "--max-jobs must be a whole number from 1"),
        (["worker", "--idle-exit", "-1"], "idle_exit", "--idle-exit must be a number of seconds above 0, got '-1'"),
    ],
)
def test_bad_worker_flags_are_refused_by_name(argv, field, says, capsys, monkeypatch, data_dir):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a machine without CUDA
    assert main([*argv, "--data-dir", str(data_dir), "--json"]) == 2
    captured = capsys.readouterr()
    assert says in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["field"] == field


@pytest.mark.gpu
def test_gpus_refuses_an_index_this_machine_lacks():
    import torch

    count = torch.cuda.device_count()
    assert worker_devices(None, ",".join(map(str, range(count))), "auto") == [f"cuda:{i}" for i in range(count)]
    with pytest.raises(Exception, match=f"--gpus 0,{count}: GPU {count} does not exist"):
        worker_devices(None, f"0,{count}", "auto")


def test_worker_devices_and_what_each_process_sees():
    assert worker_devices(None, None, "cpu") == ["cpu"]  # today's studio: one worker
    assert worker_devices("3", None, "cuda:1") == ["cuda:1"] * 3
    # a worker on cuda:N sees only that GPU, counted within the studio's own visible devices
    assert child_device("cuda:1", {}) == ("cuda:0", {"CUDA_VISIBLE_DEVICES": "1"})
    assert child_device("cuda:1", {"CUDA_VISIBLE_DEVICES": "4,6"}) == ("cuda:0", {"CUDA_VISIBLE_DEVICES": "6"})
    assert child_device("cpu", {}) == ("cpu", {}) and child_device("cuda", {}) == ("cuda", {})


def test_a_worker_that_keeps_dying_waits_longer_each_time_and_one_that_will_not_stop_is_killed(studio):
    dies = [sys.executable, "-c", "import sys; sys.exit(3)"]
    deaf = [
        sys.executable,
        "-c",
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('SIGTERM', 'ignored', flush=True)\n"
        "time.sleep(60)\n",
    ]
    workers = Supervisor(studio.settings, ["cpu"], studio.history, launcher=dies, poll_s=0.05).start()
    try:
        wait_until(lambda: len(workers.workers[0].exits) >= 3, 20, "three deaths")  # at 0 s, ~1 s, ~3 s
    finally:
        workers.stop()
    log_text = workers.workers[0].log_path.read_text()
    for wait_s in (1, 2, 4):
        assert f"exited with code 3; restarting in {wait_s} s" in log_text
    deaf_workers = Supervisor(studio.settings, ["cpu"], studio.history, launcher=deaf, stop_timeout_s=1).start()
    (pid,) = deaf_workers.pids()
    wait_until(lambda: "SIGTERM ignored" in deaf_workers.workers[0].log_path.read_text(), 30, "SIGTERM ignored")
    started = time.monotonic()
    deaf_workers.stop()
    assert time.monotonic() - started < 5 and deaf_workers.pids() == []
    assert deaf_workers.workers[0].proc.returncode == -9


def test_workers_on_one_device_share_its_memory_budget():
    from engine.jobs.workers import device_memory_gb, shared_limits

    assert shared_limits(["cpu"], 8.0) == [8.0] and shared_limits(["cpu"], None) == [None]
    assert shared_limits(["cpu", "cpu"], 8.0) == [4.0, 4.0]
    three = shared_limits(["cpu"] * 3, None)
    assert three[0] == three[2] == pytest.approx(device_memory_gb("cpu") / 3, abs=0.01)
