"""The line under the Render form that says what the render will need before Generate is pressed:
peak memory against what is free, the hardware profile the budget chose, and the time this
machine took for renders like it."""

from __future__ import annotations

from typing import Any

from aiprod_studio.errors import StudioError
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
    where = "GPU memory" if f["device"] != "the CPU" else "RAM"
    free = f["free_device_gib"]
    parts = [
        f"Needs about **{f['device_gib']:.2f} GiB** of {where} ({free:.1f} GiB free)",
        f"profile **{f['profile']}** (quantization {f['quantization']}, offload {f['offload']}, "
        f"VAE tiling {'on' if f['vae_tiling'] else 'off'})",
    ]
    if f["device"] != "the CPU":
        parts.insert(1, f"{f['host_gib']:.1f} GiB of RAM ({f['free_host_gib']:.1f} free)")
    if f["expected_s"] is not None:
        parts.append(f"about {f['expected_s']:.3g} s of denoising (from past renders like it)")
    else:
        parts.append("time: no past render like it yet")
    return " · ".join(parts)


def on_forecast(studio: Studio, *widgets: Any) -> str:
    return forecast_text(studio, values(*widgets))
