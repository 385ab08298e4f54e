"""The Training tab in a real browser: a reloaded page finds the run it was following."""

from __future__ import annotations

import os
import shutil
import time

import pytest
from servers import free_port, start_server, stop
from training_data import make_dataset

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("AIPROD_REQUIRE_BROWSER"), reason="needs Debian's chromium (CI installs it)"
)
def test_a_reload_mid_run_shows_the_run_and_pause_says_paused(tiny_vault, tmp_path):
    from gradio_client import Client
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "AIPROD_REQUIRE_BROWSER is set but chromium is not installed"
    models = tmp_path / "models"
    shutil.copytree(tiny_vault, models)  # the run records its LoRA in this vault
    data = tmp_path / "data"
    data.mkdir()
    dataset = make_dataset(tmp_path / "squares", n=4)
    port = free_port()
    server = start_server(models, data, port)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        run = client.predict(dataset=str(dataset), name="followed", rank=4, steps=2000, save_every=5,
                             api_name="/lora_train")  # fmt: skip
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for _ in range(2):  # the first visit, then a reload in the middle of the run
                page.goto(f"http://127.0.0.1:{port}/", wait_until="load")
                page.get_by_role("tab", name="Training").click()
                status = page.locator("#training-status")
                deadline = time.time() + 90
                while f"Run {run['id']}" not in status.inner_text() or "step" not in status.inner_text():
                    assert time.time() < deadline, status.inner_text()
                    page.wait_for_timeout(250)
            page.get_by_role("button", name="Pause").click()
            deadline = time.time() + 90
            while "paused at step" not in status.inner_text():
                assert time.time() < deadline, status.inner_text()
                page.wait_for_timeout(250)
            assert "cancelled" not in status.inner_text() and "left" not in status.inner_text()
            browser.close()
    finally:
        stop(server)
