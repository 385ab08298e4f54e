"""The line under the Render form that says what the render will need before Generate is pressed:
peak memory against what is free, the hardware profile the budget chose, and the time this
machine took for renders like it."""

from __future__ import annotations

from typing import Any

from aiprod_studio.errors import StudioError
from engine.budget.check import forecast_line
from engine.studio import Studio
from ui.components.render_form import FIELDS, PICTURE_FIELDS, values

# the form fields a change of which changes the forecast (the text, the seed and the LoRAs do not)
# (nor the pictures: they are prepared and stored only when a render is asked for)
BUDGET_FIELDS = tuple(f for f in FIELDS if f not in ("prompt", "negative_prompt", "seed", "loras", *PICTURE_FIELDS))


def forecast_text(studio: Studio, form: dict[str, Any]) -> str:
    """The forecast as one Markdown line, or the refusal (what does not fit, and a change that does)."""
    try:
        f = studio.forecast(
            {"prompt": "forecast", **{k: v for k, v in form.items() if k not in ("prompt", "conditions")}}
        )
    except StudioError as exc:
        return f"**Will not run:** {exc}"
    return forecast_line(f).replace("\n", " · ")


def on_forecast(studio: Studio, *widgets: Any) -> str:
    try:
        form = values(*widgets)
    except StudioError:  # (a keyframe list that does not parse: said when Generate is pressed)
        blank = [None if f in PICTURE_FIELDS else w for f, w in zip(FIELDS, widgets, strict=False)]
        form = values(*blank)
    return forecast_text(studio, form)
