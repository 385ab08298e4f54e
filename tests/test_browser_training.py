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

        # The loss chart plots numbers: both axes are linear scales, and the higher a step's loss
        # the higher its point (a falling loss is drawn falling), once the paused run's chart settles.
        record, _ = client.predict(job_id=run["id"], api_name="/job")
        assert record["paused"] and record["status"] == "cancelled"
        losses = [m["loss"] for m in record["metrics"]]
        chart = page.locator("#training-plot")
        axes = [g.get_attribute("aria-label") or "" for g in chart.locator("svg g[aria-label]").all()]
        assert any(a.startswith("X-axis titled 'step' for a linear scale") for a in axes), axes
        assert any(a.startswith("Y-axis titled 'loss' for a linear scale") for a in axes), axes
        deadline = time.time() + 30
        while True:  # the loss line: as many points as steps (its moving average is the other line)
            lines = [chart_points(p.get_attribute("d") or "") for p in chart.locator("svg path").all()]
            drawn = next((pts for pts in lines if len(pts) == len(losses)), None)
            if drawn is not None or time.time() > deadline:
                break
            page.wait_for_timeout(250)
        assert drawn is not None and len(losses) >= 5, (len(losses), [len(pts) for pts in lines])
        xs, ys = [x for x, _ in drawn], [y for _, y in drawn]
        assert xs == sorted(xs)  # steps left to right
        by_loss = sorted(range(len(losses)), key=lambda i: losses[i])
        assert all(ys[a] >= ys[b] for a, b in zip(by_loss, by_loss[1:], strict=False))  # SVG y grows downwards


def chart_points(d: str) -> list[tuple[float, float]]:
    """The points of an SVG line path (`M x,y L x,y …`)."""
    if not d.startswith("M") or "A" in d or "Z" in d:
        return []
    return [tuple(float(v) for v in p.split(",")) for p in d[1:].split("L") if "," in p]  # type: ignore[misc]
