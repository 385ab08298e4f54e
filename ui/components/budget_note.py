"""The line under the Render form that says what the render will need before Generate is pressed:
peak memory against what is free, the hardware profile the budget chose, and the time this
machine took for renders like it."""

from __future__ import annotations

from typing import Any

from aiprod_studio.errors import StudioError
from engine.budget.check import forecast_line
from engine.studio import Studio
from ui.components.render_form import FIELDS, values

# the form fields a change of which changes the forecast (the text, the seed and the LoRAs do not)
BUDGET_FIELDS = tuple(f for f in FIELDS if f not in ("prompt", "negative_prompt", "seed", "loras"))


def forecast_text(studio: Studio, form: dict[str, Any]) -> str:
    """The forecast as one Markdown line, or the refusal (what does not fit, and a change that does)."""
    try:
        f = studio.forecast({"prompt": "forecast", **{k: v for k, v in form.items() if k != "prompt"}})
    except StudioError as exc:
        return f"**Will not run:** {exc}"
    return forecast_line(f).replace("\n", " · ")


def on_forecast(studio: Studio, *widgets: Any) -> str:
    return forecast_text(studio, values(*widgets))
