"""Shared fixtures: an isolated vault with the tiny model, an isolated data dir, CLI runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory):
    """No test ever touches the user's vault or data dir."""
    base = tmp_path_factory.mktemp("isolated")
    old = {k: os.environ.get(k) for k in ("AIPROD_MODELS_DIR", "AIPROD_DATA_DIR", "AIPROD_DEVICE")}
    os.environ["AIPROD_MODELS_DIR"] = str(base / "no-models")
    os.environ["AIPROD_DATA_DIR"] = str(base / "no-data")
    os.environ["AIPROD_DEVICE"] = "cpu"
    yield
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def tiny_vault(tmp_path_factory) -> Path:
    """A vault holding the tiny model and the tiny CLIP (as `vault make-tiny` builds them), once per session."""
    from aiprod_studio.vault.store import Vault
    from engine.models.tiny import make_tiny
    from engine.qa.tiny_clip import make_tiny_clip

    root = tmp_path_factory.mktemp("vault")
    make_tiny(Vault(root))
    make_tiny_clip(Vault(root))
    return root


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def studio(tiny_vault, data_dir):
    from aiprod_studio.settings import load_settings
    from engine.studio import Studio

    s = Studio(load_settings(models_dir=tiny_vault, data_dir=data_dir, device="cpu"))
    yield s
    s.close()


@pytest.fixture
def own_studio(tiny_vault, data_dir, tmp_path):
    """A studio over a private copy of the tiny vault, for tests that add, change or damage entries."""
    import shutil

    from aiprod_studio.settings import load_settings
    from engine.studio import Studio

    root = tmp_path / "models"
    shutil.copytree(tiny_vault, root)
    s = Studio(load_settings(models_dir=root, data_dir=data_dir, device="cpu"))
    yield s
    s.close()


@pytest.fixture
def worker(studio):
    """A started queue worker over `studio`."""
    from engine.runners import make_worker

    w = make_worker(studio).start()
    yield w
    w.stop()


@pytest.fixture
def handlers(studio, worker):
    """The app's event handlers by function name, called the way Gradio calls them."""
    from ui.app import build_app

    app = build_app(studio, worker)
    return {f.fn.__name__: f.fn for f in app.fns.values() if f.fn is not None}


class CliResult:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr

    @property
    def json(self) -> dict:
        return json.loads(self.stdout.strip().splitlines()[-1])


@pytest.fixture
def cli(tiny_vault, data_dir):
    """Run `python -m aiprod_studio ARGS` in a subprocess against the tiny vault."""

    def run(*args: str, models_dir: Path | None = None, timeout: float = 180) -> CliResult:
        env = {
            **os.environ,
            "AIPROD_MODELS_DIR": str(models_dir or tiny_vault),
            "AIPROD_DATA_DIR": str(data_dir),
            "AIPROD_DEVICE": "cpu",
        }
        proc = subprocess.run(
            [sys.executable, "-m", "aiprod_studio", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=timeout,
        )
        return CliResult(proc)

    return run


@pytest.fixture
def orphan():
    """Make a `running` row look like what a crash leaves: owned by a process that has exited."""

    def make(history, job_id: int) -> int:
        from aiprod_studio.jobs.owner import host_id

        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        with history.locked() as db:
            db.execute(
                "UPDATE jobs SET owner_pid = ?, owner_host = ?, owner_start = '0' WHERE id = ?",
                [gone.pid, host_id(), job_id],
            )
        return job_id

    return make


@pytest.fixture
def slow_cli(tiny_vault, data_dir):
    """Start `aiprod-studio ARGS` in the background with every render step slowed by `step_s`
    (so a test can act while it runs); returns the Popen."""
    procs = []

    def start(*args: str, step_s: float = 0.3) -> subprocess.Popen:
        code = (
            "import sys, time\n"
            "from aiprod_studio.jobs import history\n"
            "original = history.History.set_progress\n"
            "def slowed(self, *a, **k):\n"
            "    original(self, *a, **k)\n"
            f"    time.sleep({step_s})\n"
            "history.History.set_progress = slowed\n"
            "from aiprod_studio.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n"
        )
        env = {
            **os.environ,
            "AIPROD_MODELS_DIR": str(tiny_vault),
            "AIPROD_DATA_DIR": str(data_dir),
            "AIPROD_DEVICE": "cpu",
        }
        proc = subprocess.Popen(
            [sys.executable, "-c", code, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
