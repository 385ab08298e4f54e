"""The Render tab in a real browser: where a first hour starts (headless Chromium, the real server)."""

from __future__ import annotations

import os
import shutil

import pytest
from servers import free_port, start_server, stop

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("AIPROD_REQUIRE_BROWSER"), reason="needs Debian's chromium (CI installs it)"
)


@pytest.fixture
def page(tiny_vault, tmp_path):
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "AIPROD_REQUIRE_BROWSER is set but chromium is not installed"
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    server = start_server(tiny_vault, data, port)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="load")
            yield page
            browser.close()
    finally:
        stop(server)


def test_the_page_opens_on_render_and_ctrl_enter_renders_a_clip_that_fits_the_window(page):
    start = page.locator("#render-start")
    start.wait_for(timeout=30_000)  # visible without a click: Render is the first screen
    assert "Start here" in start.inner_text() and "aiprod-tiny-ltx2" in start.inner_text()
    prompt = page.locator("#render-prompt textarea")
    page.wait_for_selector("html[data-aiprod-shortcuts=on]", state="attached", timeout=30_000)  # the page's keys
    prompt.fill("a small red square")
    prompt.press("Control+Enter")
    page.wait_for_selector("text=Done: job", timeout=150_000)
    video = page.locator("video:visible").first
    video.wait_for(timeout=30_000)
    box = video.bounding_box()
    assert box is not None and box["height"] <= 800  # a 64×64 clip is not drawn taller than the window


def test_a_value_out_of_range_is_answered_with_the_field_in_words(page):
    page.locator("#render-prompt textarea").wait_for(timeout=30_000)
    page.locator("#render-prompt textarea").fill("no frames per second")
    fps = page.get_by_label("FPS")
    fps.fill("0")
    fps.press("Tab")
    page.get_by_role("button", name="Add to queue").click()
    toast = page.locator(".toast-body").first
    toast.wait_for(timeout=30_000)
    text = toast.inner_text()
    assert "fps" in text and "less than minimum" not in text
