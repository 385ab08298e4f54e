"""Several render workers over one queue: `ui --workers N` and `ui --gpus 0,1`.

The studio keeps its own worker thread (on the first worker's device) and starts the others
as `aiprod-studio worker` processes on the same vault, data dir and environment, each with
a studio — a device owner — of its own. `Supervisor` starts them, writes each one's output
to `<data dir>/logs/worker-N.log`, restarts one that dies (after 1 s, then 2, 4 … up to a
minute while it keeps dying), sweeps the jobs of dead workers to `interrupted`, and stops
them with the studio (SIGTERM, then a kill after `stop_timeout_s`).

A worker on `cuda:N` sees only that GPU (`CUDA_VISIBLE_DEVICES`, where it is `cuda:0`), so
no library of it can touch another worker's GPU.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from aiprod_studio.errors import BadInput
from aiprod_studio.jobs.history import History
from aiprod_studio.jobs.rows import now
from aiprod_studio.numbers import whole_number
from aiprod_studio.settings import Settings
from engine.jobs.sweep import SWEEP_S, sweep_once

log = logging.getLogger(__name__)

MAX_WORKERS = 16
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
STABLE_AFTER_S = 60.0  # a worker that ran this long before it died is restarted at once again
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # where `aiprod_studio`, `engine`, `ui` are imported from


def parse_gpus(gpus: str) -> list[int]:
    """`--gpus 0,1` as device indices: each a whole number, none twice."""
    parts = [p.strip() for p in gpus.split(",")]
    if not all(p.isascii() and p.isdigit() for p in parts):
        raise BadInput(
            f"--gpus must list CUDA device indices separated by commas, like 0,1; got {gpus!r}", field="gpus"
        )
    indices = [int(p) for p in parts]
    if len(set(indices)) != len(indices):
        raise BadInput(f"--gpus names a GPU twice in {gpus!r}: one worker per GPU", field="gpus")
    if len(indices) > MAX_WORKERS:
        raise BadInput(f"--gpus lists {len(indices)} GPUs in {gpus!r}; at most {MAX_WORKERS} workers", field="gpus")
    return indices


def check_gpus(gpus: str, indices: Sequence[int]) -> None:
    """Every index of `--gpus` must be a CUDA device of this machine."""
    import torch

    if not torch.cuda.is_available():
        raise BadInput(
            f"--gpus {gpus}: no CUDA GPU is available on this machine (use --workers N for N workers on one device)",
            field="gpus",
        )
    count = torch.cuda.device_count()
    missing = [i for i in indices if i >= count]
    if missing:
        raise BadInput(
            f"--gpus {gpus}: GPU {missing[0]} does not exist (this machine has {count}: 0…{count - 1})", field="gpus"
        )


def worker_devices(workers: object, gpus: str | None, device: str) -> list[str]:
    """The device of each render worker, the studio's own first: `--workers N` (1…16) workers on
    `device`, or one per GPU of `--gpus`; with both, the counts must agree."""
    count = None if workers is None else whole_number(workers, "workers", high=MAX_WORKERS, what="--workers")
    if gpus is None:
        return [device] * (count or 1)
    indices = parse_gpus(gpus)
    if count is not None and count != len(indices):
        raise BadInput(
            f"--workers {count} and --gpus {gpus} disagree: --gpus starts one worker per GPU ({len(indices)}); "
            "give only one of them, or the same count",
            field="workers",
        )
    check_gpus(gpus, indices)
    return [f"cuda:{i}" for i in indices]


def shared_limits(devices: Sequence[str], limit_gb: float | None) -> list[float | None]:
    """Each worker's memory budget in GiB: workers that share a device share its memory (the
    limit, or else the device's whole memory, divided among them); a worker alone on its
    device keeps `limit_gb` as it is."""
    counts = {d: devices.count(d) for d in devices}
    out: list[float | None] = []
    for device in devices:
        if counts[device] == 1:
            out.append(limit_gb)
            continue
        whole = limit_gb if limit_gb else device_memory_gb(device)
        out.append(round(whole / counts[device], 3))
    return out


def device_memory_gb(device: str) -> float:
    """The whole memory of `device` in GiB (RAM for the CPU)."""
    if device.startswith("cuda"):
        import torch

        return float(torch.cuda.get_device_properties(torch.device(device)).total_memory) / 2**30
    import psutil

    return float(psutil.virtual_memory().total) / 2**30


def child_device(device: str, environ: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The `--device` and environment of a worker process on `device`: on `cuda:N`, only GPU N is
    visible to it (counted as the studio counts them, within its own `CUDA_VISIBLE_DEVICES`)."""
    kind, _, index = device.partition(":")
    if kind != "cuda" or not index.isdigit():
        return device, {}
    visible = [v.strip() for v in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    physical = visible[int(index)] if int(index) < len(visible) else index
    return "cuda:0", {"CUDA_VISIBLE_DEVICES": physical}


@dataclass
class WorkerProcess:
    """One worker slot: its device, its process (None while it waits to be restarted), its log."""

    slot: int
    device: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    backoff_s: float = FIRST_BACKOFF_S
    restart_at: float = 0.0
    exits: list[int] = field(default_factory=list)


class Supervisor:
    """Starts, watches and stops the worker processes on `devices` (the studio's own is not among them).

    `launcher` is the command that runs `aiprod-studio` (default: this Python, `-m aiprod_studio`).
    """

    def __init__(
        self,
        settings: Settings,
        devices: Sequence[str],
        history: History,
        launcher: Sequence[str] | None = None,
        stop_timeout_s: float = 20.0,
        poll_s: float = 0.5,
        limits: Sequence[float | None] | None = None,
    ):
        self.settings, self.history = settings, history
        self.limits = list(limits) if limits is not None else [settings.memory_limit_gb] * len(devices)
        self.launcher = list(launcher or [sys.executable, "-m", "aiprod_studio"])
        self.stop_timeout_s, self.poll_s = stop_timeout_s, poll_s
        logs = settings.data_dir / "logs"
        self.workers = [WorkerProcess(i, d, logs / f"worker-{i}.log") for i, d in enumerate(devices, start=1)]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, name="aiprod-workers", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Supervisor:
        with self._lock:
            for w in self.workers:
                self._start(w)
        self._thread.start()
        return self

    def stop(self) -> None:
        """SIGTERM to every worker (a running job stops, `interrupted`), a kill to those still alive
        after `stop_timeout_s`; then the jobs of any killed one are marked interrupted."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with self._lock:
            alive = [w for w in self.workers if w.proc is not None and w.proc.poll() is None]
            for w in alive:
                assert w.proc is not None
                w.proc.terminate()
            deadline = time.monotonic() + self.stop_timeout_s
            for w in alive:
                assert w.proc is not None
                try:
                    w.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning(
                        "worker %d (pid %d) did not stop in %.0f s: killed", w.slot, w.proc.pid, self.stop_timeout_s
                    )
                    w.proc.kill()
                    w.proc.wait()
                self._note(w, f"stopped with the studio (exit {w.proc.returncode})")
        if self.workers:
            sweep_once(self.history)

    def pids(self) -> list[int]:
        """The process ids of the workers running now."""
        with self._lock:
            return [w.proc.pid for w in self.workers if w.proc is not None and w.proc.poll() is None]

    # -- the watch thread ----------------------------------------------------------------------
    def _watch(self) -> None:
        last_sweep = 0.0
        while not self._stop.wait(self.poll_s):
            try:
                with self._lock:
                    if self._stop.is_set():
                        return
                    for w in self.workers:
                        self._check(w)
                if time.monotonic() - last_sweep >= SWEEP_S:
                    last_sweep = time.monotonic()
                    sweep_once(self.history)
            except Exception:  # noqa: BLE001 - the watch must outlive one bad round (a busy database)
                log.exception("watching the workers failed; trying again")

    def _check(self, w: WorkerProcess) -> None:
        """Restart a worker that died, after its back-off."""
        clock = time.monotonic()
        if w.proc is None:
            if clock >= w.restart_at:
                w.restarts += 1
                self._start(w)
            return
        code = w.proc.poll()
        if code is None:
            return
        w.exits.append(code)
        w.proc = None
        w.backoff_s = FIRST_BACKOFF_S if clock - w.started >= STABLE_AFTER_S else w.backoff_s
        w.restart_at = clock + w.backoff_s
        message = f"exited with code {code}; restarting in {w.backoff_s:.0f} s (see {w.log_path})"
        log.warning("worker %d on %s %s", w.slot, w.device, message)
        self._note(w, message)
        sweep_once(self.history)  # its job, if it had one, reads interrupted now
        w.backoff_s = min(w.backoff_s * 2, MAX_BACKOFF_S)

    def _start(self, w: WorkerProcess) -> None:
        """Start the worker's process; one that cannot start is tried again after its back-off."""
        try:
            self._spawn(w)
        except OSError as exc:
            log.error("worker %d on %s cannot start (%s); trying again in %.0f s", w.slot, w.device, exc, w.backoff_s)
            w.restart_at = time.monotonic() + w.backoff_s
            w.backoff_s = min(w.backoff_s * 2, MAX_BACKOFF_S)

    def _spawn(self, w: WorkerProcess) -> None:
        device, env = child_device(w.device, dict(os.environ))
        limit = self.limits[w.slot - 1] if w.slot - 1 < len(self.limits) else None
        env = {
            **os.environ,
            **env,
            **({"AIPROD_MEMORY_LIMIT_GB": str(limit)} if limit else {}),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")])),
        }
        s = self.settings
        args = ["worker", "--models-dir", str(s.models_dir), "--data-dir", str(s.data_dir), "--device", device]
        command = [*self.launcher, *args, "--supervised", "-v"]
        how = f"restart {w.restarts}" if w.restarts else "start"
        w.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(w.log_path, "ab") as out:
            self._write(out, f"--- {now()} worker {w.slot} on {w.device} ({how}): {' '.join(command)}\n")
            w.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env)
        w.started = time.monotonic()
        log.info("worker %d on %s started (pid %d, log %s)", w.slot, w.device, w.proc.pid, w.log_path)

    def _note(self, w: WorkerProcess, text: str) -> None:
        try:
            with open(w.log_path, "ab") as out:
                self._write(out, f"--- {now()} worker {w.slot} {text}\n")
        except OSError:
            log.debug("cannot write %s", w.log_path, exc_info=True)

    @staticmethod
    def _write(out: IO[bytes], text: str) -> None:
        out.write(text.encode("utf-8", "replace"))
        out.flush()
