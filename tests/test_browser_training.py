"""The Training tab in a real browser: a reloaded page finds the run it was following."""

from __future__ import annotations

import shutil
import time

from servers import browser_page, needs_browser
from training_data import make_dataset


@needs_browser
def test_a_reload_mid_run_shows_the_run_and_pause_says_paused(tiny_vault, tmp_path):
    from gradio_client import Client

    models = tmp_path / "models"
    shutil.copytree(tiny_vault, models)  # the run records its LoRA in this vault
    dataset = make_dataset(tmp_path / "squares", n=4)
    with browser_page(models, tmp_path / "data", 1280, 900) as (page, url):
        client = Client(url, verbose=False)
        run = client.predict(dataset=str(dataset), name="followed", rank=4, steps=2000, save_every=5,
                             api_name="/lora_train")  # fmt: skip
        for _ in range(2):  # the first visit, then a reload in the middle of the run
            page.goto(url, wait_until="load")
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
