"""Running studios for tests: a free port, the real `aiprod-studio ui` process, the app in-process.

Imported by the test files that need a server (`from servers import …`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(vault: Path, data: Path, port: int, *args: str) -> subprocess.Popen:
    """`aiprod-studio ui --port PORT --no-tiny ARGS` in a subprocess, once its port answers."""
    env = {**os.environ, "AIPROD_MODELS_DIR": str(vault), "AIPROD_DATA_DIR": str(data), "AIPROD_DEVICE": "cpu"}
    log_path = data / f"server-{port}.log"
    log = open(log_path, "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiprod_studio", "ui", "--port", str(port), "--no-tiny", *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    deadline = time.time() + 90
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(log_path.read_text()[-3000:])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError("the studio did not start")


def stop(proc: subprocess.Popen) -> None:
    """Ctrl-C (the studio's clean stop), then kill if it does not stop."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Served:
    studio: Any
    worker: Any
    app: Any
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@contextlib.contextmanager
def serve_in_process(models: Path, data: Path, **launch: Any) -> Iterator[Served]:
    """The real app (`build_app` + `launch_kwargs`, so the real middleware) served from this process."""
    from aiprod_studio.settings import load_settings
    from engine.runners import make_worker
    from engine.studio import Studio
    from ui.app import build_app, gradio_cache_dir, launch_kwargs, prepare

    settings = load_settings(models_dir=models, data_dir=data, device="cpu")
    old_tmp = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(gradio_cache_dir(settings))
    studio = Studio(settings)
    prepare(studio, build_tiny_if_empty=False)
    worker = make_worker(studio).start()
    app = build_app(studio, worker)
    app.queue(default_concurrency_limit=4)
    port = free_port()
    app.launch(**launch_kwargs(studio, port, **launch), prevent_thread_lock=True)
    try:
        yield Served(studio, worker, app, port)
    finally:
        app.close()
        worker.stop()
        studio.close()
        if old_tmp is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = old_tmp


# -- a real browser on a real server ---------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip
needs_browser = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("AIPROD_REQUIRE_BROWSER"), reason="needs Debian's chromium (CI installs it)"
)


@contextlib.contextmanager
def browser_page(vault: Path, data: Path, width: int = 1280, height: int = 900) -> Iterator[tuple[Any, str]]:
    """(a headless Chromium page on the studio, the studio's URL): `aiprod-studio ui` over `vault` and `data`."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "AIPROD_REQUIRE_BROWSER is set but chromium is not installed"
    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = start_server(vault, data, port)
    url = f"http://127.0.0.1:{port}/"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url, wait_until="load")
            yield page, url
            browser.close()
    finally:
        stop(server)
