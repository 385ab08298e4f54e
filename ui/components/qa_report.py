"""A clip's quality report in the page: the technical verdict and each finding, the CLIP scores
(or how to get them), as Markdown lines under the clip."""

from __future__ import annotations

from typing import Any

from engine.qa.cli import report_lines


def qa_markdown(qa: dict[str, Any] | None) -> str:
    """The report as a short Markdown list; empty for a clip that has none (a training run, an old job)."""
    if not qa:
        return ""
    lines = [line.strip() for line in report_lines(qa)]
    return "**Quality**\n" + "\n".join(f"- {line}" for line in lines)
