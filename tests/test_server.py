"""The studio as a real server process: crash recovery, and the page in a real browser."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from servers import free_port, start_server, stop

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_sigkill_mid_render_then_restart_resumes(tiny_vault, tmp_path):
    from gradio_client import Client

    from aiprod_studio.jobs.history import History

    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    server = start_server(tiny_vault, data, port)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        job = client.predict(prompt="a render that dies", steps=200, api_name="/enqueue")
        deadline = time.time() + 120
        while time.time() < deadline:
            record, _ = client.predict(job_id=job["id"], api_name="/job")
            if record["status"] == "running" and record["step"] >= 2:
                break
            time.sleep(0.1)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
    finally:
        if server.poll() is None:
            server.kill()
    # the row the crash left says `running`, but its owner is gone: every reader sees it interrupted
    assert History(data / "history.sqlite").get(job["id"])["status"] == "interrupted"

    port = free_port()
    server = start_server(tiny_vault, data, port)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        record, _ = client.predict(job_id=job["id"], api_name="/job")
        assert record["status"] == "interrupted"
        history = History(data / "history.sqlite")
        assert history.requeue(job["id"])  # what the queue panel's Resume does
        history.close()
        deadline = time.time() + 180
        while time.time() < deadline:
            record, video = client.predict(job_id=job["id"], api_name="/job")
            if record["status"] not in ("queued", "running"):
                break
            time.sleep(0.3)
        assert record["status"] == "done" and record["step"] == 200
    finally:
        stop(server)
    con = sqlite3.connect(data / "history.sqlite")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    assert [p.name for p in (data / "outputs").iterdir()] == [Path(record["output_path"]).name]


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("AIPROD_REQUIRE_BROWSER"), reason="needs Debian's chromium (CI installs it)"
)
def test_browser_visits_every_tab_renders_and_stays_local(tiny_vault, tmp_path):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "AIPROD_REQUIRE_BROWSER is set but chromium is not installed"
    data = tmp_path / "data"
    data.mkdir()
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    server = start_server(tiny_vault, data, port)
    hosts = set()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--disable-quic",
                ],
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda r: hosts.add(r.url.split("/")[2] if "://" in r.url else r.url))
            page.goto(f"http://127.0.0.1:{port}/", wait_until="load")  # the queue panel polls: never "idle"
            page.get_by_role("button", name="Generate").wait_for(timeout=30_000)  # the page opens on Render
            page.get_by_role("tab", name="Storyboard").click()
            page.get_by_role("button", name="Split into shots").wait_for(timeout=30_000)
            page.get_by_label("Script").fill(
                "Style: soft light\nShot 1: boats in a harbour (0.5s)\nShot 2: a gull on a post (0.5s)"
            )
            page.get_by_role("button", name="Split into shots").click()
            page.wait_for_selector("text=2 shots, 1.00s", timeout=30_000)
            page.get_by_role("button", name="Render storyboard").click()
            page.wait_for_selector("text=Film: 24 frames", timeout=120_000)
            page.get_by_test_id("Film-player").wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "tab-storyboard.png"))

            page.get_by_role("tab", name="Render").click()
            page.get_by_role("button", name="Generate").wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "tab-render.png"))

            page.get_by_label("Prompt").first.fill("a red car drives through a rainy city at night")
            page.get_by_role("button", name="Generate").click()
            page.wait_for_selector("text=Done: job", timeout=90_000)
            page.locator("video:visible").first.wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "tab-render-done.png"))

            page.get_by_role("tab", name="History").click()
            table = page.locator("#history-table")
            deadline = time.time() + 30
            while "a red car drives" not in table.inner_text() and time.time() < deadline:
                page.wait_for_timeout(250)
            assert "a red car drives" in table.inner_text()
            page.screenshot(path=str(ARTIFACTS / "tab-history.png"))

            page.get_by_role("tab", name="Training").click()
            page.get_by_role("button", name="Check dataset").wait_for(timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "tab-training.png"))

            page.get_by_role("tab", name="Model Vault").click()
            page.get_by_role("radio", name="deep").check()
            page.get_by_role("button", name="Verify").click()
            page.wait_for_selector("text=deep verify: all ok", timeout=60_000)
            assert "✔ ok" in page.locator("#vault-table").inner_text()
            page.screenshot(path=str(ARTIFACTS / "tab-vault.png"))
            browser.close()
    finally:
        stop(server)
    assert hosts == {f"127.0.0.1:{port}"}
    from aiprod_studio.jobs.history import History

    rows = History(data / "history.sqlite").jobs()
    assert [(r["status"], r["prompt"]) for r in rows] == [
        ("done", "a red car drives through a rainy city at night"),
        ("done", "a gull on a post. Soft light."),
        ("done", "boats in a harbour. Soft light."),
    ]
