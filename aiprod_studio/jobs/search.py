"""Which history rows a listing shows, and in what order: the filters of `History.jobs`,
checked (each refusal names its field) and turned into one parameterised query."""

from __future__ import annotations

from typing import Any

from aiprod_studio import choices
from aiprod_studio.errors import BadInput
from aiprod_studio.text import check_text

ORDERS = ("newest", "score")  # score: the clip's semantic prompt match, best first, unscored last


def select(
    status: str | None = None,
    text: str | None = None,
    model: str | None = None,
    kind: str | None = None,
    findings: bool | None = None,
    order: str = "newest",
) -> tuple[str, list[Any]]:
    """The SELECT (ending in `LIMIT ? OFFSET ?`) and its parameters but those two. `findings`:
    True keeps the clips whose QA found something, False those it found clean."""
    for name, value in (("text", text), ("model", model), ("status", status), ("kind", kind)):
        try:
            check_text(value)
        except ValueError as exc:
            raise BadInput(f"{name} {exc}", field=name) from None
    if status and status not in choices.JOB_STATUSES:
        raise BadInput(f"status must be one of {', '.join(choices.JOB_STATUSES)}, got {status!r}", field="status")
    if kind and kind not in choices.JOB_KINDS:
        raise BadInput(f"kind must be one of {', '.join(choices.JOB_KINDS)}, got {kind!r}", field="kind")
    if order not in ORDERS:
        raise BadInput(f"order must be one of {', '.join(ORDERS)}, got {order!r}", field="order")
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("kind", kind), ("status", status), ("model", model)):
        if value:
            where.append(f"{column} = ?")
            params.append(value)
    if text:
        where.append("prompt LIKE ? ESCAPE '\\'")
        params.append("%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    if findings is not None:
        clean = "json_extract(qa, '$.ok') = 1 AND json_extract(qa, '$.errors') + json_extract(qa, '$.warnings') = 0"
        where.append(f"qa IS NOT NULL AND {'NOT' if findings else ''} ({clean})")
    sql = "SELECT * FROM jobs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if order == "score":
        sql += " ORDER BY json_extract(qa, '$.semantic.prompt_mean') DESC NULLS LAST, id DESC"
    else:
        sql += " ORDER BY id DESC"
    return sql + " LIMIT ? OFFSET ?", params
