"""Validation errors as the studio says them: `field message, got value`, one line each."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from aiprod_studio.text import echo


def field_error(model: str, field: str, message: str, value: Any) -> ValidationError:
    """A validation error of `field` saying `message` (raised from a whole-model check)."""
    detail = InitErrorDetails(type=PydanticCustomError("value_error", message), loc=(field,), input=value)
    return ValidationError.from_exception_data(model, [detail])


def describe_error(err: Mapping[str, Any]) -> str:
    """One pydantic error as `field message, got value`."""
    field = ".".join(str(p) for p in err.get("loc", ())) or "recipe"
    kind = err.get("type", "")
    value = err.get("input")
    if kind == "extra_forbidden":
        return f"unknown field {field!r}"
    if kind == "missing":
        return f"{field} is required"
    msg = err.get("msg", "")
    if kind == "value_error":
        return f"{field} {msg.removeprefix('Value error, ')}"
    return f"{field}: {msg.lower()}, got {echo(value)}"


def format_validation_error(exc: ValidationError) -> str:
    return "; ".join(describe_error(e) for e in exc.errors())
