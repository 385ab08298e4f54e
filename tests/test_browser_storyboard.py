"""The Storyboard tab in a real browser: a bad cell is named on the status line, and the table stays."""

from __future__ import annotations

import time

from servers import browser_page, needs_browser


@needs_browser
def test_a_bad_duration_cell_is_named_and_the_table_stays_readable(tiny_vault, tmp_path):
    with browser_page(tiny_vault, tmp_path / "data", 1400, 1000) as (page, _url):
        page.get_by_role("tab", name="Storyboard").click()  # (the page opens on Render)
        page.get_by_role("button", name="Split into shots").wait_for(timeout=30_000)
        page.get_by_label("Script").fill("Shot 1: boats in a harbour (0.5s)\nShot 2: a gull on a post (0.5s)")
        page.get_by_role("button", name="Split into shots").click()
        page.wait_for_selector("text=2 shots, 1.00s", timeout=30_000)

        # 1. Type `abc` into shot 2's duration cell.
        table = page.locator("#storyboard-table")
        cell = table.get_by_test_id("cell-1-2")  # row 2, the duration column
        cell.dblclick()
        page.keyboard.press("Control+A")
        page.keyboard.type("abc")
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")

        # 2. Save: the status line names shot 2 and the duration column, the table is still there.
        page.get_by_role("button", name="Save").click()
        status = page.locator("#storyboard-status")
        deadline = time.time() + 30
        while "shot 2" not in status.inner_text() and time.time() < deadline:
            page.wait_for_timeout(250)
        said = status.inner_text()
        assert "shot 2: duration" in said and "abc" in said, said
        text = table.inner_text()
        assert "boats in a harbour" in text and "a gull on a post" in text
        assert "Error" not in text


@needs_browser
def test_cancel_reads_cancelled_and_the_film_fits_the_window(tiny_vault, tmp_path):
    with browser_page(tiny_vault, tmp_path / "data", 1280, 900) as (page, _url):
        page.get_by_role("tab", name="Storyboard").click()
        page.get_by_role("button", name="Split into shots").wait_for(timeout=30_000)
        shots = "\n".join(f"Shot {i}: a red square moves left, take {i} (2s)" for i in range(1, 9))
        page.get_by_label("Script").fill(shots)
        page.get_by_role("button", name="Split into shots").click()
        page.wait_for_selector("text=8 shots", timeout=30_000)
        status = page.locator("#storyboard-status")

        # 1. Cancel while the shots render: the status says cancelled (no Error toast), and so does the table.
        page.get_by_role("button", name="Render storyboard").click()
        page.wait_for_selector("#storyboard-status :text('Shot 1: step')", timeout=60_000)
        page.get_by_role("button", name="Cancel", exact=True).click()
        deadline = time.time() + 60
        while "Render cancelled" not in status.inner_text() and time.time() < deadline:
            page.wait_for_timeout(250)
        assert "Render cancelled" in status.inner_text(), status.inner_text()
        assert page.locator(".toast-body.error").count() == 0
        table = page.locator("#storyboard-table").inner_text()
        assert "cancelled" in table and "running" not in table and "queued" not in table, table

        # 2. Render again: the remaining shots render, and the 64×64 film is not drawn taller than the window.
        page.get_by_role("button", name="Render storyboard").click()
        page.wait_for_selector("#storyboard-status :text('Film:')", timeout=240_000)
        video = page.locator("#storyboard-film video")
        video.wait_for(timeout=30_000)
        box = video.bounding_box()
        assert box is not None and box["height"] <= 900 * 0.6, box
