"""`train check` and `train lora` in a subprocess: a full run, Ctrl-C, then --resume."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

from training_data import make_dataset


def test_check_then_train_then_interrupt_and_resume(cli, tiny_vault, data_dir, tmp_path):
    dataset = make_dataset(tmp_path / "ds", n=4)
    (dataset / "clip03.txt").unlink()
    check = cli("train", "check", "--dataset", str(dataset), "--json")
    assert check.returncode == 0, check.stderr
    assert check.json["usable"] == 3 and check.json["bucket"] == [64, 64, 17]
    assert check.json["findings"] == [{"media": "clip03.mp4", "problem": "missing caption", "detail": "add clip03.txt"}]
    models = tmp_path / "models"
    shutil.copytree(tiny_vault, models)
    r = cli(
        "train",
        "lora",
        "--dataset",
        str(dataset),
        "--name",
        "sq",
        "--steps",
        "12",
        "--rank",
        "4",
        "--lr",
        "1e-3",
        "--save-every",
        "6",
        "--json",
        models_dir=models,
    )
    assert r.returncode == 0, r.stderr
    assert r.json["lora"] == "sq" and r.json["step"] == 12 and r.json["modules"] == 16

    # Ctrl-C in the middle: exit 4, the run is cancelled with a checkpoint; --resume finishes it
    env = {**os.environ, "AIPROD_MODELS_DIR": str(models), "AIPROD_DATA_DIR": str(data_dir), "AIPROD_DEVICE": "cpu"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiprod_studio",
            "train",
            "lora",
            "--dataset",
            str(dataset),
            "--name",
            "sq2",
            "--steps",
            "400",
            "--rank",
            "4",
            "--save-every",
            "5",
            "--json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    db = data_dir / "history.sqlite"
    deadline = time.time() + 120
    step = 0
    while time.time() < deadline and step < 8:
        time.sleep(0.3)
        if db.exists():
            with sqlite3.connect(db) as con:
                row = con.execute(
                    "SELECT max(step) FROM jobs WHERE kind = 'train' AND prompt = 'Train LoRA sq2'"
                ).fetchone()
                step = row[0] or 0
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, err
    with sqlite3.connect(db) as con:
        run_id, status, stopped = con.execute(
            "SELECT id, status, step FROM jobs WHERE prompt = 'Train LoRA sq2'"
        ).fetchone()
    assert status == "cancelled" and stopped >= 8
    resumed = cli("train", "lora", "--resume", str(run_id), "--json", models_dir=models, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.json["step"] == 400 and resumed.json["lora"] == "sq2"
    with sqlite3.connect(db) as con:
        steps = [s for (s,) in con.execute("SELECT step FROM train_metrics WHERE job_id = ? ORDER BY step", [run_id])]
    assert steps == list(range(1, 401))
    bad = cli("train", "lora", "--resume", str(run_id), "--json", models_dir=models)
    assert bad.returncode == 2 and bad.json["field"] == "resume"


def test_two_processes_train_like_one_with_the_whole_batch(tiny_vault, tmp_path):
    """`torchrun`/`accelerate launch` with 2 processes (gloo on the CPU) = 1 process with batch 2."""
    import sqlite3

    import torch
    from safetensors.torch import load_file

    dataset = make_dataset(tmp_path / "ds", n=4)
    models = tmp_path / "models"
    shutil.copytree(tiny_vault, models)
    env = {
        **os.environ,
        "AIPROD_MODELS_DIR": str(models),
        "AIPROD_DATA_DIR": str(tmp_path / "data"),
        "AIPROD_DEVICE": "cpu",
        "OMP_NUM_THREADS": "1",
    }
    common = [
        "train",
        "lora",
        "--dataset",
        str(dataset),
        "--steps",
        "2",
        "--rank",
        "4",
        "--lr",
        "1e-3",
        "--warmup",
        "0",
        "--save-every",
        "2",
        "--json",
    ]
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "-m",
            "aiprod_studio",
            *common,
            "--name",
            "two",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    one = subprocess.run(
        [sys.executable, "-m", "aiprod_studio", *common, "--name", "one", "--batch-size", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    a, b = load_file(models / "loras/two.safetensors"), load_file(models / "loras/one.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    with sqlite3.connect(tmp_path / "data/history.sqlite") as con:
        rows = con.execute("SELECT prompt, status, step FROM jobs ORDER BY id").fetchall()
        metrics = con.execute("SELECT job_id, count(*) FROM train_metrics GROUP BY job_id").fetchall()
    assert rows == [("Train LoRA two", "done", 2), ("Train LoRA one", "done", 2)]  # one row for the 2 processes
    assert [m[1] for m in metrics] == [2, 2]


def test_check_of_a_dataset_with_nothing_usable_exits_2_and_prints_every_finding(cli, tmp_path):
    dataset = make_dataset(tmp_path / "ds", n=2)
    for caption in dataset.glob("*.txt"):
        caption.unlink()
    check = cli("train", "check", "--dataset", str(dataset), "--json")
    assert check.returncode == 2, check.stdout
    assert check.json["ok"] is False and check.json["usable"] == 0 and check.json["bucket"] is None
    assert [f["problem"] for f in check.json["findings"]] == ["missing caption", "missing caption"]
    text = cli("train", "check", "--dataset", str(dataset))
    assert text.returncode == 2 and "clip00.mp4: missing caption" in text.stdout and "no usable item" in text.stdout
