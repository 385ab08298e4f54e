"""Chaos: kill -9 the studio, CLI renders and vault imports at random moments, then start again.

Bounded (about 20 kills, well under two minutes of killing). The schedule comes from a seeded
generator (`AIPROD_CHAOS_SEED` to replay one). After the last kill the studio starts once more,
and then:

- no acknowledged job is lost (every id the API or the CLI handed out is in the database, waiting,
  resumable or done, and a finished job's MP4 decodes whole);
- no row is `running` without a live owner;
- no `.partial` or `.importing` file (or import journal) is left;
- the vault verifies, and SQLite's `integrity_check` says ok.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file
from servers import free_port, start_server, stop

from engine.render import media

ROOT = Path(__file__).resolve().parent.parent
KILLS = 20
BUDGET_S = 90


def cli_proc(vault: Path, data: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "AIPROD_MODELS_DIR": str(vault), "AIPROD_DATA_DIR": str(data), "AIPROD_DEVICE": "cpu"}
    return subprocess.Popen(
        [sys.executable, "-m", "aiprod_studio", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def kill9(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(30)


def big_lora(folder: Path, mb: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "big.safetensors"
    save_file({"lora_A.weight": np.zeros((mb * 256, 1024), dtype=np.float32)}, str(path))
    return path


def test_kill_9_at_random_moments_loses_nothing(tiny_vault, tmp_path):
    from gradio_client import Client

    seed = int(os.environ.get("AIPROD_CHAOS_SEED", random.SystemRandom().randrange(10**6)))
    rng = random.Random(seed)
    print(f"chaos seed {seed} (AIPROD_CHAOS_SEED={seed} replays it)")
    vault, data, outs = tmp_path / "models", tmp_path / "data", tmp_path / "cli-out"
    shutil.copytree(tiny_vault, vault)
    data.mkdir()
    outs.mkdir()
    source = big_lora(tmp_path / "src", mb=96)
    acknowledged: set[int] = set()
    kills = {"studio": 0, "cli": 0, "import": 0}
    started = time.time()
    round_no = 0
    while sum(kills.values()) < KILLS and time.time() - started < BUDGET_S:
        round_no += 1
        # 1. A studio and a CLI render beside it.
        port = free_port()
        server = start_server(vault, data, port)
        render = cli_proc(
            vault,
            data,
            "render",
            "--prompt",
            f"chaos {round_no}",
            "--steps",
            str(rng.choice((8, 30))),
            "--width",
            "64",
            "--height",
            "64",
            "--frames",
            "17",
            "--out",
            str(outs / f"round-{round_no}.mp4"),
            "--json",
        )
        # 2. The studio acknowledges a few jobs through its API.
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        for i in range(rng.randint(1, 3)):
            job = client.predict(
                prompt=f"round {round_no} job {i}",
                steps=rng.choice((4, 20)),
                width=64,
                height=64,
                num_frames=17,
                api_name="/enqueue",
            )
            acknowledged.add(int(job["id"]))
        # 3. A vault import starts; kill -9 each of them at its own random moment.
        importing = cli_proc(vault, data, "vault", "import", str(source), "--kind", "lora", "--name", f"big-{round_no}")
        victims = [
            ("studio", server, rng.uniform(0.0, 2.5)),
            ("cli", render, rng.uniform(1.0, 6.0)),
            ("import", importing, rng.uniform(0.2, 0.9)),
        ]
        t0 = time.time()
        for kind, proc, at in sorted(victims, key=lambda v: v[2]):
            time.sleep(max(0.0, at - (time.time() - t0)))
            if proc.poll() is None:
                kills[kind] += 1
            kill9(proc)
        out = render.stdout.read()
        if render.returncode == 0 and out.strip():  # the CLI finished before its kill: its job counts too
            acknowledged.add(int(json.loads(out.strip().splitlines()[-1])["id"]))
    print(f"{round_no} rounds, kills {kills}, {len(acknowledged)} acknowledged jobs, {time.time() - started:.0f}s")
    assert sum(kills.values()) >= 10, kills

    # 4. Start once more: recovery runs; nothing is running, nothing half-written is left.
    port = free_port()
    server = start_server(vault, data, port)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        con = sqlite3.connect(data / "history.sqlite")
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        ids = {r[0] for r in con.execute("SELECT id FROM jobs")}
        assert acknowledged <= ids, f"lost jobs: {sorted(acknowledged - ids)}"
        stuck = con.execute("SELECT id, owner_pid FROM jobs WHERE status = 'running'").fetchall()
        for job_id, pid in stuck:  # only the new studio's own worker may hold a running row
            assert pid == server.pid, f"job {job_id} is running for process {pid}, which is dead"
        for job_id, path in con.execute("SELECT id, output_path FROM jobs WHERE status = 'done'"):
            assert Path(path).is_file(), f"job {job_id} is done but its MP4 is gone"
            assert media.probe(path)["video"]["frames"] == 17, f"job {job_id}'s MP4 does not decode whole"
        con.close()
        for job_id in sorted(acknowledged):  # nothing was cancelled or failed: each is waiting, resumable or done
            record, _ = client.predict(job_id=job_id, api_name="/job")
            assert record["status"] in ("queued", "running", "done", "interrupted"), record
    finally:
        stop(server)
    for root in (data / "outputs", outs, vault):
        left = [p for p in root.rglob(".*") if p.name.endswith((".partial", ".importing", ".import.json"))]
        assert left == [], f"left behind: {left}"
    verify = subprocess.run(
        [sys.executable, "-m", "aiprod_studio", "vault", "verify", "--json"],
        cwd=ROOT,
        env={**os.environ, "AIPROD_MODELS_DIR": str(vault), "AIPROD_DATA_DIR": str(data)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
