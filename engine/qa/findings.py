"""One finding of a technical check: a code, a severity, where it lies in the clip, a plain sentence."""

from __future__ import annotations

import math
from typing import Any, Literal

Severity = Literal["error", "warning", "info"]
SEVERITIES = ("error", "warning", "info")


def number(value: float | None, digits: int = 3) -> float | None:
    """A JSON-safe float: rounded, and None for a missing, NaN or infinite value."""
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def frames_label(first: int, last: int, fps: float | None) -> str:
    """'frames 0–4 (0.00–0.21 s)' or 'frame 7 (0.29–0.33 s)' — `last` is inclusive."""
    where = f"frame {first}" if first == last else f"frames {first}–{last}"
    if fps:
        where += f" ({first / fps:.2f}–{(last + 1) / fps:.2f} s)"
    return where


def finding(
    code: str,
    severity: Severity,
    message: str,
    *,
    frames: tuple[int, int] | None = None,
    seconds: tuple[float, float] | None = None,
    fps: float | None = None,
) -> dict[str, Any]:
    """A finding; a frame range (inclusive) gets its times from `fps`, a time range its frames."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    if frames is not None and seconds is None and fps:
        seconds = (frames[0] / fps, (frames[1] + 1) / fps)
    if seconds is not None and frames is None and fps:
        first = max(0, math.floor(seconds[0] * fps + 1e-6))
        frames = (first, max(first, math.ceil(seconds[1] * fps - 1e-6) - 1))
    return {
        "code": code,
        "severity": severity,
        "start_frame": int(frames[0]) if frames is not None else None,
        "end_frame": int(frames[1]) if frames is not None else None,
        "start_s": number(seconds[0]) if seconds is not None else None,
        "end_s": number(seconds[1]) if seconds is not None else None,
        "message": message,
    }
